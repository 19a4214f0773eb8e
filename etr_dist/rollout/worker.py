"""A rollout worker: one engine plus the policy version it generates with; a plain class, Ray wraps it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.rollout.engine import ENGINES, SamplingSpec


class RolloutWorker:
    def __init__(self, model_path: str, cfg: RolloutConfig, model_dtype: str = "float32") -> None:
        self.engine = ENGINES.get(cfg.engine)(model_path, cfg, model_dtype)
        self._policy_version = 0
        self._weight_group: Any = None

    @property
    def policy_version(self) -> int:
        return self._policy_version

    def set_policy_version(self, version: int) -> None:
        if version < 0:
            raise ValueError(f"policy version must be >= 0, got {version}")
        self._policy_version = version

    def generate(self, prompts: list[Prompt], sampling: SamplingSpec) -> list[Completion]:
        """Completions stamped with the policy version they were sampled from (for bounded staleness)."""
        return self.engine.generate(prompts, sampling, self._policy_version)

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.engine.load_weights(named_tensors)

    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.engine.get_weights()

    def join_weight_group(
        self, master_addr: str, master_port: int, world_size: int, rank: int, backend: str
    ) -> None:
        """Join the process group in which learner rank 0 broadcasts weights (this worker is `rank`)."""
        from etr_dist.sync.broadcast import join_group

        self._weight_group = join_group(master_addr, master_port, world_size, rank, backend)

    def receive_broadcast(self, meta: list[tuple[str, str, tuple[int, ...]]]) -> None:
        """Receive one bucket, (name, dtype, shape) per tensor in send order, and load it."""
        if self._weight_group is None:
            raise RuntimeError(
                "receive_broadcast before join_weight_group: this worker is in no weight group"
            )
        from etr_dist.sync.broadcast import receive_tensors

        self.load_weights(receive_tensors(self._weight_group, meta, self.engine.device))
