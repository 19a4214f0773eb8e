"""Reduce one rank's micro-batch metrics to the train step's: shares add up, the rest are token means."""

from __future__ import annotations

from collections import defaultdict

from etr_dist.learner.objective import SHARE_METRICS


class StepMetrics:
    """A share metric (a micro-batch's part of the loss) is summed over each optimizer step's micro-batches
    and multiplied by world_size, so the mean over ranks is the mini-batch's loss; the others are averaged
    with weight = response tokens. Optimizer steps (mini-batches x epochs) are averaged.
    """

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._shares: dict[str, float] = defaultdict(float)
        self._step_shares: dict[str, list[float]] = defaultdict(list)
        self._weighted: dict[str, float] = defaultdict(float)
        self._weights: dict[str, float] = defaultdict(float)
        self._grad_norms: list[float] = []
        self._lrs: list[float] = []

    def add_micro_batch(self, metrics: dict[str, float], loss_weight: float, num_tokens: int) -> None:
        for name, value in metrics.items():
            if name in SHARE_METRICS:
                self._shares[name] += loss_weight * value
            elif loss_weight * num_tokens > 0:
                self._weighted[name] += loss_weight * num_tokens * value
                self._weights[name] += loss_weight * num_tokens

    def add_optimizer_step(self, grad_norm: float, lr: float) -> None:
        for name, value in self._shares.items():
            self._step_shares[name].append(value * self.world_size)
        self._shares.clear()
        self._grad_norms.append(grad_norm)
        self._lrs.append(lr)

    def result(self) -> dict[str, float]:
        result = {name: sum(values) / len(values) for name, values in self._step_shares.items()}
        result |= {name: total / self._weights[name] for name, total in self._weighted.items()}
        if self._grad_norms:
            result["actor/grad_norm"] = sum(self._grad_norms) / len(self._grad_norms)
            result["actor/lr"] = self._lrs[-1]
        return result
