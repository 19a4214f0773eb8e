"""Weight-sync transports behind one interface: `transport.sync(learner_actors, rollout_actors, ...)`.

`sync` runs on the driver; it has every learner rank run `push` at once, because gathering the ZeRO-3
partitions is collective. Rank 0 delivers the gathered buckets to every rollout worker, which takes the whole
sync, every bucket and then the version the driver chose, in ONE engine call: no generate on that worker can
run between two buckets, so a sample never comes from a half-updated model or carries the wrong version. The
learner actors expose `push_weights`, `weight_sync_endpoint` and `join_weight_group`; the rollout actors expose
`update_weights`, `receive_weights` and `join_weight_group`.
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
from etr_dist.sync.broadcast import WeightGroup, send_bucket, send_end

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
        return cls.send(source, rollout_actors, bucket_mb, version, weight_group)

    @staticmethod
    @abstractmethod
    def send(
        source: WeightSource,
        rollout_actors: list[Any],
        bucket_mb: float,
        version: int,
        weight_group: WeightGroup | None,
    ) -> tuple[int, int]:
        """On learner rank 0: every bucket of source.export_weights and `version`, as one call per worker;
        returns (bytes, buckets)."""


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
    """Each bucket is put in Ray's object store once; every worker gets the list of refs in one call.

    The object store holds the whole model while the workers load it (a sync is one call per worker).
    """

    def connect(self, learner_actors: list[Any], rollout_actors: list[Any]) -> None:
        """Nothing to set up: every actor already shares the object store."""

    @staticmethod
    def send(
        source: WeightSource,
        rollout_actors: list[Any],
        bucket_mb: float,
        version: int,
        weight_group: WeightGroup | None,
    ) -> tuple[int, int]:
        refs, sent = [], 0
        for bucket in source.export_weights(bucket_mb):
            refs.append(ray.put(bucket))
            sent += _nbytes(bucket)
        ray.get([actor.update_weights.remote(refs, version) for actor in rollout_actors])
        return sent, len(refs)


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
        source: WeightSource,
        rollout_actors: list[Any],
        bucket_mb: float,
        version: int,
        weight_group: WeightGroup | None,
    ) -> tuple[int, int]:
        if weight_group is None:
            raise RuntimeError("learner rank 0 is in no weight group: BroadcastTransport.connect forms it")
        receiving = [actor.receive_weights.remote(version) for actor in rollout_actors]  # one call: the sync
        sent = num_buckets = 0
        for bucket in source.export_weights(bucket_mb, device=weight_group.device):
            sent, num_buckets = sent + send_bucket(weight_group, bucket), num_buckets + 1
        send_end(weight_group)
        ray.get(receiving)
        return sent, num_buckets
