"""GraderPool: grading worker processes with a hard wall-clock limit per item, enforced by killing the worker.

Each worker has its own pipe and its own supervising thread in the parent, which sends one item, waits for
the answer at most `timeout_s`, and on a timeout or a dead worker scores the item 0 with its reason, kills
the process and starts a fresh one. No signal.alarm: it only works in a main thread and cannot stop C code.
A whole grade_batch call has a deadline too (`batch_timeout_s`): past it, its unfinished items score
`timeout`, the call returns, and a worker still on one of its items is killed and replaced. A pool whose
replacement workers fail to start `max_worker_start_failures` times in a row stops with that error.
Workers start from a forkserver that has already graded a few items (see forkserver_warmup), so a replacement
is ready in milliseconds; fork from the (threaded) trainer itself would be unsafe.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.pool_worker import STOP, WorkerProcess, unguarded_main
from etr_dist.reward.types import INPUT_TOO_LONG, REWARD_ERROR, TIMEOUT, WORKER_CRASH, Grade, GradeRequest

logger = logging.getLogger(__name__)

PRELOAD = ["__main__", "etr_dist.reward.forkserver_warmup"]
MAX_CHUNK = 16  # items sent to a worker in one message: fast items would otherwise wait on a round trip each
RESTART_PAUSE_S = 1.0  # between failed starts of a replacement worker


@dataclass
class _Task:
    request: GradeRequest
    future: Future
    deadline: float  # its grade_batch call's deadline (time.monotonic()): no worker waits on it past this


class GraderPool:
    """Grade requests (response, reference[, last_number_fallback]) in worker processes; safe to call from
    several threads at once.

    metrics() counts are cumulative since the pool started; items_per_s is items over the wall time during
    which at least one grade_batch call was running.
    """

    def __init__(
        self,
        num_workers: int,
        timeout_s: float,
        reward_fn: str | None = None,
        max_input_chars: int = 20000,
        reward_range: tuple[float, float] = (0.0, 1.0),
        batch_timeout_s: float = 300.0,
        max_worker_start_failures: int = 3,
        worker_memory_mb: int = 1024,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if not batch_timeout_s > 0:
            raise ValueError(f"batch_timeout_s must be > 0, got {batch_timeout_s}")
        if max_input_chars < 1:
            raise ValueError(f"max_input_chars must be >= 1, got {max_input_chars}")
        if max_worker_start_failures < 1:
            raise ValueError(f"max_worker_start_failures must be >= 1, got {max_worker_start_failures}")
        if worker_memory_mb < 0:
            raise ValueError(f"worker_memory_mb must be >= 0 (0 = no cap), got {worker_memory_mb}")
        if reward_fn is not None:
            load_reward_fn(reward_fn)  # a bad path fails here, at trainer start, naming the path
        self.timeout_s = float(timeout_s)
        self.batch_timeout_s = float(batch_timeout_s)
        self.max_input_chars = max_input_chars
        self.reward_range = (float(reward_range[0]), float(reward_range[1]))
        self._reward_fn = reward_fn
        self._memory_mb = worker_memory_mb
        self._max_start_failures = max_worker_start_failures
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._failure: RuntimeError | None = None
        self._counts = dict.fromkeys(
            (
                "items",
                "timeouts",
                "crashes",
                "errors",
                "worker_restarts",
                "truncated_inputs",
                "batch_timeouts",
            ),
            0,
        )
        self._max_item_s = self._busy_s = self._busy_since = 0.0
        self._active_calls = 0
        self._num_workers = num_workers
        workers = [self._new_worker() for _ in range(num_workers)]
        try:
            for worker in workers:
                worker.wait_ready()
        except RuntimeError as err:
            for worker in workers:
                worker.kill()
            if (place := unguarded_main()) is not None:
                raise RuntimeError(
                    f"GraderPool was created by the top level of the script {place[0]} (line {place[1]}), "
                    'outside `if __name__ == "__main__":`. Its worker processes start from a server that '
                    "re-imports that script, which then runs this line again and fails; put the pool's "
                    'creation (or the call that leads to it) under `if __name__ == "__main__":`'
                ) from err
            raise
        self._threads = [
            threading.Thread(target=self._serve, args=(worker,), name="etr-grader-supervisor", daemon=True)
            for worker in workers
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_config(cls, cfg: Any, reward_range: tuple[float, float] = (0.0, 1.0)) -> GraderPool:
        """From a RewardConfig (dataclass or DictConfig node) and algorithm.reward_range."""
        return cls(
            num_workers=cfg.num_workers,
            timeout_s=cfg.timeout_s,
            reward_fn=cfg.fn,
            max_input_chars=cfg.max_input_chars,
            reward_range=tuple(reward_range),
            batch_timeout_s=cfg.batch_timeout_s,
            max_worker_start_failures=cfg.max_worker_start_failures,
            worker_memory_mb=cfg.worker_memory_mb,
        )

    def _new_worker(self) -> WorkerProcess:
        return WorkerProcess(self._context, self._reward_fn, self._memory_mb)

    def _in_range(self, result: Grade) -> Grade:
        """A reward outside reward_range (a custom function's bug) scores reward_error like a raise: counted,
        logged, and never allowed to stop the run; its score is the in-range value nearest to 0."""
        low, high = self.reward_range
        if low <= result.score <= high:
            return result
        logger.warning(
            "reward %r outside reward_range %s scored as reward_error", result.score, self.reward_range
        )
        return Grade(min(max(0.0, low), high), REWARD_ERROR, result.extracted)

    def _replace(self, worker: WorkerProcess) -> WorkerProcess:
        """A fresh worker for a dead or killed one; RuntimeError after max_worker_start_failures failed starts
        in a row (a reward module gone from disk, a node out of memory): retrying forever would hang the run."""
        worker.kill()
        failures = 0
        while True:
            try:
                fresh = self._new_worker()
                fresh.wait_ready()
            except (RuntimeError, OSError) as err:
                failures += 1
                if failures >= self._max_start_failures:
                    raise RuntimeError(
                        f"GraderPool stopped: {failures} replacement grader workers in a row failed to start "
                        f"(reward.max_worker_start_failures={self._max_start_failures}); last error: {err}"
                    ) from err
                logger.error("could not replace a grader worker (%d in a row), retrying: %s", failures, err)
                time.sleep(RESTART_PAUSE_S)
                continue
            return fresh

    def _next_tasks(self) -> list[_Task] | None:
        """The next chunk for one worker (None to stop): a fair share of the queue, at most MAX_CHUNK items."""
        first = self._tasks.get()
        if first is STOP:
            return None
        tasks = [first]
        share = min(MAX_CHUNK, max(1, self._tasks.qsize() // self._num_workers))
        while len(tasks) < share:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is STOP:
                self._tasks.put(STOP)  # another supervisor's, or this one's after the chunk
                break
            tasks.append(task)
        return tasks

    def _serve(self, worker: WorkerProcess) -> None:
        """Supervise one worker until close(); if it can no longer be replaced, fail the pool."""
        tasks: list[_Task] = []
        try:
            while (tasks := self._next_tasks()) is not None:
                worker = self._grade_chunk(worker, tasks)
        except RuntimeError as err:
            self._fail(err, tasks)
            return
        worker.stop()

    def _grade_chunk(self, worker: WorkerProcess, tasks: list[_Task]) -> WorkerProcess:
        """Send the chunk in one message and take the grades as they stream back, each item under its own
        limit (timeout_s, and its call's deadline); a timeout or crash replaces the worker, and the rest of
        the chunk goes to the new one. Items of a call already past its deadline are dropped."""
        while tasks := [task for task in tasks if not task.future.done()]:
            if not worker.process.is_alive() or not worker.send([task.request for task in tasks]):
                self._count("worker_restarts")  # died between items: none of these has started
                worker = self._replace(worker)
                continue
            done = 0
            for task in tasks:
                started = time.monotonic()
                limit_s = min(self.timeout_s, max(0.0, task.deadline - started))
                try:
                    result = worker.next_grade(limit_s)
                except Exception:  # noqa: BLE001 - e.g. an answer the parent cannot unpickle: never strand a caller
                    logger.exception("unreadable answer from a grader worker")
                    result = Grade(0.0, WORKER_CRASH, None)
                done += 1
                if result.reason in (TIMEOUT, WORKER_CRASH):
                    self._count("worker_restarts")
                    worker.kill()  # before the result is delivered: no worker grades a returned item
                    if result.reason == TIMEOUT and limit_s < self.timeout_s:
                        self._expire([task.future])  # its call's deadline, not the item's own limit
                    else:
                        self._deliver(task, result, time.monotonic() - started)
                    worker = self._replace(worker)
                    break
                self._deliver(task, self._in_range(result), time.monotonic() - started)
            tasks = tasks[done:]
        return worker

    def _deliver(self, task: _Task, result: Grade, seconds: float) -> None:
        """Count the item, then hand it over, under the lock: metrics() never lags a returned batch, and an
        item its call has already scored `timeout` (past the deadline) is neither counted nor delivered twice."""
        key = {TIMEOUT: "timeouts", WORKER_CRASH: "crashes", REWARD_ERROR: "errors"}.get(result.reason)
        with self._lock:
            if task.future.done():
                return
            self._counts["items"] += 1
            if key:
                self._counts[key] += 1
            self._max_item_s = max(self._max_item_s, seconds)
            task.future.set_result(result)

    def _fail(self, err: RuntimeError, chunk: list[_Task]) -> None:
        """Raise err in every waiting call and every later one; the other supervisors stay for close()."""
        logger.error("%s", err)
        with self._lock:
            self._failure = err
            stops = 0
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is STOP:
                    stops += 1
                else:
                    chunk.append(task)
            for _ in range(stops):
                self._tasks.put(STOP)
            for task in chunk:
                if not task.future.done():
                    task.future.set_exception(err)

    def _expire(self, futures: Iterable[Future]) -> None:
        """A call's deadline passed: its items not yet graded are cancelled (the call scores them `timeout`)
        and counted once, whether the call or a supervisor got there first; supervisors drop or kill them."""
        with self._lock:
            expired = sum(1 for future in futures if not future.done() and future.cancel())
            self._counts["items"] += expired
            self._counts["timeouts"] += expired

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _checked(self, index: int, item: Any) -> GradeRequest:
        if not (isinstance(item, (tuple, list)) and len(item) in (2, 3)):
            raise TypeError(
                f"requests[{index}] must be a (response, reference[, last_number_fallback]) tuple, "
                f"got {type(item).__name__}"
            )
        request = GradeRequest(*item)
        for name in ("response", "reference"):
            if not isinstance(getattr(request, name), str):
                raise TypeError(
                    f"requests[{index}]: {name} must be str, got {type(getattr(request, name)).__name__}"
                )
        if not isinstance(request.last_number_fallback, bool):
            raise TypeError(
                f"requests[{index}]: last_number_fallback must be bool, "
                f"got {type(request.last_number_fallback).__name__}"
            )
        return request

    def _size_limited(self, request: GradeRequest) -> GradeRequest | Grade:
        """Keep a long response's tail, where its final answer is; an over-long reference is a data bug."""
        if len(request.reference) > self.max_input_chars:
            return Grade(0.0, INPUT_TOO_LONG, None)
        if len(request.response) <= self.max_input_chars:
            return request
        self._count("truncated_inputs")
        return request._replace(response=request.response[-self.max_input_chars :])

    def grade_batch(self, requests: list[tuple[str, str] | tuple[str, str, bool]]) -> list[Grade]:
        """One Grade per request, in input order, within batch_timeout_s (unfinished items then score
        `timeout`); a (response, reference) pair has no last-number fallback."""
        limited = [self._size_limited(self._checked(index, item)) for index, item in enumerate(requests)]
        results: list[Grade | None] = [None] * len(limited)
        pending: list[tuple[int, Future]] = []
        deadline = time.monotonic() + self.batch_timeout_s
        with self._lock:
            if self._closed:
                raise RuntimeError("GraderPool is closed")
            if self._failure is not None:
                raise self._failure
            if self._active_calls == 0:
                self._busy_since = time.monotonic()
            self._active_calls += 1
            for index, item in enumerate(limited):
                if isinstance(item, Grade):
                    results[index] = item
                    continue
                future: Future = Future()
                self._tasks.put(_Task(item, future, deadline))
                pending.append((index, future))
        try:
            futures = {future for _, future in pending}
            _, late = concurrent.futures.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            self._expire(late)
            if any(future.cancelled() for future in futures):
                self._count("batch_timeouts")
            for index, future in pending:
                results[index] = Grade(0.0, TIMEOUT, None) if future.cancelled() else future.result()
        finally:
            with self._lock:
                self._active_calls -= 1
                if self._active_calls == 0:
                    self._busy_s += time.monotonic() - self._busy_since
        return results  # type: ignore[return-value]

    def metrics(self) -> dict[str, float]:
        with self._lock:
            busy = self._busy_s + (time.monotonic() - self._busy_since if self._active_calls else 0.0)
            items = self._counts["items"]
            named = {f"reward/grader_{name}": float(count) for name, count in self._counts.items()}
            named["reward/grader_items_per_s"] = items / busy if busy > 0 else 0.0
            named["reward/grader_max_item_s"] = self._max_item_s
        return named

    def close(self) -> None:
        """Finish the items already queued, then stop every worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._tasks.put(STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> GraderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
