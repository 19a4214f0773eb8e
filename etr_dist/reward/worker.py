"""A grading worker process: load the reward function once, then grade each chunk it is sent, one answer
message per item.

The pool owns the clock: it kills this process when an item runs past its deadline, so nothing here needs a
timeout, and a kill loses nothing but the item in flight. Memory is capped here, in the process itself: its
address space may grow `memory_mb` past its start-up size, so an item that allocates more raises MemoryError
(scored reward_error) instead of exhausting the node.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import multiprocessing.forkserver
import os
import resource
import signal
from multiprocessing.connection import Connection
from pathlib import Path
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

# Answers of every kind math-verify reads. Grading them in the forkserver imports sympy, latex2sympy2_extended
# and math-verify and fills the LaTeX parser's prediction cache (ANTLR's DFA), which every worker forked from
# it inherits: cold, that cache makes a worker's first hundreds of LaTeX answers about twice as slow.
WARMUP_ANSWERS = (
    r"\frac{3}{4}",
    r"-\frac{\sqrt{3}}{2}",
    r"2\sqrt{5}",
    r"\sqrt[3]{2}",
    r"3\pi",
    r"\frac{\pi}{6}",
    r"x^2 - 4x + 4",
    r"(x+1)(x-2)",
    r"\frac{a+b}{2}",
    r"|x - 1|",
    r"e^{2x}",
    r"\log_2 8",
    r"\sin x + \cos x",
    r"\binom{5}{2}",
    r"5!",
    r"2 + 3i",
    r"10^{6}",
    r"0.75",
    r"-7",
    r"1,234",
    r"\infty",
    r"45^\circ",
    r"25\%",
    r"\$18.90",
    r"12\text{ cm}^2",
    r"\text{Monday}",
    r"\text{(C)}",
    r"(1, 2)",
    r"\left( 3, \frac{\pi}{2} \right)",
    r"[0, 1)",
    r"(-\infty, 2] \cup (3, \infty)",
    r"\{1, 2, 3\}",
    r"1, -2",
    r"x \geq 5",
    r"-2 < x < 4",
    r"x \in [-2, 7]",
    r"k = \frac{1}{3}",
    r"y = 2x + 3",
    r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
    r"\left[\begin{array}{cc} 1 & 0 \\ 0 & 1 \end{array}\right]",
    r"\begin{bmatrix} 1 \\ -2 \end{bmatrix}",
)


def warm_up() -> None:
    """Grade each warm-up answer boxed against the next one and in a sentence against itself reformatted;
    a failure here is not fatal (the worker imports lazily)."""
    try:
        for index, answer in enumerate(WARMUP_ANSWERS):
            grade(f"so \\boxed{{{answer}}}", WARMUP_ANSWERS[(index + 1) % len(WARMUP_ANSWERS)])
            reformatted = answer.replace("\\frac", "\\dfrac")
            grade(f"The answer is ${reformatted}$.", answer)
        grade("12 apples", "12", last_number_fallback=True)
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


def _cap_address_space(extra_mb: int) -> None:
    """Limit the address space (RLIMIT_AS) to its present size plus extra_mb, so a runaway allocation fails
    with MemoryError in this process; 0 = no cap. The size is measured after start-up (sympy, the reward
    module), so the cap is the room one item may use, whatever the imports weigh."""
    if extra_mb <= 0:
        return
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
    except OSError:  # not Linux: RLIMIT_AS is not enforced there anyway
        logging.getLogger(__name__).warning("no /proc/self/statm: reward.worker_memory_mb is not enforced")
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = pages * resource.getpagesize() + extra_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_main(connection: Connection, reward_fn: str | None, memory_mb: int) -> None:
    _release_forkserver_lifeline()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool, not a terminal's Ctrl-C, ends workers
    try:
        grade_fn = resolve_reward_fn(reward_fn)  # warm already: forked from the forkserver that ran warm_up
        _cap_address_space(memory_mb)
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
        for request in message:  # a chunk of GradeRequests: one answer per item, as soon as it is graded
            try:
                connection.send((GRADED, as_grade(grade_fn(*request))))
            except Exception as err:  # noqa: BLE001 - a failing reward function scores 0; the worker lives on
                connection.send((ERROR, f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]))
