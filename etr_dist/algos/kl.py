"""Per-token estimators of KL(pi || pi_ref) from log-probs of sampled tokens (Schulman's k1, k2, k3)."""

from __future__ import annotations

from torch import Tensor

from etr_dist.algos.registries import KL_ESTIMATORS, register_kl_estimator

K3_LOG_RATIO_LIMIT = 20.0  # exp(20) = 5e8: k3 stays finite in float32 for any pair of log-probs


@register_kl_estimator("k1")
def kl_k1(log_prob: Tensor, ref_log_prob: Tensor) -> Tensor:
    """k1 = log pi - log pi_ref   (unbiased, high variance, can be negative)"""
    return log_prob - ref_log_prob


@register_kl_estimator("k2")
def kl_k2(log_prob: Tensor, ref_log_prob: Tensor) -> Tensor:
    """k2 = (log pi - log pi_ref)^2 / 2   (biased, low variance, >= 0)"""
    return 0.5 * (log_prob - ref_log_prob) ** 2


@register_kl_estimator("k3")
def kl_k3(log_prob: Tensor, ref_log_prob: Tensor) -> Tensor:
    """k3 = pi_ref/pi - log(pi_ref/pi) - 1   (unbiased, low variance, >= 0); log-ratio clamped to [-20, 20]"""
    log_ref_ratio = (ref_log_prob - log_prob).clamp(-K3_LOG_RATIO_LIMIT, K3_LOG_RATIO_LIMIT)
    return log_ref_ratio.exp() - log_ref_ratio - 1


def kl_penalty(log_prob: Tensor, ref_log_prob: Tensor, estimator: str) -> Tensor:
    """Per-token KL estimate [N, T]; aggregate it with aggregate_loss like the policy loss."""
    if log_prob.shape != ref_log_prob.shape:
        raise ValueError(
            f"log_prob {tuple(log_prob.shape)} and ref_log_prob {tuple(ref_log_prob.shape)} differ"
        )
    return KL_ESTIMATORS.get(estimator)(log_prob, ref_log_prob)
