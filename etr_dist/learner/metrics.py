"""Reduce micro-batch metrics to the train step's: shares add up, the rest are token-weighted means.

Each rank reduces its own micro-batches (StepMetrics); the group then combines the ranks by their token
weights (combine_ranks), so a rank holding more response tokens counts for more, as one big batch would.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from etr_dist.learner.objective import SHARE_METRICS


@dataclass
class RankMetrics:
    """One rank's step: means over ranks (shares, grad norm, lr) and token-weighted (total, weight) pairs."""

    means: dict[str, float] = field(default_factory=dict)
    weighted: dict[str, tuple[float, float]] = field(default_factory=dict)


class StepMetrics:
    """A share metric (a micro-batch's part of the loss) is summed over each optimizer step's micro-batches
    and multiplied by world_size, so the mean over ranks is the mini-batch's loss; the others are weighted by
    response tokens. Optimizer steps (mini-batches x epochs) are averaged.
    """

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._shares: dict[str, float] = defaultdict(float)
        self._step_shares: dict[str, list[float]] = defaultdict(list)
        self._weighted: dict[str, float] = defaultdict(float)
        self._weights: dict[str, float] = defaultdict(float)
        self._grad_norms: list[float] = []
        self._lrs: list[float] = []
        self._skipped = 0

    def add_micro_batch(self, metrics: dict[str, float], loss_weight: float, num_tokens: int) -> None:
        for name, value in metrics.items():
            if name in SHARE_METRICS:
                self._shares[name] += loss_weight * value
            elif loss_weight * num_tokens > 0:
                self._weighted[name] += loss_weight * num_tokens * value
                self._weights[name] += loss_weight * num_tokens

    def add_optimizer_step(self, grad_norm: float, lr: float, skipped: bool = False) -> None:
        """skipped: the engine dropped this update (non-finite gradient); counted, never hidden."""
        for name, value in self._shares.items():
            self._step_shares[name].append(value * self.world_size)
        self._shares.clear()
        self._grad_norms.append(grad_norm)
        self._lrs.append(lr)
        self._skipped += int(skipped)

    def result(self) -> RankMetrics:
        means = {name: sum(values) / len(values) for name, values in self._step_shares.items()}
        if self._grad_norms:
            means["actor/grad_norm"] = sum(self._grad_norms) / len(self._grad_norms)
            means["actor/lr"] = self._lrs[-1]
            means["actor/optimizer_steps"] = float(len(self._grad_norms))
            means["actor/skipped_steps"] = float(self._skipped)
        weighted = {name: (total, self._weights[name]) for name, total in self._weighted.items()}
        return RankMetrics(means, weighted)


def combine_ranks(per_rank: list[RankMetrics]) -> dict[str, float]:
    """The step's metrics: rank means of `means`, and sum(total) / sum(weight) of the token-weighted ones."""
    combined: dict[str, float] = {}
    for name in sorted({name for rank in per_rank for name in rank.means}):
        values = [rank.means[name] for rank in per_rank if name in rank.means]
        combined[name] = sum(values) / len(values)
    for name in sorted({name for rank in per_rank for name in rank.weighted}):
        pairs = [rank.weighted[name] for rank in per_rank if name in rank.weighted]
        weight = sum(w for _, w in pairs)
        combined[name] = sum(t for t, _ in pairs) / weight if weight > 0 else 0.0
    return combined
