"""The Ray actor around RolloutWorker: engine calls run one at a time, status calls answer meanwhile."""

from __future__ import annotations

import ray
import torch
from ray.actor import ActorHandle

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
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

    @ray.method(concurrency_group="engine")
    def generate(self, prompts: list[Prompt], sampling: SamplingSpec) -> list[Completion]:
        self._in_flight += len(prompts)
        try:
            return self._worker.generate(prompts, sampling)
        finally:
            self._in_flight -= len(prompts)

    @ray.method(concurrency_group="engine")
    def update_weights(self, bucket_refs: list[ray.ObjectRef], version: int) -> None:
        """One whole sync from the object store: every bucket, then the version, in one engine call."""
        self._worker.update_weights((ray.get(ref) for ref in bucket_refs), version)

    @ray.method(concurrency_group="engine")
    def get_weights(self) -> dict[str, torch.Tensor]:
        return self._worker.get_weights()

    @ray.method(concurrency_group="engine")
    def join_weight_group(
        self, master_addr: str, master_port: int, world_size: int, rank: int, backend: str
    ) -> None:
        self._worker.join_weight_group(master_addr, master_port, world_size, rank, backend)

    @ray.method(concurrency_group="engine")
    def receive_weights(self, version: int) -> None:
        """One whole sync from the weight group, in one engine call."""
        self._worker.receive_weights(version)

    @ray.method(concurrency_group="status")
    def policy_version(self) -> int:
        return self._worker.policy_version

    @ray.method(concurrency_group="status")
    def in_flight(self) -> int:
        """Prompts in the generate call running now (calls waiting in Ray's queue are the router's count)."""
        return self._in_flight


def create_rollout_actors(
    model_path: str, cfg: RolloutConfig, model_dtype: str, plugins: tuple[str, ...] = ()
) -> list[ActorHandle]:
    """cfg.num_workers actors, each with the CPUs and GPUs the rollout config gives one worker."""
    return [
        RolloutActor.options(num_cpus=cfg.num_cpus_per_worker, num_gpus=cfg.num_gpus_per_worker).remote(
            model_path, cfg, model_dtype, plugins
        )
        for _ in range(cfg.num_workers)
    ]
