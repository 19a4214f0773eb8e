"""The Ray shell: a real local cluster, a GraderActor taking concurrent calls, a real kill timeout inside it."""

import pytest

from etr_dist.config.schema import RewardConfig
from etr_dist.reward import Grade, GradeRequest

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


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
