"""The grading request and the grade record every reward function returns, with its machine-readable reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

MATCH_STRING = "match_string"
MATCH_NUMERIC = "match_numeric"
MATCH_SYMBOLIC = "match_symbolic"
NO_ANSWER = "no_answer"
MISMATCH = "mismatch"
PARSE_ERROR = "parse_error"
TIMEOUT = "timeout"
WORKER_CRASH = "worker_crash"
REWARD_ERROR = "reward_error"  # the reward function raised or returned something that is not a grade
INPUT_TOO_LONG = "input_too_long"  # the reference is over max_input_chars: a data bug, not a wrong answer
CUSTOM = "custom"  # a custom reward function returned a bare number

MATCH_REASONS = (MATCH_STRING, MATCH_NUMERIC, MATCH_SYMBOLIC)


@dataclass(frozen=True)
class Grade:
    score: float
    reason: str
    extracted: str | None = None

    @classmethod
    def from_reason(cls, reason: str, extracted: str | None = None) -> Grade:
        return cls(1.0 if reason in MATCH_REASONS else 0.0, reason, extracted)


class GradeRequest(NamedTuple):
    """One item to grade. last_number_fallback is the dataset's choice (data.last_number_fallback), carried
    with each item because one run may grade training and evaluation sets that differ."""

    response: str
    reference: str
    last_number_fallback: bool = False
