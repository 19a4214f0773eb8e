"""Waiting on Ray calls with a deadline: a dead or hung actor fails the wait at once, naming it and the key to
raise, instead of hanging the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError


class RemoteCallError(RuntimeError):
    """An actor died or missed its deadline during a call the run cannot do without."""


def get_all(
    refs: Sequence[ray.ObjectRef], names: Sequence[str], what: str, timeout_s: float, key: str
) -> list:
    """Every result of one call per actor; the first actor to die, or the ones still running at the deadline,
    fail the wait naming themselves (a dead rank's peers would otherwise sit in a collective until it times out).
    """
    by_ref = dict(zip(refs, names, strict=True))
    deadline = time.monotonic() + timeout_s
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            late = ", ".join(by_ref[ref] for ref in pending)
            raise RemoteCallError(f"{what}: {late} did not answer within {timeout_s:g} s ({key})")
        try:
            ray.get(done[0])
        except RayActorError as err:
            if isinstance(err, RayTaskError):  # the actor lives; its call raised (re-raised as it is)
                raise
            raise RemoteCallError(f"{what}: {by_ref[done[0]]} died ({type(err).__name__})") from err
    return ray.get(list(refs))


def get_one(ref: ray.ObjectRef, name: str, what: str, timeout_s: float, key: str) -> Any:
    """One call's result within its deadline."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except GetTimeoutError as err:
        raise RemoteCallError(f"{what}: {name} did not answer within {timeout_s:g} s ({key})") from err
    except RayActorError as err:
        if isinstance(err, RayTaskError):
            raise
        raise RemoteCallError(f"{what}: {name} died ({type(err).__name__})") from err


def call_when_back(
    call: Callable[[], ray.ObjectRef], name: str, what: str, timeout_s: float, key: str
) -> Any:
    """`call()`'s result, waiting out a restart: while Ray restarts an actor its calls fail as unavailable
    (after ~2 s each), so the call is made again until the deadline; a death for good fails at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return get_one(call(), name, what, max(0.0, deadline - time.monotonic()), key)
        except RemoteCallError as err:
            if not isinstance(err.__cause__, ActorUnavailableError) or time.monotonic() >= deadline:
                raise
