"""Answer equivalence by math-verify: parse both answers, then verify (reference first: it is not symmetric).

One setting differs from math-verify's default: allow_set_relation_comp, so `x \\geq 5` answers `[5, \\infty)`
(the same set; by default only an interval answers an inequality).

Imported lazily: sympy, latex2sympy2_extended and math-verify take about a second to import. math-verify's
own timeouts use signal.alarm, which cannot interrupt C code and raises outside a main thread; they are off
here (parsing_timeout=None, timeout_seconds=None), and the pool's worker kill is the limit.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from math_verify import parse, verify

from etr_dist.reward.prepare import Prepared
from etr_dist.reward.types import MATCH_SYMBOLIC, MISMATCH, PARSE_ERROR

PARSE_CACHE_SIZE = 4096  # a group's G completions share one reference: parse it once

# math-verify warns once per process that its timeout is disabled: here that is by design.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def parse_answer(answer: Prepared) -> list[Any]:
    """math-verify's parse: prose first as text (it finds `12` in `12 apples`), else the LaTeX in math mode."""
    if answer.prose is not None:
        found = parse(answer.prose, parsing_timeout=None)
        if found:
            return found
    return parse(f"${answer.math}$", parsing_timeout=None)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_reference(reference: Prepared) -> tuple[Any, ...]:
    return tuple(parse_answer(reference))


def compare_symbolic(prediction: Prepared, reference: Prepared) -> str:
    """MATCH_SYMBOLIC when math-verify verifies the prediction against the reference, else why not."""
    gold = _parse_reference(reference)
    target = parse_answer(prediction) if gold else []
    if not gold or not target:
        return PARSE_ERROR
    equal = verify(list(gold), target, allow_set_relation_comp=True, timeout_seconds=None)
    return MATCH_SYMBOLIC if equal else MISMATCH
