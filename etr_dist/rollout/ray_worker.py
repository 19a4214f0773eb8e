"""The Ray actor around RolloutWorker: engine calls run one at a time, status calls answer meanwhile.

Ray restarts a dead actor (max_restarts): it reloads the initial weights as version 0, and its `generate` refuses
to run below the version the driver asks for until the driver has replayed the last sync to it.
"""

from __future__ import annotations

import os

import ray
import torch
from ray.actor import ActorHandle

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.faults import injection_point
from etr_dist.placement import RoleGroup, actor_options
from etr_dist.registry import import_plugins
from etr_dist.rollout.engine import SamplingSpec
from etr_dist.rollout.worker import RolloutWorker


@ray.remote(concurrency_groups={"engine": 1, "status": 1})
class RolloutActor:
    def __init__(
        self, model_path: str, cfg: RolloutConfig, model_dtype: str, plugins: tuple[str, ...] = ()
    ) -> None:
        import_plugins(plugins)  # e.g. a plugin's engine must be registered in this process too
        self._worker = RolloutWorker(model_path, cfg, model_dtype)
        self._in_flight = 0
        self._calls = 0

    @ray.method(concurrency_group="engine")
    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, min_version: int = 0
    ) -> list[Completion]:
        self._calls += 1
        injection_point("rollout_generate", self._calls)
        self._in_flight += len(prompts)
        try:
            return self._worker.generate(prompts, sampling, min_version)
        finally:
            self._in_flight -= len(prompts)

    @ray.method(concurrency_group="engine")
    def update_weights(self, bucket_refs: list[ray.ObjectRef], version: int) -> int:
        """One whole sync from the object store: every bucket, then the version, in one engine call."""
        return self._worker.update_weights((ray.get(ref) for ref in bucket_refs), version)

    @ray.method(concurrency_group="engine")
    def get_weights(self) -> dict[str, torch.Tensor]:
        return self._worker.get_weights()

    @ray.method(concurrency_group="engine")
    def join_weight_group(
        self, master_addr: str, master_port: int, world_size: int, rank: int, backend: str, timeout_s: float
    ) -> None:
        self._worker.join_weight_group(master_addr, master_port, world_size, rank, backend, timeout_s)

    @ray.method(concurrency_group="engine")
    def receive_weights(self, version: int) -> int:
        """One whole sync from the weight group, in one engine call."""
        return self._worker.receive_weights(version)

    @ray.method(concurrency_group="status")
    def policy_version(self) -> int:
        return self._worker.policy_version

    @ray.method(concurrency_group="status")
    def in_flight(self) -> int:
        """Prompts in the generate call running now (calls waiting in Ray's queue are the router's count)."""
        return self._in_flight

    @ray.method(concurrency_group="status")
    def pid(self) -> int:
        return os.getpid()


def create_rollout_actors(
    model_path: str,
    cfg: RolloutConfig,
    model_dtype: str,
    plugins: tuple[str, ...] = (),
    max_restarts: int = 0,
    placement: RoleGroup | None = None,
) -> list[ActorHandle]:
    """cfg.num_workers actors, each with the CPUs and GPUs the rollout config gives one worker (in its bundle of
    the role's placement group when given).

    A call in flight when a worker dies is not retried by Ray (max_task_retries=0): the collector re-dispatches
    it, so no request runs twice.
    """
    return [
        RolloutActor.options(
            **actor_options(cfg.num_cpus_per_worker, cfg.num_gpus_per_worker, placement, index),
            max_restarts=max_restarts,
            max_task_retries=0,
        ).remote(model_path, cfg, model_dtype, plugins)
        for index in range(cfg.num_workers)
    ]
