"""Off-policy correction: weights for the gap between the rollout engine's policy and the learner's.

The behaviour policy mu is the engine's (the log-probs it reports), the proximal policy pi_old the learner's
recomputed old log-probs. Per token w_t = exp(logp_old - logp_rollout); per sequence the geometric mean
w_i = exp(masked mean_t of the token log-ratios), so a threshold means the same at any length. The weight
multiplies the policy term; a masked token gets weight 0 and stays in the aggregation's denominator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from etr_dist.algos.registries import ROLLOUT_CORRECTIONS, register_rollout_correction
from etr_dist.algos.surrogate import LOG_RATIO_LIMIT, masked_mean
from etr_dist.config.schema import RolloutCorrectionConfig


def _inside(weights: Tensor, correction: RolloutCorrectionConfig) -> Tensor:
    """weights where c_low <= w <= c_high, else 0."""
    keep = (weights >= correction.c_low) & (weights <= correction.c_high)
    return torch.where(keep, weights, torch.zeros_like(weights))


def _sequence_weights(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """w_i = exp(sum_t m log w_t / sum_t m), broadcast over the response's tokens   [N, T]"""
    mean_log_ratio = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [N]
    return mean_log_ratio.exp()[:, None].expand_as(log_ratio)


@register_rollout_correction("none")
def no_correction(log_ratio: Tensor, mask: Tensor, correction: RolloutCorrectionConfig) -> Tensor | None:
    """No weight: the policy term treats the engine's samples as the learner's."""
    return None


@register_rollout_correction("token_truncate")
def token_truncate(log_ratio: Tensor, mask: Tensor, correction: RolloutCorrectionConfig) -> Tensor:
    """TIS: min(w_t, c_high), the variance-bounded per-token weight."""
    return log_ratio.exp().clamp(max=correction.c_high)


@register_rollout_correction("token_mask")
def token_mask(log_ratio: Tensor, mask: Tensor, correction: RolloutCorrectionConfig) -> Tensor:
    """IcePop: w_t inside [c_low, c_high], 0 outside (the token is dropped, not clipped)."""
    return _inside(log_ratio.exp(), correction)


@register_rollout_correction("sequence_truncate")
def sequence_truncate(log_ratio: Tensor, mask: Tensor, correction: RolloutCorrectionConfig) -> Tensor:
    """min(w_i, c_high) on every token of response i."""
    return _sequence_weights(log_ratio, mask).clamp(max=correction.c_high)


@register_rollout_correction("sequence_mask")
def sequence_mask(log_ratio: Tensor, mask: Tensor, correction: RolloutCorrectionConfig) -> Tensor:
    """w_i inside [c_low, c_high], else the whole response gets 0."""
    return _inside(_sequence_weights(log_ratio, mask), correction)


def rollout_correction_weights(
    old_log_prob: Tensor, rollout_log_prob: Tensor, response_mask: Tensor, correction: RolloutCorrectionConfig
) -> tuple[Tensor | None, dict[str, float]]:
    """Constant weights [N, T] (0 on padding; None when off) and the token-mean rollout_corr/* metrics."""
    mask = response_mask.to(old_log_prob.dtype)
    log_ratio = (old_log_prob - rollout_log_prob).detach().clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT) * mask
    weights = ROLLOUT_CORRECTIONS.get(correction.mode)(log_ratio, mask, correction)
    if weights is not None:
        weights = weights * mask
    applied = mask if weights is None else weights  # 1 on every response token when off
    metrics = {
        "rollout_corr/weight_mean": masked_mean(applied, mask),
        "rollout_corr/masked_frac": masked_mean((applied == 0).to(mask.dtype), mask),
        "rollout_corr/log_ratio_abs_mean": masked_mean(log_ratio.abs(), mask),
    }
    return weights, metrics
