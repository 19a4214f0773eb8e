"""ETR (Elastic Trust Regions): per-response clip bounds from advantage size and group variance.

This functional form is this project's formalisation of the mechanism described in arXiv 2601.03723.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from etr_dist.algos.registries import register_policy_loss
from etr_dist.algos.settings import LossSettings
from etr_dist.algos.surrogate import PolicyLossInputs, clipped_surrogate, finish_policy_loss
from etr_dist.config.schema import EtrConfig


def advantage_rms(advantages: Tensor) -> float:
    """rms(A) over the non-zero advantages (the scale of u_i); 1.0 when all are zero (the loss is 0 then)."""
    nonzero = advantages[advantages != 0].double()
    if nonzero.numel() == 0:
        return 1.0
    scale = nonzero.abs().max()  # divide first so A^2 neither underflows nor overflows
    return float(scale * (nonzero / scale).pow(2).mean().sqrt())


@dataclass(frozen=True)
class ElasticBounds:
    eps_low: Tensor  # [N]
    eps_high: Tensor  # [N]
    phi: Tensor  # [N] micro factor
    psi: Tensor  # [N] macro factor
    loss_weight: Tensor  # [N] psi when macro_mode=weight, else 1


def elastic_bounds(
    advantages: Tensor, group_var_norm: Tensor | None, adv_rms: float, etr: EtrConfig
) -> ElasticBounds:
    """eps_i = clamp(eps_base * phi_i * psi_q, eps_min, eps_max), every factor per response."""
    ones = torch.ones_like(advantages)  # [N]
    u = advantages.abs() / adv_rms  # scale-free advantage magnitude
    phi = (1 + etr.lambda_micro * (u - 1)).clamp(etr.phi_min, etr.phi_max) if etr.micro else ones
    if etr.macro and group_var_norm is None:
        raise ValueError("ETR with algorithm.etr.macro=true needs group_var_norm (v_q per response)")
    psi = group_var_norm**etr.lambda_macro if etr.macro else ones
    in_bounds, loss_weight = (psi, ones) if etr.macro_mode == "clip" else (ones, psi)
    eps_high = (etr.eps_high_base * phi * in_bounds).clamp(etr.eps_min, etr.eps_max)
    # side=upper keeps eps_low static, Clip-Higher-style: only the upper bound is elastic
    elastic_low = (etr.eps_low_base * phi * in_bounds).clamp(etr.eps_min, etr.eps_max)
    eps_low = elastic_low if etr.side == "both" else ones * etr.eps_low_base
    return ElasticBounds(eps_low, eps_high, phi, psi, loss_weight)


def _mean_p10_p90(values: Tensor) -> tuple[float, float, float]:
    """Of per-response values; zeros for a batch without response tokens."""
    values = values.detach().double()
    if values.numel() == 0:
        return 0.0, 0.0, 0.0
    p10, p90 = torch.quantile(values, values.new_tensor([0.1, 0.9])).tolist()
    return float(values.mean()), p10, p90


def etr_metrics(bounds: ElasticBounds, response_mask: Tensor) -> dict[str, float]:
    """etr/* over the responses that have tokens in this batch."""
    rows = response_mask.sum(-1) > 0  # [N]
    metrics = {
        "etr/phi_mean": _mean_p10_p90(bounds.phi[rows])[0],
        "etr/psi_mean": _mean_p10_p90(bounds.psi[rows])[0],
    }
    for name, values in (("eps_high", bounds.eps_high), ("eps_low", bounds.eps_low)):
        mean, p10, p90 = _mean_p10_p90(values[rows])
        metrics |= {f"etr/{name}_mean": mean, f"etr/{name}_p10": p10, f"etr/{name}_p90": p90}
    return metrics


@register_policy_loss("etr")
def etr_loss(inputs: PolicyLossInputs, settings: LossSettings) -> tuple[Tensor, dict[str, float]]:
    """The clipped surrogate with elastic per-response bounds (and, for macro_mode=weight, psi_q * L)."""
    adv_rms = inputs.adv_rms if inputs.adv_rms is not None else advantage_rms(inputs.advantages)
    bounds = elastic_bounds(inputs.advantages, inputs.group_var_norm, adv_rms, settings.etr)
    ratio = inputs.log_ratio().exp()  # r_{i,t}   [N, T]
    adv = inputs.advantages[:, None]  # A_i       [N, 1]
    surrogate = clipped_surrogate(
        ratio, adv, bounds.eps_low[:, None], bounds.eps_high[:, None], settings.clip_ratio_c
    )
    token_loss = surrogate.loss * bounds.loss_weight[:, None]  # [N, T]
    return finish_policy_loss(
        inputs, settings, token_loss, surrogate, etr_metrics(bounds, inputs.response_mask)
    )
