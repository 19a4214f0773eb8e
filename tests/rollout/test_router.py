"""LeastLoadedRouter: fewest outstanding prompts wins, ties go to the lowest index, bad calls refused."""

from __future__ import annotations

import pytest

from etr_dist.rollout.router import LeastLoadedRouter


def test_assigns_to_the_least_loaded_worker_and_breaks_ties_by_index() -> None:
    router = LeastLoadedRouter(3)
    assert [router.assign(n) for n in (4, 2, 1)] == [0, 1, 2]
    assert router.outstanding == (4, 2, 1)
    assert router.assign(2) == 2  # 1 < 2 < 4
    assert router.outstanding == (4, 2, 3)
    assert router.assign(1) == 1
    assert router.assign(5) == 1  # 3 == 3: the lower index
    assert router.outstanding == (4, 8, 3)


def test_done_frees_capacity() -> None:
    router = LeastLoadedRouter(2)
    router.assign(3)
    router.assign(3)
    router.done(1, 3)
    assert router.outstanding == (3, 0)
    assert router.assign(2) == 1
    router.done(0, 1)
    assert router.outstanding == (2, 2)


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (lambda r: r.assign(0), ValueError, "at least one prompt"),
        (lambda r: r.done(2, 1), IndexError, "worker index 2"),
        (lambda r: r.done(0, 3), ValueError, "worker 0 has 2 prompts outstanding"),
        (lambda r: r.done(1, 0), ValueError, "cannot finish 0"),
    ],
)
def test_bad_calls_raise_and_leave_counts_alone(action, error, match: str) -> None:
    router = LeastLoadedRouter(2)
    router.assign(2)
    with pytest.raises(error, match=match):
        action(router)
    assert router.outstanding == (2, 0)


def test_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        LeastLoadedRouter(0)
