"""Ray shell around GraderPool: one actor owns the worker processes of a CPU node.

Run it with max_concurrency > 1 so the driver can grade completions as they stream in; GraderPool is
thread-safe and keeps its per-item kill timeout inside the actor, where signal.alarm could never fire.
"""

from __future__ import annotations

from typing import Any

import ray

from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.pool import GraderPool
from etr_dist.reward.types import Grade


class GraderActor:
    def __init__(self, reward_cfg: Any, reward_range: tuple[float, float] = (0.0, 1.0)) -> None:
        self._pool = GraderPool.from_config(reward_cfg, reward_range)

    def grade_batch(self, requests: list[tuple[str, str] | tuple[str, str, bool]]) -> list[Grade]:
        return self._pool.grade_batch(requests)

    def metrics(self) -> dict[str, float]:
        return self._pool.metrics()

    def close(self) -> None:
        self._pool.close()


def create_grader_actor(
    reward_cfg: Any,
    reward_range: tuple[float, float] = (0.0, 1.0),
    num_cpus: float | None = None,
    max_concurrency: int = 4,
) -> ray.actor.ActorHandle:
    """A GraderActor reserving `num_cpus` (default: one per worker process); a bad reward.fn fails here."""
    if reward_cfg.fn is not None:
        load_reward_fn(reward_cfg.fn)
    return (
        ray.remote(GraderActor)
        .options(
            num_cpus=reward_cfg.num_workers if num_cpus is None else num_cpus, max_concurrency=max_concurrency
        )
        .remote(reward_cfg, tuple(reward_range))
    )
