"""Verifiable rewards: pure grading functions (no Ray) and a process pool with hard per-item timeouts.

The Ray actor lives in etr_dist.reward.ray_grader, the only module here that imports ray.
"""

from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.grader import GRADER_VERSION, grade, grader_version
from etr_dist.reward.pool import GraderPool
from etr_dist.reward.types import Grade, GradeRequest

__all__ = [
    "GRADER_VERSION",
    "Grade",
    "GradeRequest",
    "GraderPool",
    "grade",
    "grader_version",
    "load_reward_fn",
]
