"""Custom reward functions the pool tests load by path (`<module>:<function>`), as a user's reward.fn."""

from __future__ import annotations

import os
import time
from pathlib import Path

from etr_dist.reward import Grade

NOT_CALLABLE = 3


def scripted(response: str, reference: str) -> Grade:
    """Act out the response: `sleep:<s>`, `exit`, `raise`, `pid:<file>` (write pid, hang), `alloc:<GiB>`
    (allocate and keep that much until the item ends); else compare."""
    command, _, argument = response.partition(":")
    if command == "alloc":
        block = bytearray(int(float(argument) * 2**30))
        return Grade(float(len(block) > 0), "custom_equal", response)
    if command == "sleep":
        time.sleep(float(argument))
    elif command == "exit":
        os._exit(3)
    elif command == "raise":
        raise ValueError("scripted failure")
    elif command == "pid":
        Path(argument).write_text(str(os.getpid()))
        time.sleep(60)
    return Grade(float(response == reference), "custom_equal", response)


def bare_number(response: str, reference: str) -> float:
    return float(len(response) == len(reference))


def returns_text(response: str, reference: str) -> str:
    return "not a grade"


def one_argument(response: str) -> float:
    return 0.0


def misbehaving(response: str, reference: str) -> float:
    """`nan`, `inf`, `big` (5.0, outside [0, 1]), `raise`, else 1.0: the faults a user's function can have."""
    if response == "raise":
        raise RuntimeError("user bug")
    return {"nan": float("nan"), "inf": float("inf"), "big": 5.0}.get(response, 1.0)
