"""Assemble graded completions into groups and summarise a step's rollouts (pure, no Ray)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from etr_dist.data.records import Completion, Group, Prompt


@dataclass
class GroupAssembler:
    """Holds each prompt's graded completions until all `group_size` of them have arrived."""

    group_size: int
    _partial: dict[str, Group] = field(default_factory=dict)

    def add(
        self,
        prompt: Prompt,
        completions: Sequence[Completion],
        rewards: Sequence[float],
        reasons: Sequence[str],
    ) -> Group | None:
        if not len(completions) == len(rewards) == len(reasons):
            raise ValueError(
                f"prompt {prompt.id}: {len(completions)} completions, {len(rewards)} rewards, {len(reasons)} reasons"
            )
        group = self._partial.setdefault(prompt.id, Group(prompt=prompt, completions=[]))
        group.completions.extend(completions)
        group.rewards.extend(rewards)
        group.grade_reasons.extend(reasons)
        if len(group.completions) > self.group_size:
            raise ValueError(
                f"prompt {prompt.id}: {len(group.completions)} completions for a group of {self.group_size}"
            )
        if len(group.completions) < self.group_size:
            return None
        del self._partial[prompt.id]
        order = sorted(range(self.group_size), key=lambda i: group.completions[i].sample_idx)
        return Group(
            prompt=prompt,
            completions=[group.completions[i] for i in order],
            rewards=[group.rewards[i] for i in order],
            grade_reasons=[group.grade_reasons[i] for i in order],
        )

    @property
    def pending(self) -> int:
        return len(self._partial)


def rollout_metrics(groups: Sequence[Group], max_new_tokens: int, step: int) -> dict[str, float]:
    """verl-style reward and length metrics over the groups a step trains on."""
    rewards = [r for g in groups for r in g.rewards]
    lengths = [len(c.token_ids) for g in groups for c in g.completions]
    versions = [c.policy_version for g in groups for c in g.completions]
    if not rewards:
        return {}
    return {
        "critic/score/mean": sum(rewards) / len(rewards),
        "response_length/mean": sum(lengths) / len(lengths),
        "response_length/max": float(max(lengths)),
        "response_length/clip_ratio": sum(n >= max_new_tokens for n in lengths) / len(lengths),
        "sampling/staleness_mean": sum(step - v for v in versions) / len(versions),
        "sampling/staleness_max": float(max(step - v for v in versions)),
    }


def accuracy(groups: Sequence[Group]) -> float:
    """Fraction of graded completions scoring full reward, over every group drawn (kept or filtered)."""
    rewards = [r for g in groups for r in g.rewards]
    return sum(r >= 1.0 for r in rewards) / len(rewards) if rewards else 0.0
