"""The collector's ledger of in-flight requests: what each call carries, where it went and by when it must answer,
so a dead or late call can be sent again and no group is lost or counted twice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import ray

from etr_dist.data.records import Completion, Prompt

GENERATE, GRADE = "generate", "grade"


@dataclass
class Request:
    kind: str  # GENERATE (to rollout worker `worker`) or GRADE (to the grader)
    prompts: list[Prompt]  # generate: the chunk; grade: the prompts its completions answer
    seed: int | None  # generate: the sampling seed (kept on a re-send, so a retry draws the same samples)
    worker: int = -1
    completions: list[Completion] = field(default_factory=list)  # grade: what is graded
    attempts: int = 0  # faults so far
    deadline: float = 0.0
    sent: float = 0.0

    @property
    def size(self) -> int:
        """Prompts this request still owes the step (a grade request: its completions' prompts)."""
        return len(self.prompts)


@dataclass
class FaultCounts:
    """Cumulative over the run: logged every step as fault/*."""

    grader_restarts: int = 0  # rollout workers' restarts are counted by the weight sync (it sees them all)
    redispatched_requests: int = 0
    timeouts: int = 0

    def as_metrics(self, worker_restarts: int) -> dict[str, float]:
        return {
            "fault/actor_restarts": float(self.grader_restarts + worker_restarts),
            "fault/redispatched_requests": float(self.redispatched_requests),
            "fault/timeouts": float(self.timeouts),
        }


class Ledger:
    def __init__(self) -> None:
        self._calls: dict[ray.ObjectRef, Request] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, ref: ray.ObjectRef, request: Request, timeout_s: float) -> None:
        request.sent = time.monotonic()
        request.deadline = request.sent + timeout_s
        self._calls[ref] = request

    def prompts(self, kind: str) -> int:
        return sum(r.size for r in self._calls.values() if r.kind == kind)

    def next_event(self) -> tuple[ray.ObjectRef | None, list[tuple[ray.ObjectRef, Request]]]:
        """The next call to answer (ready to ray.get), or, when a deadline passes first, the calls now late."""
        earliest = min(r.deadline for r in self._calls.values())
        ready, _ = ray.wait(list(self._calls), num_returns=1, timeout=max(0.0, earliest - time.monotonic()))
        if ready:
            return ready[0], []
        now = time.monotonic()
        return None, [(ref, r) for ref, r in self._calls.items() if r.deadline <= now]

    def pop(self, ref: ray.ObjectRef) -> Request:
        return self._calls.pop(ref)

    def on_worker(self, worker: int) -> list[ray.ObjectRef]:
        return [ref for ref, r in self._calls.items() if r.kind == GENERATE and r.worker == worker]
