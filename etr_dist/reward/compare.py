"""Compare an extracted answer with a reference, cheapest check first: string, exact number, parts, sympy."""

from __future__ import annotations

from etr_dist.reward.normalize import is_text_answer, normalize_answer
from etr_dist.reward.numeric import numbers_equal, parse_number
from etr_dist.reward.structure import MATRIX, ORDERED, Composite, parse_composite
from etr_dist.reward.types import (
    MATCH_NUMERIC,
    MATCH_REASONS,
    MATCH_STRING,
    MATCH_SYMBOLIC,
    MISMATCH,
    NO_ANSWER,
    PARSE_ERROR,
)

MAX_SYMBOLIC_CHARS = 400  # longer answers are compared as strings only: sympy time grows fast with size
MAX_PARTS = 64
MAX_NESTING = 8
_COST = {MATCH_STRING: 0, MATCH_NUMERIC: 1, MATCH_SYMBOLIC: 2}


def _canonical(answer: str) -> str:
    return answer.casefold() if len(answer) == 1 or is_text_answer(answer) else answer


def _compare_scalars(prediction: str, reference: str) -> str:
    reference_number, predicted_number = parse_number(reference), parse_number(prediction)
    if reference_number and predicted_number:
        return MATCH_NUMERIC if numbers_equal(predicted_number, reference_number) else MISMATCH
    if is_text_answer(prediction) or is_text_answer(reference):
        return MISMATCH
    if max(len(prediction), len(reference)) > MAX_SYMBOLIC_CHARS:
        return MISMATCH
    from etr_dist.reward import symbolic  # lazy: sympy and math-verify take about a second to import

    return symbolic.compare_symbolic(prediction, reference)


def _weakest_match(reasons: list[str]) -> str:
    return max(reasons, key=_COST.__getitem__, default=MATCH_STRING)


def _compare_unordered(predicted: tuple[str, ...], expected: tuple[str, ...], depth: int) -> str:
    """Match parts one to one; greedy suffices because answer equality is transitive (up to float tolerance)."""
    remaining, reasons = list(predicted), []
    for reference in expected:
        for index, prediction in enumerate(remaining):
            reason = _compare(prediction, reference, depth)
            if reason in MATCH_REASONS:
                reasons.append(reason)
                del remaining[index]
                break
        else:
            return MISMATCH
    return _weakest_match(reasons)


def _compare_composites(prediction: Composite | None, reference: Composite | None, depth: int) -> str:
    if prediction is None or reference is None:
        return MISMATCH
    same_form = (prediction.kind, prediction.ends, prediction.shape) == (
        reference.kind,
        reference.ends,
        reference.shape,
    )
    if not same_form or len(prediction.parts) != len(reference.parts) or len(reference.parts) > MAX_PARTS:
        return MISMATCH
    if reference.kind not in (ORDERED, MATRIX):
        return _compare_unordered(prediction.parts, reference.parts, depth + 1)
    reasons = []
    for predicted, expected in zip(prediction.parts, reference.parts, strict=True):
        reason = _compare(predicted, expected, depth + 1)
        if reason not in MATCH_REASONS:
            return reason
        reasons.append(reason)
    return _weakest_match(reasons)


def _compare(prediction: str, reference: str, depth: int) -> str:
    prediction, reference = normalize_answer(prediction), normalize_answer(reference)
    if not prediction:
        return NO_ANSWER
    if not reference:
        return PARSE_ERROR
    if _canonical(prediction) == _canonical(reference):
        return MATCH_STRING
    if depth < MAX_NESTING:
        predicted_parts, reference_parts = parse_composite(prediction), parse_composite(reference)
        if predicted_parts or reference_parts:
            return _compare_composites(predicted_parts, reference_parts, depth)
    return _compare_scalars(prediction, reference)


def compare_answers(prediction: str, reference: str) -> str:
    """The reason the extracted answer does or does not match the reference (a `types` reason word)."""
    return _compare(prediction, reference, depth=0)
