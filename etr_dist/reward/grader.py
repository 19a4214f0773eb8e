"""The built-in math grader: extract the final answer, then compare it with the reference."""

from __future__ import annotations

from etr_dist.reward.compare import compare_answers
from etr_dist.reward.extract import extract_answer, extract_reference
from etr_dist.reward.types import NO_ANSWER, Grade


def grade(response: str, reference: str, *, last_number_fallback: bool = True) -> Grade:
    """Score 1.0 when the response's final answer equals the reference, else 0.0, with the reason."""
    extracted = extract_answer(response, last_number_fallback=last_number_fallback)
    if not extracted:
        return Grade(0.0, NO_ANSWER, extracted)
    return Grade.from_reason(compare_answers(extracted, extract_reference(reference)), extracted)
