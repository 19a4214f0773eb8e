"""Answer equivalence by math-verify: parse both answers, then verify (reference first: it is not symmetric).

One setting differs from math-verify's default: allow_set_relation_comp, so `x \\geq 5` answers `[5, \\infty)`
(the same set; by default only an interval answers an inequality).

Imported lazily: sympy, latex2sympy2_extended and math-verify take about a second to import. math-verify's
own timeouts use signal.alarm, which cannot interrupt C code and raises outside a main thread; they are off
here (parsing_timeout=None, timeout_seconds=None), and the pool's worker kill is the limit.
"""

from __future__ import annotations

import logging
import math
import re
from functools import lru_cache
from itertools import product
from typing import Any

import sympy
from latex2sympy2_extended import normalize_latex
from math_verify import LatexExtractionConfig, parse, verify

from etr_dist.reward import two_stage_parsing  # noqa: F401  (importing it makes latex parsing two-stage)
from etr_dist.reward.prepare import Prepared
from etr_dist.reward.types import MATCH_SYMBOLIC, MISMATCH, PARSE_ERROR

PARSE_CACHE_SIZE = 4096  # a group's G completions share one reference: parse it once
_NORMALIZATION = LatexExtractionConfig().normalization_config  # what parse applies to `$...$` content

APART = 1e-6  # relative gap far beyond evaluation error at 30 digits, and beyond verify's 6-place rounding
_GENERIC_POINT = tuple(sympy.Rational(p, q) for p, q in ((7, 5), (11, 7), (13, 17), (19, 23)))
_NOT_PLAIN = (sympy.Symbol, sympy.MatrixBase, sympy.MatrixExpr)
_UNUSUAL = re.compile(r"\\boxed|\\fbox|\\$|answer", re.IGNORECASE)


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
def _normalized(latex: str) -> str:
    return normalize_latex(latex, _NORMALIZATION).strip()


def same_normalized(answer: Prepared, reference: Prepared) -> bool:
    """Equal after math-verify's own normalisation of `$...$` content (`\\dfrac`, `\\left(`, a trailing unit):
    parse would hand both the same LaTeX and keep that string beside the parsed value, and verify matches
    equal strings, so its verdict is a match. Not for prose, boxes or a trailing backslash, which parse
    reads differently."""
    if answer.prose is not None or reference.prose is not None:
        return False
    if any(_UNUSUAL.search(item.math) for item in (answer, reference)):
        return False
    normalized = _normalized(answer.math)
    return bool(normalized) and normalized == _normalized(reference.math)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_reference(reference: Prepared) -> tuple[Any, ...]:
    return tuple(parse_answer(reference))


def _apart(gold: Any, target: Any) -> bool:
    """Two plain expressions whose values differ clearly at a generic point, so verify cannot match them.

    verify's path for such a pair (no Symbol, relation, set, matrix, float or percentage) is: equal trees,
    then (gold - target).evalf() == 0, then simplify(gold - target).is_zero; a difference that is clearly
    non-zero somewhere fails all three, and this skips the simplify, verify's slowest step for a mismatch.
    """
    if not all(isinstance(item, sympy.Expr) and not isinstance(item, _NOT_PLAIN) for item in (gold, target)):
        return False
    if gold.has(sympy.Float, sympy.UnevaluatedExpr) or target.has(sympy.Float, sympy.UnevaluatedExpr):
        return False
    symbols = sorted(gold.free_symbols | target.free_symbols, key=str)
    if len(symbols) > len(_GENERIC_POINT):
        return False
    point = dict(zip(symbols, _GENERIC_POINT, strict=False))
    try:
        difference = abs(complex(sympy.N((gold - target).subs(point), 30)))
        scale = abs(complex(sympy.N(gold.subs(point), 30)))
    except (TypeError, ValueError, ArithmeticError):  # not a number there: verify decides
        return False
    return math.isfinite(difference) and math.isfinite(scale) and difference > APART * max(scale, 1.0)


def _clearly_unequal(gold: tuple[Any, ...], target: list[Any]) -> bool:
    """verify(gold, target) is certainly false: it matches equal non-empty strings, never a string with a
    value, and no pair of values here can match (see _apart)."""
    for expected, found in product(gold, target):
        if isinstance(expected, str) and isinstance(found, str):
            if expected.strip() and expected.strip() == found.strip():
                return False
        elif not (isinstance(expected, str) or isinstance(found, str) or _apart(expected, found)):
            return False
    return True


def compare_symbolic(prediction: Prepared, reference: Prepared) -> str:
    """MATCH_SYMBOLIC when math-verify verifies the prediction against the reference, else why not."""
    gold = _parse_reference(reference)
    target = parse_answer(prediction) if gold else []
    if not gold or not target:
        return PARSE_ERROR
    if _clearly_unequal(gold, target):
        return MISMATCH
    equal = verify(list(gold), target, allow_set_relation_comp=True, timeout_seconds=None)
    return MATCH_SYMBOLIC if equal else MISMATCH
