"""Weight-sync transports behind one interface: `transport.sync(learner_actors, rollout_actors, ...)`.

`sync` runs on the driver; it has every learner rank run `push` at once, because gathering the ZeRO-3
partitions is collective. Rank 0 sends each gathered bucket to every rollout worker, then sets their policy
version. The learner actors expose `push_weights`, `weight_sync_endpoint` and `join_weight_group`; the rollout
actors expose `load_weights`, `set_policy_version`, `join_weight_group` and `receive_broadcast`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import ray
import torch

from etr_dist.registry import Registry
from etr_dist.sync.broadcast import WeightGroup, broadcast_tensors, tensor_meta

logger = logging.getLogger(__name__)


class WeightSource(Protocol):
    """What a transport needs from a learner rank (PolicyLearner)."""

    rank: int

    def export_weights(
        self, bucket_mb: float, device: torch.device | str = "cpu"
    ) -> Iterator[list[tuple[str, torch.Tensor]]]: ...


@dataclass(frozen=True)
class SyncStats:
    seconds: float
    bytes: int  # weight bytes delivered to each rollout worker
    num_buckets: int

    @property
    def gbps(self) -> float:
        return self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0

    def as_metrics(self) -> dict[str, float]:
        return {
            "timing_s/sync": self.seconds,
            "perf/weight_sync_bytes": float(self.bytes),
            "perf/weight_sync_gbps": self.gbps,
        }


class Transport(ABC):
    name: ClassVar[str]

    def sync(
        self, learner_actors: list[Any], rollout_actors: list[Any], bucket_mb: float, version: int
    ) -> SyncStats:
        """Copy the learner's weights into every rollout worker and stamp them with `version`."""
        if not rollout_actors:
            raise ValueError("weight sync needs at least one rollout worker")
        self.connect(learner_actors, rollout_actors)
        start = time.perf_counter()
        pushed = ray.get(
            [
                actor.push_weights.remote(self.name, rollout_actors, bucket_mb, version)
                for actor in learner_actors
            ]
        )
        stats = SyncStats(time.perf_counter() - start, *pushed[0])
        logger.info(
            "weight sync v%d via %s to %d workers: %d buckets, %.1f MB in %.3f s (%.3f GB/s)",
            version,
            self.name,
            len(rollout_actors),
            stats.num_buckets,
            stats.bytes / 1e6,
            stats.seconds,
            stats.gbps,
        )
        return stats

    @abstractmethod
    def connect(self, learner_actors: list[Any], rollout_actors: list[Any]) -> None:
        """Driver side, before every push: set up what the transport needs."""

    @classmethod
    def push(
        cls,
        source: WeightSource,
        rollout_actors: list[Any],
        bucket_mb: float,
        version: int,
        weight_group: WeightGroup | None,
    ) -> tuple[int, int]:
        """Learner side, on every rank: rank 0 sends (bytes, buckets); the others only join the gathers."""
        if source.rank != 0:
            for _ in source.export_weights(bucket_mb):
                pass
            return 0, 0
        sent = cls.send(source, rollout_actors, bucket_mb, weight_group)
        ray.get([actor.set_policy_version.remote(version) for actor in rollout_actors])
        return sent

    @staticmethod
    @abstractmethod
    def send(
        source: WeightSource, rollout_actors: list[Any], bucket_mb: float, weight_group: WeightGroup | None
    ) -> tuple[int, int]:
        """On learner rank 0: deliver every bucket of source.export_weights; returns (bytes, buckets)."""


TRANSPORTS: Registry[type[Transport]] = Registry("weight-sync transport", config_key="sync.transport")


def register_transport(name: str) -> Callable[[type[Transport]], type[Transport]]:
    def decorator(cls: type[Transport]) -> type[Transport]:
        cls.name = name
        return TRANSPORTS.register(name)(cls)

    return decorator


def _nbytes(bucket: list[tuple[str, torch.Tensor]]) -> int:
    return sum(tensor.nbytes for _, tensor in bucket)


@register_transport("object_store")
class ObjectStoreTransport(Transport):
    """Each bucket is put in Ray's object store once and its ref handed to every worker's load_weights."""

    def connect(self, learner_actors: list[Any], rollout_actors: list[Any]) -> None:
        """Nothing to set up: every actor already shares the object store."""

    @staticmethod
    def send(
        source: WeightSource, rollout_actors: list[Any], bucket_mb: float, weight_group: WeightGroup | None
    ) -> tuple[int, int]:
        sent = num_buckets = 0
        loading: list[ray.ObjectRef] = []
        for bucket in source.export_weights(bucket_mb):
            ref = ray.put(bucket)
            ray.get(
                loading
            )  # one bucket in flight: the next gather overlaps the last load, memory stays bounded
            loading = [actor.load_weights.remote(ref) for actor in rollout_actors]
            sent, num_buckets = sent + _nbytes(bucket), num_buckets + 1
        ray.get(loading)
        return sent, num_buckets


@register_transport("nccl")
class BroadcastTransport(Transport):
    """A collective group of learner rank 0 (the source) and the workers; NCCL on GPU, gloo on CPU.

    Formed on the first sync and kept; metadata of each bucket goes through Ray, the bytes through the group.
    """

    def __init__(self) -> None:
        self._members: list[Any] | None = None

    def connect(self, learner_actors: list[Any], rollout_actors: list[Any]) -> None:
        if self._members is not None:
            if list(rollout_actors) != self._members:
                raise ValueError(
                    "the nccl weight group was formed with other rollout workers; "
                    "create a new transport (and workers) to change them"
                )
            return
        address, port, backend = ray.get(learner_actors[0].weight_sync_endpoint.remote())
        world_size = len(rollout_actors) + 1
        joins = [learner_actors[0].join_weight_group.remote(address, port, world_size, 0, backend)]
        joins += [
            actor.join_weight_group.remote(address, port, world_size, rank, backend)
            for rank, actor in enumerate(rollout_actors, start=1)
        ]
        ray.get(joins)
        self._members = list(rollout_actors)

    @staticmethod
    def send(
        source: WeightSource, rollout_actors: list[Any], bucket_mb: float, weight_group: WeightGroup | None
    ) -> tuple[int, int]:
        if weight_group is None:
            raise RuntimeError("learner rank 0 is in no weight group: BroadcastTransport.connect forms it")
        sent = num_buckets = 0
        receiving: list[ray.ObjectRef] = []
        for bucket in source.export_weights(bucket_mb, device=weight_group.device):
            meta = tensor_meta(bucket)
            receiving += [actor.receive_broadcast.remote(meta) for actor in rollout_actors]
            sent, num_buckets = (
                sent + broadcast_tensors(weight_group, [t for _, t in bucket]),
                num_buckets + 1,
            )
        ray.get(receiving)
        return sent, num_buckets
