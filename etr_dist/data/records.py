"""The records that flow between roles: prompts out, completions back, graded groups to the learner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str  # the question as the dataset gives it, after the prompt template
    answer: str  # the reference answer the grader compares with
    source: str
    messages: list[dict[str, str]] | None = None  # chat form; the engine applies the tokenizer's template
    prompt_token_ids: tuple[int, ...] | None = None  # tokenised once: every engine sees the same ids
    last_number_fallback: bool = False  # the dataset's grading choice (data.last_number_fallback)


@dataclass
class Completion:
    prompt_id: str
    sample_idx: int
    token_ids: list[int]
    logprobs: list[float]  # behaviour policy's log-prob of each sampled token
    text: str
    finish_reason: str  # stop | length
    policy_version: int


@dataclass
class Group:
    prompt: Prompt
    completions: list[Completion]
    rewards: list[float] = field(default_factory=list)
    grade_reasons: list[str] = field(default_factory=list)

    @property
    def is_degenerate(self) -> bool:
        """All rewards equal: every advantage is 0, so the group carries no gradient."""
        return len(set(self.rewards)) <= 1

    @property
    def pass_rate(self) -> float:
        return sum(self.rewards) / max(len(self.rewards), 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt.id,
            "prompt": self.prompt.text,
            "answer": self.prompt.answer,
            "completions": [c.text for c in self.completions],
            "rewards": self.rewards,
            "grade_reasons": self.grade_reasons,
            "policy_versions": [c.policy_version for c in self.completions],
        }
