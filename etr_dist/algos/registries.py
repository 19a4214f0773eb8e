"""The variant registries of the math layer; each variant registers itself with a decorator."""

from __future__ import annotations

from etr_dist.registry import Registry

ADVANTAGES: Registry = Registry("advantage estimator", config_key="algorithm.adv_estimator")
POLICY_LOSSES: Registry = Registry("policy loss", config_key="algorithm.name")
AGGREGATIONS: Registry = Registry("loss aggregation", config_key="algorithm.loss_agg_mode")
KL_ESTIMATORS: Registry = Registry("KL estimator", config_key="algorithm.kl_estimator")
ROLLOUT_CORRECTIONS: Registry = Registry("rollout correction", config_key="algorithm.rollout_correction.mode")

register_advantage = ADVANTAGES.register
register_policy_loss = POLICY_LOSSES.register
register_aggregation = AGGREGATIONS.register
register_kl_estimator = KL_ESTIMATORS.register
register_rollout_correction = ROLLOUT_CORRECTIONS.register
