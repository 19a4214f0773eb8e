"""GraderPool: grading worker processes with a hard wall-clock limit per item, enforced by killing the worker.

Each worker has its own pipe and its own supervising thread in the parent, which sends one item, waits for
the answer at most `timeout_s`, and on a timeout or a dead worker scores the item 0 with its reason, kills
the process and starts a fresh one. No signal.alarm: it only works in a main thread and cannot stop C code.
Workers start from a forkserver that has already graded a few items (see forkserver_warmup), so a replacement
is ready in milliseconds; fork from the (threaded) trainer itself would be unsafe.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.types import INPUT_TOO_LONG, REWARD_ERROR, TIMEOUT, WORKER_CRASH, Grade, GradeRequest
from etr_dist.reward.worker import GRADED, READY, worker_main

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can take many seconds
STOP_TIMEOUT_S = 2.0
PRELOAD = ["__main__", "etr_dist.reward.forkserver_warmup"]
MAX_CHUNK = 16  # items sent to a worker in one message: fast items would otherwise wait on a round trip each
_STOP = None


@dataclass
class _Task:
    request: GradeRequest
    future: Future


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, reward_fn: str | None) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(child_end, reward_fn),
            name="etr-grader",
            daemon=True,
        )
        self.process.start()
        child_end.close()

    def wait_ready(self) -> None:
        try:
            message = self.connection.recv() if self.connection.poll(START_TIMEOUT_S) else None
        except (EOFError, OSError):
            message = ("died", f"exit code {self.process.exitcode}")
        if message is None or message[0] != READY:
            self.kill()
            detail = message[1] if message else f"not ready after {START_TIMEOUT_S:.0f} s"
            raise RuntimeError(f"grader worker failed to start: {detail}")

    def send(self, requests: list[GradeRequest]) -> bool:
        """Hand the worker a chunk in one message (it answers item by item); False if it is gone."""
        try:
            self.connection.send(requests)
        except OSError:
            return False
        return True

    def next_grade(self, timeout_s: float) -> Grade:
        """The next item's grade, or TIMEOUT when it takes longer than timeout_s, or WORKER_CRASH."""
        try:
            if not self.connection.poll(timeout_s):
                return Grade(0.0, TIMEOUT, None)
            status, payload = self.connection.recv()
        except (EOFError, OSError):
            return Grade(0.0, WORKER_CRASH, None)
        if status != GRADED:
            logger.warning("reward function failed: %s", payload)
            return Grade(0.0, REWARD_ERROR, None)
        return payload

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send(_STOP)
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


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
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_input_chars < 1:
            raise ValueError(f"max_input_chars must be >= 1, got {max_input_chars}")
        if reward_fn is not None:
            load_reward_fn(reward_fn)  # a bad path fails here, at trainer start, naming the path
        self.timeout_s = float(timeout_s)
        self.max_input_chars = max_input_chars
        self.reward_range = (float(reward_range[0]), float(reward_range[1]))
        self._reward_fn = reward_fn
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._counts = dict.fromkeys(
            ("items", "timeouts", "crashes", "errors", "worker_restarts", "truncated_inputs"), 0
        )
        self._max_item_s = self._busy_s = self._busy_since = 0.0
        self._active_calls = 0
        self._num_workers = num_workers
        workers = [_Worker(self._context, reward_fn) for _ in range(num_workers)]
        try:
            for worker in workers:
                worker.wait_ready()
        except RuntimeError:
            for worker in workers:
                worker.kill()
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
        )

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

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        while True:
            try:
                fresh = _Worker(self._context, self._reward_fn)
                fresh.wait_ready()
            except (RuntimeError, OSError) as err:
                logger.error("could not replace a grader worker, retrying: %s", err)
                time.sleep(1.0)
                continue
            return fresh

    def _next_tasks(self) -> list[_Task] | None:
        """The next chunk for one worker (None to stop): a fair share of the queue, at most MAX_CHUNK items."""
        first = self._tasks.get()
        if first is _STOP:
            return None
        tasks = [first]
        share = min(MAX_CHUNK, max(1, self._tasks.qsize() // self._num_workers))
        while len(tasks) < share:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is _STOP:
                self._tasks.put(_STOP)  # another supervisor's, or this one's after the chunk
                break
            tasks.append(task)
        return tasks

    def _serve(self, worker: _Worker) -> None:
        """Send each chunk in one message and take the grades as they stream back, each item under its own
        deadline; a timeout or crash replaces the worker, and the rest of the chunk goes to the new one."""
        while (tasks := self._next_tasks()) is not None:
            while tasks:
                if not worker.process.is_alive() or not worker.send([task.request for task in tasks]):
                    self._count("worker_restarts")  # died between items: none of these has started
                    worker = self._replace(worker)
                    continue
                done = 0
                for task in tasks:
                    started = time.monotonic()
                    try:
                        result = worker.next_grade(self.timeout_s)
                    except Exception:  # noqa: BLE001 - e.g. an answer the parent cannot unpickle: never strand a caller
                        logger.exception("unreadable answer from a grader worker")
                        result = Grade(0.0, WORKER_CRASH, None)
                    result = self._in_range(result)
                    self._record(result, time.monotonic() - started)
                    task.future.set_result(result)
                    done += 1
                    if result.reason in (TIMEOUT, WORKER_CRASH):
                        worker = self._replace(worker)
                        break
                tasks = tasks[done:]
        worker.stop()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _record(self, result: Grade, seconds: float) -> None:
        """Count the item before its result is delivered, so metrics() never lags a returned batch."""
        key = {TIMEOUT: "timeouts", WORKER_CRASH: "crashes", REWARD_ERROR: "errors"}.get(result.reason)
        with self._lock:
            self._counts["items"] += 1
            if key:
                self._counts[key] += 1
            if result.reason in (TIMEOUT, WORKER_CRASH):
                self._counts["worker_restarts"] += 1
            self._max_item_s = max(self._max_item_s, seconds)

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
        """One Grade per request, in input order; a (response, reference) pair has no last-number fallback."""
        limited = [self._size_limited(self._checked(index, item)) for index, item in enumerate(requests)]
        results: list[Grade | None] = [None] * len(limited)
        pending: list[tuple[int, Future]] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("GraderPool is closed")
            if self._active_calls == 0:
                self._busy_since = time.monotonic()
            self._active_calls += 1
            for index, item in enumerate(limited):
                if isinstance(item, Grade):
                    results[index] = item
                    continue
                future: Future = Future()
                self._tasks.put(_Task(item, future))
                pending.append((index, future))
        try:
            for index, future in pending:
                results[index] = future.result()
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
                self._tasks.put(_STOP)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> GraderPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
