"""Test-only injection points: with ETR_DIST_FAULT='<point>:<step>' the driver blocks at that point of that step
until it is killed, so a fault test kills it at an exact place instead of racing a poll against the run."""

from __future__ import annotations

import os
import time

FAULT_ENV = "ETR_DIST_FAULT"


def injection_point(name: str, step: int) -> None:
    if os.environ.get(FAULT_ENV) == f"{name}:{step}":
        while True:
            time.sleep(3600)
