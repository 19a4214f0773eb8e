"""Ray shell around GraderPool: one actor owns the worker processes of a CPU node.

Run it with max_concurrency > 1 so the driver can grade completions as they stream in; GraderPool is
thread-safe and keeps its per-item kill timeout inside the actor, where signal.alarm could never fire.
Ray restarts a dead actor (max_restarts) by running __init__ again, which builds a fresh pool; its old worker
processes die with the old actor (the forkserver exits with its owner, each worker with the forkserver).
"""

from __future__ import annotations

import itertools
import os
import socket
from typing import Any

import ray

from etr_dist.faults import injection_point
from etr_dist.placement import RoleGroup, actor_options
from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.pool import GraderPool
from etr_dist.reward.types import Grade


class GraderActor:
    def __init__(self, reward_cfg: Any, reward_range: tuple[float, float] = (0.0, 1.0)) -> None:
        if reward_cfg.fn is not None:
            try:
                load_reward_fn(reward_cfg.fn)
            except (ImportError, ValueError) as err:
                raise type(err)(
                    f"{err} (on the grader actor's node {socket.gethostname()}: "
                    "reward.fn must be importable there too, not only on the driver)"
                ) from err
        self._pool = GraderPool.from_config(reward_cfg, reward_range)
        self._calls = itertools.count(1)  # next() is atomic: calls run on several threads

    def grade_batch(self, requests: list[tuple[str, str] | tuple[str, str, bool]]) -> list[Grade]:
        injection_point("grader_grade", next(self._calls))
        return self._pool.grade_batch(requests)

    def metrics(self) -> dict[str, float]:
        return self._pool.metrics()

    def pid(self) -> int:
        """The actor's process id: what a fault test kills."""
        return os.getpid()

    def close(self) -> None:
        self._pool.close()


def create_grader_actor(
    reward_cfg: Any,
    reward_range: tuple[float, float] = (0.0, 1.0),
    num_cpus: float | None = None,
    max_concurrency: int = 4,
    max_restarts: int = 3,
    placement: RoleGroup | None = None,
) -> ray.actor.ActorHandle:
    """A GraderActor reserving `num_cpus` (default: one per worker process) and no GPU, in its placement bundle
    when given; a bad reward.fn fails here. A dead actor is restarted up to max_restarts times; calls in flight
    then fail (max_task_retries=0) and the caller re-sends them, so no batch is graded twice behind its back."""
    if reward_cfg.fn is not None:
        load_reward_fn(reward_cfg.fn)
    cpus = reward_cfg.num_workers if num_cpus is None else num_cpus
    return (
        ray.remote(GraderActor)
        .options(
            **actor_options(cpus, 0, placement, 0),
            max_concurrency=max_concurrency,
            max_restarts=max_restarts,
            max_task_retries=0,
        )
        .remote(reward_cfg, tuple(reward_range))
    )
