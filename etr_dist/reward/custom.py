"""Load a user reward function named `package.module:function` (config `reward.fn`), checked eagerly."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
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


def resolve_reward_fn(path: str | None) -> Callable[[str, str, bool], Any]:
    """What a worker calls per request (response, reference, last_number_fallback): the built-in grader, or
    the user's function, which keeps its (response, reference) signature (the flag is the built-in's)."""
    if path is None:
        return lambda response, reference, fallback: grade(response, reference, last_number_fallback=fallback)
    user_fn = load_reward_fn(path)
    return lambda response, reference, _fallback: user_fn(response, reference)
