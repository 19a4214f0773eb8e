"""ETR (Elastic Trust Regions, arXiv 2601.03723): a fixed trust-region budget per side, reallocated per response.

The functional form is this project's formalisation of the paper's description (spec v2, docs/algorithms.md):

    z_i   = (R_i - mu_q) / (sigma_q + 1e-6),   s = rms of the non-zero z,   u_i = |z_i| / s
    phi_i = clamp(u_i ** lambda_micro, phi_min, phi_max)          micro: how unusual the outcome is in its group
    psi_q = v_q ** lambda_macro,  v_q = sigma_q^2 / sigma_max^2    macro: the group's reward variance
    w_i   = phi_i psi_q,   b_i = w_i / W_side (W_side: budget-weighted mean of w over z > 0, or over z < 0)
    eps_high_i = clamp(eps_high_base b_i, eps_min, eps_max),   eps_low_i = clamp(eps_low_base b_i, ...)

The bounds depend only on the step's outcomes and response lengths: computed once per step on the whole step
batch, they travel with its rows, so no sharding changes them.

Besides the batch-wide etr/* metrics, each side's bounds are averaged per pass-rate bucket of the response's group
(pass rate p_q = (mu_q - lo) / (hi - lo) by reward_range; buckets (0, .25], (.25, .5], (.5, .75], (.75, 1)):
etr/eps_high_active_mean_pass_<bucket> and etr/eps_low_active_mean_pass_<bucket>, <bucket> in 0-25, 25-50, 50-75,
75-100. A bucket with no response of that side logs no key that step: a stand-in value would bias the means
across steps and seeds, and the metrics logger counts a NaN as a non-finite metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from etr_dist.algos.advantages import GRPO_STD_EPS, GroupStats, check_reward_inputs, group_stats
from etr_dist.algos.registries import register_policy_loss
from etr_dist.algos.settings import read_algorithm_config
from etr_dist.algos.surrogate import PolicyLossInputs, clipped_surrogate, finish_policy_loss
from etr_dist.config.schema import AlgorithmConfig

PASS_BUCKETS = ((0.0, 0.25, "0-25"), (0.25, 0.5, "25-50"), (0.5, 0.75, "50-75"), (0.75, 1.0, "75-100"))


@dataclass(frozen=True)
class ElasticBounds:
    eps_low: Tensor  # [N] lower bound of each response (meaningful where z < 0)
    eps_high: Tensor  # [N] upper bound of each response (meaningful where z > 0)
    phi: Tensor  # [N] micro factor
    psi: Tensor  # [N] macro factor of the response's group
    W_high: float  # budget-weighted mean of w = phi psi over z > 0 (1.0 if none)
    W_low: float  # the same over z < 0
    metrics: dict[str, float]  # etr/*, of the whole step batch


def standardised_rewards(rewards: Tensor, group_ids: Tensor, unbiased_std: bool) -> tuple[Tensor, GroupStats]:
    """(z [N], the group statistics) in float64; z = 0 in a group whose rewards are all equal."""
    stats = group_stats(rewards.double(), group_ids, unbiased_std)
    z = (rewards.double() - stats.mean) / (stats.std + GRPO_STD_EPS)
    return z.masked_fill(stats.all_equal, 0.0), stats


def _weighted_mean(values: Tensor, weights: Tensor, rows: Tensor, empty: float) -> float:
    """sum(w x) / sum(w) over the selected rows; `empty` when no row is selected."""
    total = weights[rows].sum()
    return float((values[rows] * weights[rows]).sum() / total) if total > 0 else empty


def elastic_bounds(
    rewards: Tensor,
    group_ids: Tensor,
    response_lengths: Tensor,
    config: Any,
    reward_range: tuple[float, float] = (0.0, 1.0),
) -> ElasticBounds:
    """ETR's per-response bounds for the whole step batch (rows can be sliced with the batch afterwards)."""
    algorithm = read_algorithm_config(config)
    etr = algorithm.etr
    check_reward_inputs(rewards, group_ids, reward_range)
    if response_lengths.shape != rewards.shape:
        raise ValueError(
            f"response_lengths must be [N] = {tuple(rewards.shape)}, got {tuple(response_lengths.shape)}"
        )
    z, stats = standardised_rewards(rewards, group_ids, algorithm.unbiased_std)  # [N]
    active = z != 0
    s = float(z[active].pow(2).mean().sqrt()) if active.any() else 1.0
    ones = torch.ones_like(z)
    phi = (z.abs() / s).pow(etr.lambda_micro).clamp(etr.phi_min, etr.phi_max) if etr.micro else ones
    sigma_max_sq = (reward_range[1] - reward_range[0]) ** 2 / 4
    v = (stats.population_var / sigma_max_sq).clamp(0.0, 1.0)  # v_q [N]
    psi = v.pow(etr.lambda_macro) if etr.macro else ones
    w = phi * psi  # [N]
    # each side's budget is spread over the responses where that side can bind, weighted as the loss is
    weights = response_lengths.double() if algorithm.loss_agg_mode == "token-mean" else ones
    upper, lower = z > 0, z < 0
    w_high, w_low = _weighted_mean(w, weights, upper, 1.0), _weighted_mean(w, weights, lower, 1.0)
    # preserve: each side's share b_i = w_i / W_side (z = 0 carries no gradient: base); absolute: b_i = w_i
    preserved = torch.where(upper, w / w_high, torch.where(lower, w / w_low, ones))
    b = preserved if etr.budget == "preserve" else w
    raw_high, raw_low = etr.eps_high_base * b, etr.eps_low_base * b
    eps_high = raw_high.clamp(etr.eps_min, etr.eps_max)
    eps_low = raw_low.clamp(etr.eps_min, etr.eps_max) if etr.side == "both" else ones * etr.eps_low_base
    clamped = torch.where(upper, eps_high != raw_high, torch.where(lower, eps_low != raw_low, False))
    if etr.side == "upper":
        clamped = clamped & upper
    metrics = {
        "etr/phi_mean": _weighted_mean(phi, ones, active, 1.0),
        "etr/psi_mean": _weighted_mean(psi, ones, active, 1.0),
        "etr/W_high": w_high,
        "etr/W_low": w_low,
        "etr/eps_high_active_mean": _weighted_mean(eps_high, weights, upper, etr.eps_high_base),
        "etr/eps_low_active_mean": _weighted_mean(eps_low, weights, lower, etr.eps_low_base),
        "etr/clamped_frac": _weighted_mean(clamped.double(), weights, active, 0.0),
        **_summary("eps_high", eps_high[upper], etr.eps_high_base),
        **_summary("eps_low", eps_low[lower], etr.eps_low_base),
    }
    pass_rate = (stats.mean - reward_range[0]) / (reward_range[1] - reward_range[0])  # p_q [N]
    for side, bounds, rows in (("high", eps_high, upper), ("low", eps_low, lower)):
        metrics.update(_by_pass_rate(side, bounds, weights, rows, pass_rate))
    dtype = rewards.dtype if rewards.is_floating_point() else torch.get_default_dtype()
    return ElasticBounds(
        eps_low.to(dtype), eps_high.to(dtype), phi.to(dtype), psi.to(dtype), w_high, w_low, metrics
    )


