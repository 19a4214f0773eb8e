"""Test-only injection points: a fault test kills, hangs or poisons a process at a named place instead of racing
a poll against the run.

The spec `<point>:<n>[:<action>]` is read from the file named by ETR_DIST_FAULT_FILE (at every point, so a test
can arm a running cluster's actors). It fires where the code calls `injection_point(point, n)` with that n (a
step, or the process's call count), once in the whole cluster: the first process there creates `<file>.fired`
(which also tells the test that the point was reached) and no other fires after it, so a restarted actor does not
fire again. Actions: `hang` (the default: block until killed), `kill` (SIGKILL this process), `nan` (the caller
poisons its value). Unset, a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAULT_FILE_ENV = "ETR_DIST_FAULT_FILE"
ACTIONS = ("hang", "kill", "nan")


def _armed_spec() -> tuple[str, Path] | None:
    path = os.environ.get(FAULT_FILE_ENV)
    if path and Path(path).is_file():
        return Path(path).read_text().strip(), Path(path + ".fired")
    return None


def injection_point(name: str, n: int) -> str | None:
    """The action to take here (only `nan` returns: `hang` blocks, `kill` never returns), or None."""
    armed = _armed_spec()
    if armed is None:
        return None
    spec, marker = armed
    point, at, action = (spec.split(":") + ["hang"])[:3]
    if point != name or int(at) != n:
        return None
    if action not in ACTIONS:
        raise ValueError(f"{FAULT_FILE_ENV}: unknown action {action!r}; known: {ACTIONS}")
    try:
        marker.touch(exist_ok=False)  # the first process to get here fires; no other ever does
    except FileExistsError:
        return None
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while action == "hang":
        time.sleep(3600)
    return action
