"""The clipped surrogate every ratio-clipping loss shares, and the step that turns it into (loss, metrics)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from etr_dist.algos.aggregation import aggregate_loss
from etr_dist.config.schema import AlgorithmConfig

# log r is clamped before exp so float32 stays finite; |log r| > 20 (r > 5e8) never happens in practice.
LOG_RATIO_LIMIT = 20.0


@dataclass(frozen=True)
class PolicyLossInputs:
    log_prob: Tensor  # [N, T] current policy
    old_log_prob: Tensor  # [N, T] proximal policy (the learner's recomputed log-probs)
    advantages: Tensor  # [N]
    response_mask: Tensor  # [N, T] float 0/1
    group_var_norm: Tensor | None  # [N] v_q
    clip_bounds: tuple[Tensor, Tensor] | None  # (eps_low [N], eps_high [N]) from the step's elastic_bounds
    global_norm: float | None  # aggregation denominator of the optimizer step's mini-batch
    token_weights: Tensor | None  # [N, T] constant per-token weights (off-policy correction)

    def log_ratio(self) -> Tensor:
        """log r_{i,t} = logp_new - logp_old   [N, T]"""
        return (self.log_prob - self.old_log_prob).clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)


@dataclass(frozen=True)
class ClippedSurrogate:
    loss: Tensor  # [N, T] L_{i,t}
    clipped_upper: Tensor  # [N, T] bool: A > 0 and r > 1 + eps_high
    clipped_lower: Tensor  # [N, T] bool: A < 0 and r < 1 - eps_low
    clipped_dual: Tensor  # [N, T] bool: A < 0 and the dual clip's cap -c A took the place of L


def clipped_surrogate(
    ratio: Tensor, adv: Tensor, eps_low: Tensor | float, eps_high: Tensor | float, clip_ratio_c: float | None
) -> ClippedSurrogate:
    """L = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A); dual clip: for A < 0, L = min(L, -c A).

    ratio [N, T]; adv, eps_low, eps_high [N, 1] or scalars (broadcast over the response's tokens).
    """
    lower, upper = 1 - eps_low, 1 + eps_high
    loss = -torch.minimum(ratio * adv, torch.clamp(ratio, lower, upper) * adv)  # [N, T]
    dual = torch.zeros_like(loss, dtype=torch.bool)
    if clip_ratio_c is not None:
        dual = (adv < 0) & (loss > -clip_ratio_c * adv)
        loss = torch.where(dual, -clip_ratio_c * adv, loss)
    return ClippedSurrogate(loss, (adv > 0) & (ratio > upper), (adv < 0) & (ratio < lower), dual)


def masked_mean(values: Tensor, mask: Tensor) -> float:
    return float((values * mask).sum() / mask.sum().clamp(min=1))


def finish_policy_loss(
    inputs: PolicyLossInputs,
    algorithm: AlgorithmConfig,
    token_loss: Tensor,
    surrogate: ClippedSurrogate,
    extra_metrics: dict[str, float] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Weight, aggregate and measure: scalar loss and the spec's actor/* metrics (plus a loss's own)."""
    mask = inputs.response_mask
    if inputs.token_weights is not None:
        token_loss = token_loss * inputs.token_weights.detach()
    loss = aggregate_loss(token_loss, mask, algorithm.loss_agg_mode, inputs.global_norm)
    upper, lower, dual = (
        clipped.to(mask.dtype)
        for clipped in (surrogate.clipped_upper, surrogate.clipped_lower, surrogate.clipped_dual)
    )
    metrics = {
        "actor/pg_loss": float(loss.detach()),
        "actor/pg_clipfrac": masked_mean(torch.maximum(torch.maximum(upper, lower), dual), mask),
        "actor/pg_clipfrac_upper": masked_mean(upper, mask),
        "actor/pg_clipfrac_lower": masked_mean(lower, mask),
        "actor/pg_clipfrac_dual": masked_mean(dual, mask),
        "actor/ppo_kl": masked_mean((inputs.old_log_prob - inputs.log_prob).detach(), mask),
    }
    return loss, {**metrics, **(extra_metrics or {})}
