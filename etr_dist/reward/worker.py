"""A grading worker process: load the reward function once, then grade one pair per message.

The pool owns the clock: it kills this process when an item runs past its deadline, so nothing here needs a
timeout, and a kill loses nothing but the item in flight.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import multiprocessing.forkserver
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from etr_dist.reward.custom import resolve_reward_fn
from etr_dist.reward.grader import grade
from etr_dist.reward.types import CUSTOM, Grade

READY = "ready"
FAILED = "failed"
GRADED = "graded"
ERROR = "error"
MAX_ERROR_CHARS = 500
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Every kind of answer math-verify reads: import sympy, latex2sympy2_extended and math-verify, build the
# LaTeX parser's tables and the extraction regexes.
WARMUP_PAIRS = (
    ("so \\boxed{(x+1)^2}", "x^2+2x+1"),
    ("#### 1,234", "1234"),
    ("\\boxed{\\frac{\\pi}{3}}", "60"),
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}"),
    ("\\boxed{2^{x+1}}", "2\\cdot 2^x"),
    ("\\boxed{\\sqrt[3]{2} + 2i}", "\\ln 3 - e^2"),
    ("\\boxed{\\frac{a}{2}+\\frac{b}{2}}", "\\frac{a+b}{2}"),
    ("So the answer is $x \\geq 5$.", "[5, \\infty)"),
    ("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "\\left[\\begin{array}{c}1\\\\2\\end{array}\\right]"),
    ("\\boxed{\\{1, 2\\}}", "(1, 2]"),
    ("The answer is 12 apples.", "\\text{12}"),
)


def warm_up() -> None:
    """Run the built-in grader on a few items; a failure here is not fatal (the worker imports lazily)."""
    try:
        for response, reference in WARMUP_PAIRS:
            grade(response, reference)
    except Exception:  # noqa: BLE001 - warming is an optimisation only
        logging.getLogger(__name__).exception("grader warm-up failed")


def as_grade(value: Any) -> Grade:
    """Custom functions may return a Grade or a bare number; a non-finite one is an error (reward_error)."""
    if isinstance(value, (bool, int, float)):
        value = Grade(float(value), CUSTOM, None)
    if not isinstance(value, Grade):
        raise TypeError(f"reward function returned {type(value).__name__}, expected Grade or a number")
    if not math.isfinite(value.score):
        raise ValueError(f"reward function returned a non-finite reward {value.score}")
    return value


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when its parent (the forkserver, which exits with the pool's process) dies,
    so a worker stuck in sympy cannot outlive a killed trainer or Ray actor as a CPU-burning orphan."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's own kill is still the limit
        pass


def _release_forkserver_lifeline() -> None:
    """Close the forkserver's "owner alive" pipe end that every forked child inherits (CPython keeps it so a
    child could fork in turn; a worker never does): while any worker held it, the forkserver would outlive
    the pool's process, and a hung worker with it."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    alive_fd = getattr(server, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        os.close(alive_fd)
        server._forkserver_alive_fd = None


def worker_main(connection: Connection, reward_fn: str | None) -> None:
    _release_forkserver_lifeline()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool, not a terminal's Ctrl-C, ends workers
    try:
        grade_fn = resolve_reward_fn(reward_fn)
        if reward_fn is None:
            warm_up()  # instant when forked from a warm forkserver
    except BaseException as err:  # noqa: BLE001 - report any start-up failure to the pool, which raises it
        connection.send((FAILED, f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]))
        return
    connection.send((READY, None))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        try:
            connection.send((GRADED, as_grade(grade_fn(*message))))  # a GradeRequest
        except Exception as err:  # noqa: BLE001 - a failing reward function scores 0; the worker lives on
            connection.send((ERROR, f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]))
