"""The driver side of weight sync, bound once: the transport, the learner ranks, the rollout workers, bucket size
and deadlines. `sync(version)` runs every rank's sender at once; `replay(i)` brings a restarted worker up to
the last synced version before it generates again."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from etr_dist.config.schema import TimeoutsConfig
from etr_dist.remote_calls import RemoteCallError, call_when_back, get_all, get_one
from etr_dist.sync.transports import TRANSPORTS

logger = logging.getLogger(__name__)


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


class WeightSyncManager:
    def __init__(
        self,
        transport: str,
        learner_actors: list[Any],
        rollout_actors: list[Any],
        bucket_mb: float,
        timeouts: TimeoutsConfig,
    ) -> None:
        if not rollout_actors:
            raise ValueError("weight sync needs at least one rollout worker")
        self.transport, self.timeouts = transport, timeouts
        self.learner_actors, self.rollout_actors = list(learner_actors), list(rollout_actors)
        self._ranks = [f"learner rank {r}" for r in range(len(self.learner_actors))]
        sender = TRANSPORTS.get(transport)
        self.replays = sender.replays
        if sender.forms_group:
            self._form_group()
        opening = [
            actor.open_weight_sender.remote(transport, self.rollout_actors, bucket_mb)
            for actor in self.learner_actors
        ]
        get_all(
            opening, self._ranks, "opening the weight senders", timeouts.rendezvous_s, _key("rendezvous_s")
        )
        self._lock = threading.Lock()  # replay runs on the rollout thread, sync on the training loop's
        self._last: tuple[list, int] = ([], -1)  # the last sync's replay refs and version
        self.worker_restarts = (
            0  # rollout workers found back on their initial weights (by a sync or a replay)
        )

    def _form_group(self) -> None:
        """Learner rank 0 hosts the group's store on a port it holds; every worker joins as rank 1..R."""
        source = self.learner_actors[0]
        address, port, backend = get_one(
            source.weight_sync_endpoint.remote(),
            "learner rank 0",
            "hosting the weight group",
            self.timeouts.rendezvous_s,
            _key("rendezvous_s"),
        )
        size, timeout_s = len(self.rollout_actors) + 1, self.timeouts.rendezvous_s
        joins = [source.join_weight_group.remote(address, port, size, 0, backend, timeout_s)]
        joins += [
            actor.join_weight_group.remote(address, port, size, rank, backend, timeout_s)
            for rank, actor in enumerate(self.rollout_actors, start=1)
        ]
        names = ["learner rank 0"] + [f"rollout worker {i}" for i in range(len(self.rollout_actors))]
        get_all(joins, names, "forming the weight group", timeout_s, _key("rendezvous_s"))

    def sync(self, version: int) -> SyncStats:
        """Copy the learner's weights into every rollout worker and stamp them with `version`."""
        start = time.perf_counter()
        pushes = [actor.push_weights.remote(version) for actor in self.learner_actors]
        deliveries = get_all(
            pushes, self._ranks, f"weight sync v{version}", self.timeouts.sync_s, _key("sync_s")
        )
        stats = SyncStats(time.perf_counter() - start, deliveries[0].bytes, deliveries[0].num_buckets)
        with self._lock:
            self._last = (deliveries[0].replay, version)
        if deliveries[0].missed:
            logger.warning("weight sync v%d missed restarting workers %s", version, deliveries[0].missed)
        with self._lock:
            self.worker_restarts += len(deliveries[0].restarted)
        logger.info(
            "weight sync v%d via %s to %d workers: %d buckets, %.1f MB in %.3f s (%.3f GB/s)",
            version,
            self.transport,
            len(self.rollout_actors),
            stats.num_buckets,
            stats.bytes / 1e6,
            stats.seconds,
            stats.gbps,
        )
        return stats

    def replay(self, worker: int) -> None:
        """Give restarted worker `worker` the last sync (it reloaded the initial weights as version 0)."""
        if not self.replays:
            raise RemoteCallError(
                f"rollout worker {worker} was restarted, and the {self.transport} weight group cannot take a new "
                "member: continue the run with trainer.resume=auto, or use sync.transport=object_store, which "
                "replays the last weights to a restarted worker"
            )
        with self._lock:
            refs, version = self._last
        if version < 0:
            return  # nothing synced yet: the initial weights it reloaded are the current ones
        held = call_when_back(
            lambda: self.rollout_actors[worker].update_weights.remote(refs, version),
            f"rollout worker {worker}",
            f"replaying weights v{version}",
            self.timeouts.actor_start_s,
            _key("actor_start_s"),
        )
        with self._lock:
            self.worker_restarts += held < version


def _key(name: str) -> str:
    return f"cluster.timeouts.{name}"
