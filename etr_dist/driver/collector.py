"""Stream prompts to rollout workers and graded groups back: dynamic sampling, refill, bounded staleness, and
recovery: every call is in a ledger with a deadline; a dead or late one is sent again (a restarted rollout
worker is first given the last weights)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import ActorDiedError, RayActorError

from etr_dist.config.schema import ClusterConfig, TrainerConfig
from etr_dist.data.records import Group
from etr_dist.driver.groups import GroupAssembler
from etr_dist.driver.ledger import GENERATE, GRADE, FaultCounts, Ledger, Request
from etr_dist.remote_calls import RemoteCallError, call_when_back
from etr_dist.reward.types import GradeRequest
from etr_dist.rollout.router import LeastLoadedRouter
from etr_dist.rollout.worker import StaleWeightsError
from etr_dist.sync.manager import WeightSyncManager

logger = logging.getLogger(__name__)
ACTOR_START_KEY = "cluster.timeouts.actor_start_s"


@dataclass
class StepRollout:
    step: int
    groups: list[Group]  # the groups this step trains on, in draw order
    filtered: list[Group]  # groups dropped by dynamic sampling
    stream_state: dict[str, Any]  # prompt stream position before this step's first draw
    started_at: float
    finished_at: float
    stats: dict[str, float] = field(default_factory=dict)


class RolloutCollector:
    """Collects one step's groups; refills a dropped (all-equal) group with a fresh prompt at once."""

    def __init__(
        self,
        workers: list,
        grader,
        weights: WeightSyncManager | None,
        stream,
        sampling,
        trainer: TrainerConfig,
        cluster: ClusterConfig,
        prompts_per_request: int,
    ):
        self.workers, self.grader, self.weights = workers, grader, weights
        self.stream, self.sampling, self.trainer = stream, sampling, trainer
        self.timeouts, self.max_redispatch = cluster.timeouts, cluster.max_redispatch
        self.prompts_per_request = max(1, prompts_per_request)
        self.router = LeastLoadedRouter(len(workers))
        self.faults = FaultCounts()
        self._needs_replay: set[int] = set()  # restarted workers that hold their initial weights
        self._last_grader_death = float("-inf")
        self._stream_lock = threading.Lock()
        self._stream_states: dict[int, dict[str, Any]] = {}

    def stream_state_for(self, step: int) -> dict[str, Any]:
        """The stream position a run resumed at `step` must start from (states of older steps are dropped).

        Kept for every step collected since the last call, so it is exact however far (max_staleness) the
        producer runs ahead; a step not collected yet starts where the stream stands now.
        """
        with self._stream_lock:
            self._stream_states = {s: v for s, v in self._stream_states.items() if s >= step}
            return self._stream_states.get(step) or self.stream.state_dict()

    def collect(self, step: int, min_version: int = 0) -> StepRollout:
        """One step's groups from workers holding weights >= min_version; faults are re-sent, not lost."""
        want = self.trainer.prompts_per_step
        budget = want * max(1, self.trainer.max_refill_rounds)
        started = time.time()
        with self._stream_lock:
            state = self.stream.state_dict()
            self._stream_states[step] = state
        self._step, self._min_version = step, min_version
        self._ledger, self._assembler = Ledger(), GroupAssembler(self.sampling.n)
        self._draw_order: dict[str, int] = {}
        self._kept: list[Group] = []
        self._filtered: list[Group] = []
        self._counters = {"drawn": 0, "requests": 0, "tokens": 0, "grade_s": 0.0}

        self._draw(want)
        while self._ledger:
            ref, late = self._ledger.next_event()
            if ref is None:
                self._on_late(late)
                continue
            request = self._ledger.pop(ref)
            try:
                result = ray.get(ref)
            except (RayActorError, StaleWeightsError) as err:
                self._on_fault(request, err)
                continue
            if request.kind == GENERATE:
                self._on_generated(request, result)
            else:
                self._on_graded(request, result)
            in_flight = self._ledger.prompts(GENERATE) + self._ledger.prompts(GRADE)
            deficit = want - len(self._kept) - in_flight
            if deficit > 0 and self._counters["drawn"] < budget:
                self._draw(min(deficit, budget - self._counters["drawn"]))
        kept = self._kept or self._filtered  # only all-equal groups within the budget: train on them anyway
        kept.sort(key=lambda g: self._draw_order[g.prompt.id])
        return StepRollout(
            step, kept, self._filtered, state, started, time.time(), self._stats(want, started)
        )

    def _draw(self, n: int) -> None:
        with self._stream_lock:
            prompts = self.stream.next(n)
        for p in prompts:
            self._draw_order[p.id] = len(self._draw_order)
        self._counters["drawn"] += n
        for i in range(0, n, self.prompts_per_request):
            seed = None
            if self.sampling.seed is not None:
                seed = self.sampling.seed + 1_000_003 * self._step + self._counters["requests"]
            self._counters["requests"] += 1
            self._send(Request(GENERATE, prompts[i : i + self.prompts_per_request], seed))

    def _send(self, request: Request) -> None:
        if request.kind == GRADE:
            by_id = {p.id: p for p in request.prompts}
            items = [
                GradeRequest(c.text, by_id[c.prompt_id].answer, by_id[c.prompt_id].last_number_fallback)
                for c in request.completions
            ]
            self._ledger.add(self.grader.grade_batch.remote(items), request, self.timeouts.grade_s)
            return
        request.worker = self.router.assign(len(request.prompts))
        if request.worker in self._needs_replay:
            try:
                self.weights.replay(request.worker)  # the restarted worker catches up before it generates
            except RemoteCallError as err:
                if not isinstance(err.__cause__, RayActorError):
                    raise
                self._on_fault(request, err.__cause__)  # it died again: the request goes elsewhere
                return
            self._needs_replay.discard(request.worker)
        sampling = replace(self.sampling, seed=request.seed)
        ref = self.workers[request.worker].generate.remote(request.prompts, sampling, self._min_version)
        self._ledger.add(ref, request, self.timeouts.generate_s)

    def _on_generated(self, request: Request, completions: list) -> None:
        self.router.done(request.worker, len(request.prompts))
        self._counters["tokens"] += sum(len(c.token_ids) for c in completions)
        self._send(Request(GRADE, request.prompts, request.seed, completions=completions))

    def _on_graded(self, request: Request, grades: list) -> None:
        self._counters["grade_s"] += time.monotonic() - request.sent
        by_id = {p.id: p for p in request.prompts}
        for completion, grade in zip(request.completions, grades, strict=True):
            group = self._assembler.add(
                by_id[completion.prompt_id], [completion], [grade.score], [grade.reason]
            )
            if group is None:
                continue
            degenerate = self.trainer.dynamic_sampling and group.is_degenerate
            (self._filtered if degenerate else self._kept).append(group)

    def _on_fault(self, request: Request, err: Exception) -> None:
        """A dead, restarted or stale actor: the request goes out again (to a live worker), at most max_redispatch
        times."""
        where = f"rollout worker {request.worker}" if request.kind == GENERATE else "the grader"
        if request.kind == GENERATE:
            self.router.done(request.worker, len(request.prompts))
            self._needs_replay.add(request.worker)
            if isinstance(err, ActorDiedError):  # out of restarts: never again
                self.router.retire(request.worker)
        if request.kind == GRADE and request.sent > self._last_grader_death:  # calls sent before: one death
            self.faults.grader_restarts += 1
            self._last_grader_death = time.monotonic()
        request.attempts += 1
        if request.attempts > self.max_redispatch:
            raise RemoteCallError(
                f"a {request.kind} request failed {request.attempts} times ({where}: {err}); "
                f"cluster.max_redispatch={self.max_redispatch}"
            ) from err
        logger.warning(
            "%s request on %s failed (%s): sending it again", request.kind, where, type(err).__name__
        )
        self.faults.redispatched_requests += 1
        if request.kind == GRADE and isinstance(err, RayActorError):
            call_when_back(  # its calls fail fast while Ray restarts it: wait for it once, here
                self.grader.metrics.remote, where, "restarting", self.timeouts.actor_start_s, ACTOR_START_KEY
            )
        self._send(request)

    def _on_late(self, late: list[tuple[ray.ObjectRef, Request]]) -> None:
        """A call past its deadline: its actor is killed and restarted; the call then fails and is re-sent."""
        for _, request in late:
            self.faults.timeouts += 1
            # the kill's failure arrives well before this second deadline
            request.deadline = time.monotonic() + self.timeouts.actor_start_s
            actor = self.workers[request.worker] if request.kind == GENERATE else self.grader
            logger.warning("a %s request missed its deadline: restarting its actor", request.kind)
            ray.kill(actor, no_restart=False)

    def _stats(self, want: int, started: float) -> dict[str, float]:
        elapsed = max(time.time() - started, 1e-9)
        counters = self._counters
        return {
            "sampling/filtered_groups": float(len(self._filtered)),
            "sampling/refill_prompts": float(counters["drawn"] - want),
            "sampling/drawn_prompts": float(counters["drawn"]),
            "timing_s/gen": elapsed,
            "timing_s/grade": counters["grade_s"],
            "perf/tokens_per_s": counters["tokens"] / elapsed,
            "perf/samples_per_s": counters["drawn"] * self.sampling.n / elapsed,
            **self.faults.as_metrics(self.weights.worker_restarts if self.weights else 0),
        }


