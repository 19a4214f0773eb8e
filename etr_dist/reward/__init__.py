"""Verifiable rewards: pure grading functions (no Ray) and a process pool with hard per-item timeouts.

The Ray actor lives in etr_dist.reward.ray_grader, the only module here that imports ray.
"""

from etr_dist.reward.custom import load_reward_fn
from etr_dist.reward.grader import grade
from etr_dist.reward.pool import GraderPool
from etr_dist.reward.types import Grade

__all__ = ["Grade", "GraderPool", "grade", "load_reward_fn"]