def pass_rate_metric(side: str, bucket: str) -> str:
    """The metric of one side's ("high" or "low") mean bound over the groups of one pass-rate bucket ("0-25", ...)."""
    return f"etr/eps_{side}_active_mean_pass_{bucket}"


def _by_pass_rate(
    side: str, bounds: Tensor, weights: Tensor, rows: Tensor, pass_rate: Tensor
) -> dict[str, float]:
    """etr/eps_<side>_active_mean_pass_<bucket>: the side's bounds weighted as the budget is, per pass-rate bucket
    of the group; rows (z > 0 or z < 0) lie in groups with a gradient, so 0 < p_q < 1. No key for an empty bucket."""
    metrics = {}
    for low, high, name in PASS_BUCKETS:
        selected = rows & (pass_rate > low) & (pass_rate <= high)
        if weights[selected].sum() > 0:
            metrics[pass_rate_metric(side, name)] = _weighted_mean(bounds, weights, selected, 0.0)
    return metrics


def _summary(name: str, values: Tensor, empty: float) -> dict[str, float]:
    """etr/<name>_{mean,p10,p90} over one side's responses; the base value when the side is empty."""
    if values.numel() == 0:
        return {f"etr/{name}_mean": empty, f"etr/{name}_p10": empty, f"etr/{name}_p90": empty}
    p10, p90 = torch.quantile(values, values.new_tensor([0.1, 0.9])).tolist()
    return {f"etr/{name}_mean": float(values.mean()), f"etr/{name}_p10": p10, f"etr/{name}_p90": p90}


@register_policy_loss("etr")
def etr_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> tuple[Tensor, dict[str, float]]:
    """L_{i,t} = -min(r A_i, clip(r, 1 - eps_low_i, 1 + eps_high_i) A_i), bounds from elastic_bounds."""
    if inputs.clip_bounds is None:
        raise ValueError(
            "policy loss 'etr' needs clip_bounds=(eps_low [N], eps_high [N]): compute them once per step with "
            "elastic_bounds(rewards, group_ids, response_lengths, config) and slice them with the rows"
        )
    eps_low, eps_high = (bound.to(inputs.log_prob.dtype)[:, None] for bound in inputs.clip_bounds)  # [N, 1]
    ratio = inputs.log_ratio().exp()  # r_{i,t}   [N, T]
    surrogate = clipped_surrogate(
        ratio, inputs.advantages[:, None], eps_low, eps_high, algorithm.clip_ratio_c
    )
    return finish_policy_loss(inputs, algorithm, surrogate.loss, surrogate)
