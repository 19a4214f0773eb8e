"""Load a user reward function named `package.module:function` (config `reward.fn`), checked eagerly."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from etr_dist.reward.grader import grade

RewardFn = Callable[[str, str], Any]


def load_reward_fn(path: str) -> RewardFn:
    """Import and check `package.module:function`; every failure names the path (fails at trainer start)."""
    module_name, separator, attribute = path.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"reward.fn={path!r}: expected 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a user module can fail to import in any way
        raise ImportError(f"reward.fn={path!r}: cannot import module {module_name!r}: {err}") from err
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise ValueError(f"reward.fn={path!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, name)
    if not callable(target):
        raise ValueError(f"reward.fn={path!r}: {attribute!r} is a {type(target).__name__}, not a function")
    try:
        inspect.signature(target).bind("response", "reference")
    except TypeError as err:
        raise ValueError(f"reward.fn={path!r}: must accept (response, reference) like grade: {err}") from err
    except ValueError:
        pass  # a builtin without an introspectable signature: trust it
    return target


def resolve_reward_fn(path: str | None, last_number_fallback: bool = True) -> RewardFn:
    """The function a worker runs: the user's, or the built-in math grader."""
    if path is None:
        return partial(grade, last_number_fallback=last_number_fallback)
    return load_reward_fn(path)
