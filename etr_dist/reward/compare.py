"""Compare an extracted answer with a reference: identical text, then plain numbers, then math-verify.

The two fast paths give math-verify's own verdict without sympy (see numeric.py); they carry most of the
traffic (integer replies, answers copied verbatim from the reference format).
"""

from __future__ import annotations

from etr_dist.reward.numeric import fast_verdict
from etr_dist.reward.prepare import is_plain_number, prepare
from etr_dist.reward.types import MATCH_STRING, MISMATCH, NO_ANSWER, PARSE_ERROR

MAX_SYMBOLIC_CHARS = 1000  # longer answers are compared as text only: sympy time grows fast with size


def compare_answers(prediction: str, reference: str) -> str:
    """The reason the extracted answer does or does not match the reference (a `types` reason word)."""
    gold, answer = prepare(reference), prepare(prediction)
    if is_plain_number(gold):
        answer = prepare(prediction, decimal_comma=True)
    elif is_plain_number(answer):
        gold = prepare(reference, decimal_comma=True)
    if not answer.math:
        return NO_ANSWER
    if not gold.math:
        return PARSE_ERROR
    if answer == gold:
        return MATCH_STRING  # math-verify parses equal inputs alike, and verifies anything it parsed
    if is_plain_number(answer) and is_plain_number(gold):
        verdict = fast_verdict(answer.math, gold.math)
        if verdict is not None:
            return verdict
    if max(len(answer.math), len(gold.math)) > MAX_SYMBOLIC_CHARS:
        return MISMATCH
    from etr_dist.reward import symbolic  # lazy: sympy and math-verify take about a second to import

    return symbolic.compare_symbolic(answer, gold)
