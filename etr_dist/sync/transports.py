"""Weight-sync transports: one WeightSender per learner rank, built once with everything it needs.

A sync gathers the ZeRO-3 partitions, which is collective: every rank's sender runs `push(version)` at once and
only rank 0 delivers. Each rollout worker takes the whole sync, every bucket and then the version the driver
chose, in ONE engine call: no generate on that worker runs between two buckets, so a sample never comes from a
half-updated model or carries the wrong version. The driver side is etr_dist.sync.manager.WeightSyncManager.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import ray
import torch
from ray.exceptions import RayActorError

from etr_dist.registry import Registry
from etr_dist.sync.broadcast import WeightGroup, send_bucket, send_end


class WeightSource(Protocol):
    """What a sender needs from a learner rank (PolicyLearner)."""

    rank: int

    def export_weights(
        self, bucket_mb: float, device: torch.device | str = "cpu"
    ) -> Iterator[list[tuple[str, torch.Tensor]]]: ...


@dataclass(frozen=True)
class Delivery:
    """What rank 0 delivered in one sync; `replay` (object store refs) lets a restarted worker catch up."""

    bytes: int  # weight bytes delivered to each rollout worker
    num_buckets: int
    replay: list[ray.ObjectRef] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)  # workers that were down (restarting) during the sync
    restarted: list[int] = field(
        default_factory=list
    )  # workers found holding older weights than the last sync


class WeightSender(ABC):
    """The per-rank endpoint of a transport, bound once to its rank, workers, bucket size and group."""

    name: ClassVar[str]
    forms_group: ClassVar[bool] = False  # the driver forms a collective group of rank 0 and the workers first
    replays: ClassVar[bool] = False  # a restarted worker can be given the last sync again

    def __init__(
        self,
        source: WeightSource,
        rollout_actors: list[Any],
        bucket_mb: float,
        group: WeightGroup | None = None,
    ) -> None:
        if self.forms_group and source.rank == 0 and group is None:
            raise RuntimeError(f"the {self.name} transport needs learner rank 0 in a weight group")
        self.source, self.rollout_actors, self.bucket_mb, self.group = (
            source,
            rollout_actors,
            bucket_mb,
            group,
        )
        self._delivered = 0  # the version of the last sync this sender delivered

    def push(self, version: int) -> Delivery:
        """On every rank: rank 0 delivers; the others only join the gathers."""
        if self.source.rank != 0:
            for _ in self.source.export_weights(self.bucket_mb):
                pass
            return Delivery(0, 0)
        return self.send(version)

    @abstractmethod
    def send(self, version: int) -> Delivery:
        """On rank 0: every bucket of source.export_weights, then `version`, as one call per worker."""


TRANSPORTS: Registry[type[WeightSender]] = Registry("weight-sync transport", config_key="sync.transport")


def register_transport(name: str) -> Callable[[type[WeightSender]], type[WeightSender]]:
    def decorator(cls: type[WeightSender]) -> type[WeightSender]:
        cls.name = name
        return TRANSPORTS.register(name)(cls)

    return decorator


def _nbytes(bucket: list[tuple[str, torch.Tensor]]) -> int:
    return sum(tensor.nbytes for _, tensor in bucket)


@register_transport("object_store")
class ObjectStoreSender(WeightSender):
    """Each bucket is put in Ray's object store once; every worker gets the list of refs in one call.

    The refs go back to the driver, which keeps the last sync's (one model copy in the object store) so that a
    restarted worker is given the current weights before it generates again.
    """

    replays = True

    def send(self, version: int) -> Delivery:
        refs, sent = [], 0
        for bucket in self.source.export_weights(self.bucket_mb):
            refs.append(ray.put(bucket))
            sent += _nbytes(bucket)
        calls = [actor.update_weights.remote(refs, version) for actor in self.rollout_actors]
        missed, restarted = [], []
        for worker, call in enumerate(calls):
            try:
                held = ray.get(call)
            except RayActorError:  # restarting: it refuses to generate until the driver replays this sync
                missed.append(worker)
                continue
            if held < self._delivered:  # back to its initial weights: restarted since the last sync
                restarted.append(worker)
        self._delivered = version
        return Delivery(sent, len(refs), refs, missed, restarted)


@register_transport("nccl")
class BroadcastSender(WeightSender):
    """A collective group of learner rank 0 (the source) and the workers; NCCL on GPU, gloo on CPU.

    Metadata of each bucket goes through the group as a header, the bytes as one flat buffer. The group cannot
    take a new member, so a restarted worker cannot be replayed: the run fails naming it (resume continues).
    """

    forms_group = True

    def send(self, version: int) -> Delivery:
        receiving = [actor.receive_weights.remote(version) for actor in self.rollout_actors]
        sent = num_buckets = 0
        for bucket in self.source.export_weights(self.bucket_mb, device=self.group.device):
            sent, num_buckets = sent + send_bucket(self.group, bucket), num_buckets + 1
        send_end(self.group)
        ray.get(receiving)
        return Delivery(sent, num_buckets)
