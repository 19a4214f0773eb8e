"""Trust-region baselines ETR is compared with: CISPO, SAPO, DPPO (binary TV) and BandPO (chi-square band).

Each is the published definition in this project's loss signature; formulas, defaults and papers are in
docs/baselines.md. r_{i,t} = exp(logp_new - logp_old) against the proximal policy (the learner's old
log-probs), as for every loss here; the engine-vs-learner gap is algorithm.rollout_correction's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from etr_dist.algos.registries import register_policy_loss
from etr_dist.algos.settings import clip_range
from etr_dist.algos.surrogate import (
    ClippedSurrogate,
    PolicyLossInputs,
    clipped_surrogate,
    finish_policy_loss,
    masked_mean,
)
from etr_dist.config.schema import AlgorithmConfig

LossResult = tuple[Tensor, dict[str, float]]

# CISPO: no lower bound on the IS weight (MiniMax-M1 sets eps_low "large"); weight cap 1 + 4 = 5 (ScaleRL's
# and TRL's value: MiniMax-M1 does not publish its eps_high).
CISPO_EPS_LOW, CISPO_EPS_HIGH = 1.0, 4.0
# DPPO binary-TV: the largest allowed |pi - pi_old| of the sampled token on each side.
DPPO_DELTA_LOW, DPPO_DELTA_HIGH = 0.15, 0.15
# BandPO: old probabilities are floored here so the band's 1 / p stays finite in float32.
BANDPO_MIN_PROB = 1e-12


def _no_clip(ratio: Tensor) -> Tensor:
    return torch.zeros_like(ratio, dtype=torch.bool)


@register_policy_loss("cispo")
def cispo_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """CISPO (MiniMax-M1, arXiv 2506.13585): L = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A log pi.

    Written -sg(clip(r) / r) r A: the same gradient, -clip(r) A grad log pi on every token (none is dropped),
    and the value -clip(r) A, comparable with the other losses' pg_loss. The clip fractions count the tokens
    whose weight was truncated, whatever the sign of A; the dual clip does not apply (the weight is bounded).
    """
    ratio = inputs.log_ratio().exp()  # r   [N, T]
    adv = inputs.advantages[:, None]  # A   [N, 1]
    eps_low, eps_high = clip_range(algorithm, CISPO_EPS_LOW, CISPO_EPS_HIGH)
    weight = ratio.detach().clamp(1 - eps_low, 1 + eps_high)  # sg(clip(r))   [N, T]
    loss = -(weight / ratio.detach()) * ratio * adv
    surrogate = ClippedSurrogate(loss, ratio > 1 + eps_high, ratio < 1 - eps_low, _no_clip(ratio))
    return finish_policy_loss(inputs, algorithm, loss, surrogate)


@register_policy_loss("sapo")
def sapo_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """SAPO (Qwen, arXiv 2511.20347): L = -f(r) A,  f(r) = sigmoid(tau (r - 1)) 4 / tau.

    tau = algorithm.sapo.tau_pos where A > 0, tau_neg elsewhere. f'(1) = 1: on-policy the gradient is the
    plain policy gradient; off-policy it is scaled by the gate 4 s (1 - s), s = sigmoid(tau (r - 1)), which
    decays smoothly instead of a hard clip (so no clip fraction: they are 0). sapo/gate_mean is the token mean
    of that gate. No dual clip: f is bounded by 4 / tau.
    """
    ratio = inputs.log_ratio().exp()  # r   [N, T]
    adv = inputs.advantages[:, None]  # A   [N, 1]
    tau = torch.where(adv > 0, adv.new_tensor(algorithm.sapo.tau_pos), adv.new_tensor(algorithm.sapo.tau_neg))
    s = torch.sigmoid(tau * (ratio - 1))  # [N, T]
    loss = -s * (4 / tau) * adv
    surrogate = ClippedSurrogate(loss, _no_clip(ratio), _no_clip(ratio), _no_clip(ratio))
    gate = (4 * s * (1 - s)).detach()
    extra = {"sapo/gate_mean": masked_mean(gate, inputs.response_mask)}
    return finish_policy_loss(inputs, algorithm, loss, surrogate, extra)


@register_policy_loss("dppo_tv")
def dppo_tv_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """DPPO, binary-TV mask (arXiv 2602.04879): L = -M r A, M = 0 once |pi - pi_old| left the trust region.

    The sampled token's probability shift d = pi - pi_old (the total variation of the token-vs-rest Bernoulli)
    masks the token where it moves further out: A > 0 and d > delta_high, or A < 0 and d < -delta_low, with
    (delta_low, delta_high) = clip_ratio_low/high (probability units, default 0.15 / 0.15). The dual clip caps
    -r A at -c A for A < 0, as for the ratio-clipping losses.
    """
    ratio = inputs.log_ratio().exp()  # r   [N, T]
    adv = inputs.advantages[:, None]  # A   [N, 1]
    delta_low, delta_high = clip_range(algorithm, DPPO_DELTA_LOW, DPPO_DELTA_HIGH)
    shift = (inputs.log_prob.exp() - inputs.old_log_prob.exp()).detach()  # d = pi - pi_old   [N, T]
    upper = (adv > 0) & (shift > delta_high)
    lower = (adv < 0) & (shift < -delta_low)
    loss = torch.where(upper | lower, torch.zeros_like(ratio), -ratio * adv)  # [N, T]
    dual = _no_clip(ratio)
    if algorithm.clip_ratio_c is not None:
        dual = (adv < 0) & (loss > -algorithm.clip_ratio_c * adv)
        loss = torch.where(dual, -algorithm.clip_ratio_c * adv, loss)
    return finish_policy_loss(inputs, algorithm, loss, ClippedSurrogate(loss, upper, lower, dual))


def chi_square_band(old_log_prob: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    """(eps_low, eps_high) [N, T]: the ratio range the chi-square trust region allows each token.

    Moving the token's probability p to r p and rescaling the rest, chi2 = p (r - 1)^2 / (1 - p) <= delta
    gives |r - 1| <= sqrt(delta (1 - p) / p), kept inside the simplex: 0 <= r <= 1 / p.
    """
    p = old_log_prob.detach().exp().clamp(BANDPO_MIN_PROB, 1.0)  # [N, T]
    radius = (delta * (1 - p) / p).sqrt()
    eps_high = torch.minimum(radius, 1 / p - 1)
    eps_low = radius.clamp(max=1.0)
    return eps_low, eps_high


@register_policy_loss("bandpo")
def bandpo_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """BandPO (arXiv 2603.04918): the clipped surrogate with per-token bounds from chi_square_band.

    L = -min(r A, clip(r, 1 - eps_low_t, 1 + eps_high_t) A) with the dual clip; a rare token (small p) may
    move far, a confident one (p near 1) hardly at all. delta = algorithm.bandpo.delta (default 0.05).
    """
    ratio = inputs.log_ratio().exp()  # r   [N, T]
    adv = inputs.advantages[:, None]  # A   [N, 1]
    eps_low, eps_high = chi_square_band(inputs.old_log_prob, algorithm.bandpo.delta)  # [N, T] each
    surrogate = clipped_surrogate(ratio, adv, eps_low, eps_high, algorithm.clip_ratio_c)
    return finish_policy_loss(inputs, algorithm, surrogate.loss, surrogate)
