"""The Ray shell: a real local cluster, a GraderActor taking concurrent calls, a real kill timeout inside it,
a reward.fn the actor's node cannot import, and a SIGKILLed actor that Ray restarts."""

import os
import signal
import time

import pytest

from etr_dist.config.schema import RewardConfig
from etr_dist.reward import Grade, GradeRequest

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # installed with ray[default]


def test_grader_actor_keeps_order_and_timeouts_under_concurrent_calls(local_ray):
    from etr_dist.reward.ray_grader import create_grader_actor

    actor = create_grader_actor(RewardConfig(num_workers=1, timeout_s=1.0), num_cpus=1, max_concurrency=2)
    tower = ("so $\\boxed{9^{9^{9^{9}}}}$", "1")
    requests = [("so \\boxed{\\dfrac12}", "0.5"), ("#### 7", "8"), GradeRequest("just 9", "9", True)]
    first, second = ray.get(
        [actor.grade_batch.remote([tower, *requests]), actor.grade_batch.remote(requests)], timeout=120
    )
    expected = [
        Grade(1.0, "match_string", "\\dfrac12"),
        Grade(0.0, "mismatch", "7"),
        Grade(1.0, "match_string", "9"),  # the request's own last-number fallback crossed Ray
    ]
    assert first == [Grade(0.0, "timeout", None), *expected]
    assert second == expected
    metrics = ray.get(actor.metrics.remote())
    assert (metrics["reward/grader_items"], metrics["reward/grader_timeouts"]) == (7.0, 1.0)
    ray.kill(actor)


def test_a_bad_reward_path_fails_in_the_driver_before_any_actor_starts(local_ray):
    from etr_dist.reward.ray_grader import create_grader_actor

    with pytest.raises(ImportError, match="reward.fn='no_such_package.rewards:score'"):
        create_grader_actor(RewardConfig(fn="no_such_package.rewards:score"))


def test_a_reward_fn_missing_on_the_graders_node_fails_at_actor_creation(local_ray, tmp_path, monkeypatch):
    from etr_dist.reward.ray_grader import create_grader_actor

    (tmp_path / "driver_only_reward.py").write_text("def score(response, reference):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the driver imports it; the actor's process cannot
    actor = create_grader_actor(RewardConfig(fn="driver_only_reward:score"), num_cpus=1)
    with pytest.raises(ray.exceptions.RayActorError) as failure:
        ray.get(actor.pid.remote(), timeout=120)
    message = str(failure.value)
    assert "reward.fn='driver_only_reward:score': cannot import module 'driver_only_reward'" in message
    assert "on the grader actor's node" in message


def _descendants_left(pids: list[int]) -> list[int]:
    """The pids still running (a zombie has exited: only its parent has not read its status yet)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def test_a_killed_grader_actor_restarts_with_a_fresh_pool_and_leaves_no_orphans(local_ray):
    from etr_dist.reward.ray_grader import create_grader_actor

    actor = create_grader_actor(RewardConfig(num_workers=2, timeout_s=60.0), num_cpus=1, max_restarts=1)
    requests = [("so \\boxed{\\dfrac12}", "0.5"), ("#### 7", "8")]
    expected = [Grade(1.0, "match_string", "\\dfrac12"), Grade(0.0, "mismatch", "7")]
    assert ray.get(actor.grade_batch.remote(requests), timeout=120) == expected
    first_pid = ray.get(actor.pid.remote(), timeout=60)
    in_flight = actor.grade_batch.remote([("so $\\boxed{9^{9^{9^{9}}}}$", "1")])  # hangs a worker for 60 s
    children = [child.pid for child in psutil.Process(first_pid).children(recursive=True)]
    assert len(children) >= 3  # the forkserver and its two workers
    os.kill(first_pid, signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(in_flight, timeout=120)
    deadline = time.monotonic() + 30
    while _descendants_left(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _descendants_left(children) == []
    assert _pid_once_restarted(actor) != first_pid
    assert ray.get(actor.grade_batch.remote(requests), timeout=120) == expected
    ray.kill(actor)


def _pid_once_restarted(actor) -> int:
    """Calls fail fast while Ray restarts the actor (max_task_retries=0): re-send, as the driver does."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return ray.get(actor.pid.remote(), timeout=60)
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