class RolloutProducer(threading.Thread):
    """Runs ahead of the learner by at most `max_staleness` policy versions.

    Step k's prompts are dispatched only once the rollout workers hold version >= k - max_staleness, so a sample
    generated by version v is trained at step <= v + max_staleness; with 0 the loop is strictly on-policy.
    """

    def __init__(self, collector: RolloutCollector, start_step: int, total_steps: int, max_staleness: int):
        super().__init__(name="rollout-producer", daemon=True)
        self.collector = collector
        self.next_step = start_step
        self.total_steps = total_steps
        self.max_staleness = max_staleness
        self._synced_version = start_step
        self._version_changed = threading.Condition()
        self._ready: queue.Queue[StepRollout | BaseException] = queue.Queue()
        self._stopping = threading.Event()

    def set_synced_version(self, version: int) -> None:
        with self._version_changed:
            self._synced_version = version
            self._version_changed.notify_all()

    def run(self) -> None:
        try:
            for step in range(self.next_step, self.total_steps):
                with self._version_changed:
                    self._version_changed.wait_for(
                        lambda s=step: (
                            self._stopping.is_set() or self._synced_version >= s - self.max_staleness
                        )
                    )
                if self._stopping.is_set():
                    return
                with self._version_changed:
                    version = self._synced_version
                self._ready.put(self.collector.collect(step, min_version=version))
        except BaseException as err:  # handed to the training loop, which re-raises it
            self._ready.put(err)

    def get(self, timeout_s: float | None = None) -> StepRollout:
        try:
            item = self._ready.get(timeout=timeout_s)
        except queue.Empty:
            raise RemoteCallError(
                f"no rollouts arrived within {timeout_s:g} s (cluster.timeouts.rollout_s)"
            ) from None
        if isinstance(item, BaseException):
            raise RuntimeError(f"rollout producer failed: {item}") from item
        return item

    def stop(self) -> None:
        self._stopping.set()
        self.set_synced_version(self._synced_version)
