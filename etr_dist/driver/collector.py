"""Stream prompts to rollout workers and graded groups back: dynamic sampling, refill, bounded staleness."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from etr_dist.config.schema import TrainerConfig
from etr_dist.data.records import Group, Prompt
from etr_dist.driver.groups import GroupAssembler
from etr_dist.reward.types import GradeRequest
from etr_dist.rollout.router import LeastLoadedRouter


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
        self, workers: list, grader, stream, sampling, trainer: TrainerConfig, prompts_per_request: int
    ):
        self.workers = workers
        self.grader = grader
        self.stream = stream
        self.sampling = sampling
        self.trainer = trainer
        self.prompts_per_request = max(1, prompts_per_request)
        self.router = LeastLoadedRouter(len(workers))
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

    def collect(self, step: int) -> StepRollout:
        want = self.trainer.prompts_per_step
        budget = want * max(1, self.trainer.max_refill_rounds)
        started = time.time()
        with self._stream_lock:
            state = self.stream.state_dict()
            self._stream_states[step] = state
        assembler = GroupAssembler(self.sampling.n)
        generating: dict[ray.ObjectRef, tuple[int, list[Prompt]]] = {}
        grading: dict[ray.ObjectRef, tuple[dict[str, Prompt], list, float]] = {}
        draw_order: dict[str, int] = {}
        kept: list[Group] = []
        filtered: list[Group] = []
        counters = {"drawn": 0, "requests": 0, "tokens": 0, "grade_s": 0.0}

        def dispatch(n: int) -> None:
            with self._stream_lock:
                prompts = self.stream.next(n)
            for p in prompts:
                draw_order[p.id] = len(draw_order)
            counters["drawn"] += n
            for i in range(0, n, self.prompts_per_request):
                chunk = prompts[i : i + self.prompts_per_request]
                worker = self.router.assign(len(chunk))
                seed = (
                    None
                    if self.sampling.seed is None
                    else self.sampling.seed + 1_000_003 * step + counters["requests"]
                )
                counters["requests"] += 1
                ref = self.workers[worker].generate.remote(chunk, replace(self.sampling, seed=seed))
                generating[ref] = (worker, chunk)

        dispatch(want)
        while generating or grading:
            (ref,), _ = ray.wait([*generating, *grading], num_returns=1)
            if ref in generating:
                worker, chunk = generating.pop(ref)
                completions = ray.get(ref)
                self.router.done(worker, len(chunk))
                counters["tokens"] += sum(len(c.token_ids) for c in completions)
                by_id = {p.id: p for p in chunk}
                requests = [
                    GradeRequest(c.text, by_id[c.prompt_id].answer, by_id[c.prompt_id].last_number_fallback)
                    for c in completions
                ]
                grading[self.grader.grade_batch.remote(requests)] = (by_id, completions, time.time())
                continue
            by_id, completions, sent = grading.pop(ref)
            grades = ray.get(ref)
            counters["grade_s"] += time.time() - sent
            for completion, grade in zip(completions, grades, strict=True):
                group = assembler.add(
                    by_id[completion.prompt_id], [completion], [grade.score], [grade.reason]
                )
                if group is None:
                    continue
                if self.trainer.dynamic_sampling and group.is_degenerate:
                    filtered.append(group)
                else:
                    kept.append(group)
            in_flight = sum(len(c) for _, c in generating.values()) + sum(
                len(b) for b, _, _ in grading.values()
            )
            deficit = want - len(kept) - in_flight
            if deficit > 0 and counters["drawn"] < budget:
                dispatch(min(deficit, budget - counters["drawn"]))
        if not kept:
            kept = filtered  # nothing but all-equal groups within the budget: train on them (zero policy gradient)
        kept.sort(key=lambda g: draw_order[g.prompt.id])
        finished = time.time()
        stats = {
            "sampling/filtered_groups": float(len(filtered)),
            "sampling/refill_prompts": float(counters["drawn"] - want),
            "sampling/drawn_prompts": float(counters["drawn"]),
            "timing_s/gen": finished - started,
            "timing_s/grade": counters["grade_s"],
            "perf/tokens_per_s": counters["tokens"] / max(finished - started, 1e-9),
            "perf/samples_per_s": counters["drawn"] * self.sampling.n / max(finished - started, 1e-9),
        }
        return StepRollout(step, kept, filtered, state, started, finished, stats)


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
                self._ready.put(self.collector.collect(step))
        except BaseException as err:  # handed to the training loop, which re-raises it
            self._ready.put(err)

    def get(self, timeout_s: float | None = None) -> StepRollout:
        item = self._ready.get(timeout=timeout_s)
        if isinstance(item, BaseException):
            raise RuntimeError("rollout producer failed") from item
        return item

    def stop(self) -> None:
        self._stopping.set()
        self.set_synced_version(self._synced_version)
