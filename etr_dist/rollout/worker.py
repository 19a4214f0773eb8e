"""A rollout worker: one engine plus the policy version it generates with; a plain class, Ray wraps it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.rollout.engine import ENGINES, SamplingSpec


class StaleWeightsError(RuntimeError):
    """A generate request reached a worker that holds older weights than the driver requires."""


class RolloutWorker:
    def __init__(self, model_path: str, cfg: RolloutConfig, model_dtype: str = "float32") -> None:
        self.engine = ENGINES.get(cfg.engine)(model_path, cfg, model_dtype)
        self._policy_version = 0
        self._weight_group: Any = None

    @property
    def policy_version(self) -> int:
        return self._policy_version

    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, min_version: int = 0
    ) -> list[Completion]:
        """Completions stamped with the policy version they were sampled from (for bounded staleness).

        Below `min_version` (a restarted worker holds its initial weights) it refuses: the driver replays the
        last sync first.
        """
        if self._policy_version < min_version:
            raise StaleWeightsError(
                f"this worker holds weights v{self._policy_version}, the driver asks for >= v{min_version}"
            )
        return self.engine.generate(prompts, sampling, self._policy_version)

    def update_weights(self, buckets: Iterable[Iterable[tuple[str, torch.Tensor]]], version: int) -> int:
        """Load every bucket of one sync, then take its version: in one call, so no generate sees a mix.

        A version older than the one held is ignored: a replay that lost a race with a newer sync. Returns the
        version held before (0 after a restart: how the driver counts restarts).
        """
        if version < 0:
            raise ValueError(f"policy version must be >= 0, got {version}")
        held = self._policy_version
        if version < held:
            for _ in buckets:  # drained all the same: a group broadcast needs every member to take part
                pass
            return held
        for bucket in buckets:
            self.engine.load_weights(bucket)
        self._policy_version = version
        return held

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.engine.get_weights()

    def join_weight_group(
        self,
        master_addr: str,
        master_port: int,
        world_size: int,
        rank: int,
        backend: str,
        timeout_s: float = 600.0,
    ) -> None:
        """Join the process group in which learner rank 0 broadcasts weights (this worker is `rank`)."""
        from etr_dist.sync.broadcast import join_group

        self._weight_group = join_group(master_addr, master_port, world_size, rank, backend, timeout_s)

    def receive_weights(self, version: int) -> int:
        """Take one whole sync from the weight group (learner rank 0 sends it), then its version."""
        if self._weight_group is None:
            raise RuntimeError("receive_weights before join_weight_group: this worker is in no weight group")
        from etr_dist.sync.broadcast import receive_buckets

        return self.update_weights(receive_buckets(self._weight_group, self.engine.device), version)
