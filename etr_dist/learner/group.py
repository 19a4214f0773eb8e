"""The learner group: L Ray actors, each one PolicyLearner rank of a single torch.distributed group."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import ray

from etr_dist.config.schema import SyncConfig
from etr_dist.learner.batch import TrainBatch, shard_batch
from etr_dist.learner.metrics import RankMetrics, combine_ranks
from etr_dist.learner.policy_learner import LearnerSetup, PolicyLearner
from etr_dist.sync.broadcast import BACKEND_FOR_DEVICE, WeightGroup, join_group
from etr_dist.sync.transports import TRANSPORTS


def free_port() -> int:
    """A port the OS just had free on this node (for a rendezvous that starts right after)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


@ray.remote
class LearnerActor:
    """Thin Ray shell around one PolicyLearner rank and its membership of the weight-sync group."""

    def __init__(self) -> None:
        self.learner: PolicyLearner | None = None
        self.weight_group: WeightGroup | None = None

    def endpoint(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), free_port()

    def setup(
        self, setup: LearnerSetup, rank: int, world_size: int, master_addr: str, master_port: int
    ) -> None:
        # Ray gives each rank its own GPU (CUDA_VISIBLE_DEVICES), so the local device index is always 0
        os.environ.update(
            RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_RANK="0",
            MASTER_ADDR=master_addr,
            MASTER_PORT=str(master_port),
        )
        # DeepSpeed's ZeRO-3 collectives call torch's deprecated names on every step: one line per call.
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")
        self.learner = PolicyLearner(setup, rank, world_size)

    def train_step(self, shard: TrainBatch) -> RankMetrics:
        return self.learner.train_step(shard)

    def gathered_state_dict(self) -> dict:
        return self.learner.gathered_state_dict()

    def save_checkpoint(self, directory: str, client_state: dict[str, Any]) -> None:
        self.learner.save_checkpoint(directory, client_state)

    def load_checkpoint(self, directory: str) -> dict[str, Any]:
        return self.learner.load_checkpoint(directory)

    def save_hf(self, directory: str) -> None:
        self.learner.save_hf(directory)

    def weight_sync_endpoint(self) -> tuple[str, int, str]:
        """(address, free port, backend) for a weight-sync group that this rank hosts as its rank 0."""
        return (*self.endpoint(), BACKEND_FOR_DEVICE[self.learner.device.type])

    def join_weight_group(
        self, master_addr: str, master_port: int, world_size: int, rank: int, backend: str
    ) -> None:
        self.weight_group = join_group(master_addr, master_port, world_size, rank, backend)

    def push_weights(
        self, transport: str, rollout_actors: list[Any], bucket_mb: float, version: int
    ) -> tuple:
        return TRANSPORTS.get(transport).push(
            self.learner, rollout_actors, bucket_mb, version, self.weight_group
        )


class LearnerGroup:
    def __init__(self, setup: LearnerSetup, sync: SyncConfig) -> None:
        learner = setup.learner
        if learner.num_ranks < 1:
            raise ValueError(f"learner.num_ranks must be >= 1, got {learner.num_ranks}")
        self.setup, self.learner_cfg, self.sync_cfg = setup, learner, sync
        self.transport = TRANSPORTS.get(sync.transport)()
        actor = LearnerActor.options(num_cpus=learner.num_cpus_per_rank, num_gpus=learner.num_gpus_per_rank)
        self.actors = [actor.remote() for _ in range(learner.num_ranks)]
        master_addr, master_port = ray.get(self.actors[0].endpoint.remote())
        ray.get(
            [
                a.setup.remote(setup, rank, len(self.actors), master_addr, master_port)
                for rank, a in enumerate(self.actors)
            ]
        )

    def _all(self, method: str, *args: Any) -> list[Any]:
        return ray.get([getattr(actor, method).remote(*args) for actor in self.actors])

    def train_step(self, batch: TrainBatch, step: int = 0) -> dict[str, float]:
        """Shard the step batch (its normalisers are already global), one put per shard; metrics of all ranks.

        Groups go to mini-batches by a permutation seeded with (learner.seed, step).
        """
        learner = self.learner_cfg
        seed = learner.seed * 1_000_003 + step
        shards = shard_batch(
            batch, len(self.actors), learner.ppo_mini_batches, seed, self.setup.skips_zero_advantage
        )
        refs = [ray.put(shard) for shard in shards]
        per_rank = ray.get(
            [actor.train_step.remote(ref) for actor, ref in zip(self.actors, refs, strict=True)]
        )
        metrics = combine_ranks(per_rank)
        metrics["actor/ppo_mini_batches"] = float(len(shards[0].mini_batches))
        return metrics

    def sync_weights(self, rollout_actors: list[Any], version: int) -> dict[str, float]:
        """Copy the weights into the rollout workers; timing_s/sync, perf/weight_sync_{bytes,gbps}."""
        stats = self.transport.sync(self.actors, rollout_actors, self.sync_cfg.bucket_mb, version)
        return stats.as_metrics()

    def gathered_state_dict(self) -> dict:
        return self._all("gathered_state_dict")[0]

    def save_checkpoint(self, directory: str | Path, client_state: dict[str, Any]) -> None:
        self._all("save_checkpoint", str(directory), client_state)

    def load_checkpoint(self, directory: str | Path) -> dict[str, Any]:
        return self._all("load_checkpoint", str(directory))[0]

    def save_hf(self, directory: str | Path) -> None:
        self._all("save_hf", str(directory))

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
