"""Compare an extracted answer with a reference: the fast paths first, then math-verify.

The fast paths give math-verify's own verdict without parsing (see numeric.py and symbolic.same_normalized);
they carry most of the traffic: integer replies, and answers written as the reference writes them.
"""

from __future__ import annotations

import re

from etr_dist.reward.numeric import fast_verdict
from etr_dist.reward.prepare import PLAIN_NUMBER, Prepared, is_plain_number, prepare
from etr_dist.reward.types import MATCH_STRING, MISMATCH, NO_ANSWER, PARSE_ERROR

MAX_SYMBOLIC_CHARS = 1000  # longer answers are compared as text only: sympy time grows fast with size
_ARITHMETIC = re.compile(r"(?:[\d\s+\-*/().]|[A-Za-z](?![A-Za-z])|\\(?:times|cdot|div)(?![A-Za-z]))+")
_MATH_IN_PROSE = re.compile(r"[\d$\\\[]")


def _prepared(prediction: str, reference: str) -> tuple[Prepared, Prepared]:
    """Both sides for math-verify; a decimal comma reads as one where the other side is a single number."""
    answer, gold = prepare(prediction), prepare(reference)
    if is_plain_number(gold):
        answer = prepare(prediction, decimal_comma=True)
    elif is_plain_number(answer):
        gold = prepare(reference, decimal_comma=True)
    return answer, gold


def _equation_value(answer: Prepared) -> str | None:
    """The plain number after the last `=` of an arithmetic equation (`5 - 9 = -4` -> `-4`, `x = 3` -> `3`):
    against a reference that is no equation, math-verify compares the last right-hand side."""
    if answer.prose is not None or "=" not in answer.math:
        return None
    *sides, value = answer.math.split("=")
    if PLAIN_NUMBER.fullmatch(value.strip()) and all(_ARITHMETIC.fullmatch(side) for side in sides):
        return value.strip()
    return None


def _fast(answer: Prepared, gold: Prepared) -> str | None:
    if not answer.math:
        return NO_ANSWER
    if not gold.math:
        return PARSE_ERROR
    if answer == gold:
        return MATCH_STRING  # math-verify parses equal inputs alike, and verifies anything it parsed
    if is_plain_number(gold):
        if answer.prose is not None and not _MATH_IN_PROSE.search(answer.prose):
            return MISMATCH  # math-verify finds no value in it: its numbers need digits, its LaTeX `$ \\ [`
        value = answer.math if is_plain_number(answer) else _equation_value(answer)
        if value is not None:
            return fast_verdict(value, gold.math)
    if max(len(answer.math), len(gold.math)) > MAX_SYMBOLIC_CHARS:
        return MISMATCH
    from etr_dist.reward import symbolic  # lazy: sympy and math-verify take about a second to import

    return MATCH_STRING if symbolic.same_normalized(answer, gold) else None


def fast_reason(prediction: str, reference: str) -> str | None:
    """The reason where a fast path decides (no parsing, no sympy arithmetic), else None."""
    return _fast(*_prepared(prediction, reference))


def compare_answers(prediction: str, reference: str) -> str:
    """The reason the extracted answer does or does not match the reference (a `types` reason word)."""
    answer, gold = _prepared(prediction, reference)
    reason = _fast(answer, gold)
    if reason is not None:
        return reason
    from etr_dist.reward import symbolic

    return symbolic.compare_symbolic(answer, gold)
