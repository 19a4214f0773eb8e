"""The built-in math grader: extract the final answer, then compare it with the reference."""

from __future__ import annotations

from importlib.metadata import version

from etr_dist.reward.compare import compare_answers
from etr_dist.reward.extract import extract_answer, extract_reference
from etr_dist.reward.types import NO_ANSWER, Grade

# Bump on any change that can change a grade: runs record it (with the libraries') beside their rewards.
GRADER_VERSION = "2"
_ENGINE = ("math-verify", "latex2sympy2_extended", "sympy")


def grader_version() -> str:
    """This grader's version and its engine's, e.g. `2 (math-verify 0.9.0, ...)`: a change changes rewards."""
    return f"{GRADER_VERSION} ({', '.join(f'{name} {version(name)}' for name in _ENGINE)})"


def grade(response: str, reference: str, *, last_number_fallback: bool = False) -> Grade:
    """Score 1.0 when the response's final answer equals the reference, else 0.0, with the reason.

    last_number_fallback: with no explicit answer, grade the last number standing alone (arithmetic data,
    where replies are bare numbers; wrong for MATH-style data, where it rewards stray digits).
    """
    extracted = extract_answer(response, last_number_fallback=last_number_fallback)
    if not extracted:
        return Grade(0.0, NO_ANSWER, extracted)
    return Grade.from_reason(compare_answers(extracted, extract_reference(reference)), extracted)
