"""The learner group: L Ray actors, each one PolicyLearner rank of a single torch.distributed group."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import ray
import torch

from etr_dist.config.schema import TimeoutsConfig
from etr_dist.faults import injection_point
from etr_dist.learner.batch import TrainBatch, shard_batch
from etr_dist.learner.metrics import RankMetrics, combine_ranks
from etr_dist.learner.policy_learner import LearnerSetup, PolicyLearner
from etr_dist.placement import RoleGroup, actor_options
from etr_dist.remote_calls import get_all
from etr_dist.rendezvous import HeldPort, join_store
from etr_dist.sync.broadcast import BACKEND_FOR_DEVICE, WeightGroup, join_group
from etr_dist.sync.transports import TRANSPORTS, Delivery, WeightSender


@ray.remote(max_restarts=0)  # a DeepSpeed group cannot take a new member: a lost rank ends the run
class LearnerActor:
    """Thin Ray shell around one PolicyLearner rank, its weight sender and its share of the weight group."""

    def __init__(self) -> None:
        self.learner: PolicyLearner | None = None
        self.weight_group: WeightGroup | None = None
        self.sender: WeightSender | None = None
        self._held: HeldPort | None = None  # rank 0: the rendezvous port, held until the group forms
        self._steps = 0

    def endpoint(self) -> tuple[str, int]:
        """Rank 0: bind a port on this node's address and keep it until setup hosts the rendezvous on it."""
        self._held = HeldPort(ray.util.get_node_ip_address())
        return self._held.address, self._held.port

    def setup(
        self,
        setup: LearnerSetup,
        rank: int,
        world_size: int,
        master_addr: str,
        master_port: int,
        timeout_s: float,
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
        held, self._held = self._held, None
        store = join_store(master_addr, master_port, world_size, timeout_s, held)
        self.learner = PolicyLearner(setup, rank, world_size, store, timeout_s)

    def train_step(self, shard: TrainBatch) -> RankMetrics:
        self._steps += 1
        if injection_point(f"learner_train_rank{self.learner.rank}", self._steps) == "nan":
            shard = dataclasses.replace(shard, advantages=torch.full_like(shard.advantages, float("nan")))
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
        """(address, held port, backend) of a weight-sync group that this rank hosts as its rank 0."""
        return (*self.endpoint(), BACKEND_FOR_DEVICE[self.learner.device.type])

    def join_weight_group(
        self, master_addr: str, master_port: int, world_size: int, rank: int, backend: str, timeout_s: float
    ) -> None:
        held, self._held = self._held, None
        self.weight_group = join_group(master_addr, master_port, world_size, rank, backend, timeout_s, held)

    def open_weight_sender(self, transport: str, rollout_actors: list[Any], bucket_mb: float) -> None:
        self.sender = TRANSPORTS.get(transport)(self.learner, rollout_actors, bucket_mb, self.weight_group)

    def push_weights(self, version: int) -> Delivery:
        return self.sender.push(version)


class LearnerGroup:
    """The learner ranks as Ray actors; every call on them waits within its deadline and names a lost rank."""

    def __init__(
        self, setup: LearnerSetup, timeouts: TimeoutsConfig, placement: RoleGroup | None = None
    ) -> None:
        learner = setup.learner
        if learner.num_ranks < 1:
            raise ValueError(f"learner.num_ranks must be >= 1, got {learner.num_ranks}")
        self.setup, self.learner_cfg, self.timeouts = setup, learner, timeouts
        cpus, gpus = learner.num_cpus_per_rank, learner.num_gpus_per_rank
        self.actors = [
            LearnerActor.options(**actor_options(cpus, gpus, placement, rank)).remote()
            for rank in range(learner.num_ranks)
        ]
        self.names = [f"learner rank {rank}" for rank in range(learner.num_ranks)]
        master_addr, master_port = self._wait(
            [self.actors[0].endpoint.remote()], "starting", timeouts.actor_start_s, "actor_start_s"
        )[0]
        setups = [
            a.setup.remote(setup, rank, len(self.actors), master_addr, master_port, timeouts.rendezvous_s)
            for rank, a in enumerate(self.actors)
        ]
        self._wait(setups, "loading the model", timeouts.actor_start_s, "actor_start_s")

    def _wait(self, refs: list, what: str, timeout_s: float, key: str) -> list:
        names = self.names[: len(refs)]
        return get_all(refs, names, f"learner {what}", timeout_s, f"cluster.timeouts.{key}")

    def _all(self, method: str, *args: Any, key: str = "checkpoint_s") -> list[Any]:
        refs = [getattr(actor, method).remote(*args) for actor in self.actors]
        return self._wait(refs, method, getattr(self.timeouts, key), key)

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
        steps = [actor.train_step.remote(ref) for actor, ref in zip(self.actors, refs, strict=True)]
        per_rank = self._wait(steps, f"train step {step}", self.timeouts.train_s, "train_s")
        metrics = combine_ranks(per_rank)
        metrics["actor/ppo_mini_batches"] = float(len(shards[0].mini_batches))
        return metrics

    def gathered_state_dict(self) -> dict:
        return self._all("gathered_state_dict", key="sync_s")[0]

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
