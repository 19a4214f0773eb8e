"""The policy-loss math layer: pure tensor functions, no Ray, DeepSpeed or vLLM (see docs/algorithms.md)."""

from etr_dist.algos import baseline_losses  # noqa: F401  (registers cispo, sapo, dppo_tv, bandpo)
from etr_dist.algos.advantages import compute_advantages
from etr_dist.algos.aggregation import aggregate_loss, aggregation_norm
from etr_dist.algos.etr import ElasticBounds, elastic_bounds
from etr_dist.algos.kl import kl_penalty
from etr_dist.algos.logits import entropy_from_logits, logprobs_from_logits
from etr_dist.algos.policy_losses import PolicyLoss, compute_policy_loss
from etr_dist.algos.registries import (
    ADVANTAGES,
    AGGREGATIONS,
    KL_ESTIMATORS,
    POLICY_LOSSES,
    ROLLOUT_CORRECTIONS,
    register_advantage,
    register_aggregation,
    register_kl_estimator,
    register_policy_loss,
    register_rollout_correction,
)
from etr_dist.algos.rollout_correction import rollout_correction_weights

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "ROLLOUT_CORRECTIONS",
    "ElasticBounds",
    "PolicyLoss",
    "aggregate_loss",
    "aggregation_norm",
    "compute_advantages",
    "compute_policy_loss",
    "elastic_bounds",
    "entropy_from_logits",
    "kl_penalty",
    "logprobs_from_logits",
    "register_advantage",
    "register_aggregation",
    "register_kl_estimator",
    "register_policy_loss",
    "register_rollout_correction",
    "rollout_correction_weights",
]
