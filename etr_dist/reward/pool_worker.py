"""The parent's handle on one grading worker process, and why a worker could not start.

Workers start from a forkserver that preloads `__main__`: a script that creates the pool at its top level,
outside `if __name__ == "__main__":`, creates it again inside the forkserver, which dies; unguarded_main
finds that case so the pool can say how to fix it instead of "exit code None".
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from etr_dist.reward.types import REWARD_ERROR, TIMEOUT, WORKER_CRASH, Grade, GradeRequest
from etr_dist.reward.worker import GRADED, READY, worker_main

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # importing sympy on a loaded 2-core machine can take many seconds
STOP_TIMEOUT_S = 2.0
STOP = None  # the message that ends a worker


class WorkerProcess:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: Any, reward_fn: str | None, memory_mb: int) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=worker_main,
            args=(child_end, reward_fn, memory_mb),
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
            self.connection.send(STOP)
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, *test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    texts = {side.value for side in sides if isinstance(side, ast.Constant)}
    return names == {"__name__"} and texts == {"__main__"}


def unguarded_main() -> tuple[str, int] | None:
    """(script, line) when the caller runs from a script's top level outside `if __name__ == "__main__":`:
    the forkserver re-imports that script (`python -m` and `-c` are not re-imported), so it runs the line again."""
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or not script:
        return None
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"):
        frame = frame.f_back
    if frame is None:  # not called from the script's top level (e.g. from a thread it started)
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(script).read_text(encoding="utf-8"), script)
    except (OSError, SyntaxError, ValueError):
        return None
    guarded = any(
        isinstance(node, ast.If)
        and _is_main_guard(node.test)
        and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
        for node in tree.body
    )
    return None if guarded else (script, line)
