"""Static-trust-region policy losses (GRPO, DAPO clip-higher, GSPO) and the public compute_policy_loss."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from etr_dist.algos.registries import POLICY_LOSSES, register_policy_loss
from etr_dist.algos.settings import LossSettings, read_loss_settings
from etr_dist.algos.surrogate import PolicyLossInputs, clipped_surrogate, finish_policy_loss


def static_bounds(
    settings: LossSettings, default_low: float, default_high: float, like: Tensor
) -> tuple[Tensor, Tensor]:
    """(eps_low, eps_high) as [1, 1] tensors: the config's clip_ratio_low/high, else this loss's defaults."""
    low = default_low if settings.clip_ratio_low is None else settings.clip_ratio_low
    high = default_high if settings.clip_ratio_high is None else settings.clip_ratio_high
    return like.new_full((1, 1), low), like.new_full((1, 1), high)


def _token_clip_loss(
    inputs: PolicyLossInputs, settings: LossSettings, default_low: float, default_high: float
) -> tuple[Tensor, dict[str, float]]:
    ratio = inputs.log_ratio().exp()  # r_{i,t}   [N, T]
    adv = inputs.advantages[:, None]  # A_i       [N, 1]
    eps_low, eps_high = static_bounds(settings, default_low, default_high, ratio)
    surrogate = clipped_surrogate(ratio, adv, eps_low, eps_high, settings.clip_ratio_c)
    return finish_policy_loss(inputs, settings, surrogate.loss, surrogate)


@register_policy_loss("grpo")
def grpo_loss(inputs: PolicyLossInputs, settings: LossSettings) -> tuple[Tensor, dict[str, float]]:
    """Vanilla PPO clip, static symmetric region (eps_low = eps_high = 0.2 by default)."""
    return _token_clip_loss(inputs, settings, 0.2, 0.2)


@register_policy_loss("clip_higher")
def clip_higher_loss(inputs: PolicyLossInputs, settings: LossSettings) -> tuple[Tensor, dict[str, float]]:
    """DAPO clip-higher, static asymmetric region (0.2, 0.28) by default."""
    return _token_clip_loss(inputs, settings, 0.2, 0.28)


@register_policy_loss("gspo")
def gspo_loss(inputs: PolicyLossInputs, settings: LossSettings) -> tuple[Tensor, dict[str, float]]:
    """GSPO: s_i = exp(mean_t log r_{i,t}), one clip per response; L_i is copied to each of its tokens."""
    mask = inputs.response_mask  # [N, T]
    mean_log_ratio = (inputs.log_ratio() * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [N]
    seq_ratio = mean_log_ratio.exp()[:, None].expand_as(mask)  # s_i   [N, T]
    adv = inputs.advantages[:, None]  # [N, 1]
    eps_low, eps_high = static_bounds(settings, 3e-4, 4e-4, seq_ratio)
    surrogate = clipped_surrogate(seq_ratio, adv, eps_low, eps_high, settings.clip_ratio_c)
    return finish_policy_loss(inputs, settings, surrogate.loss, surrogate)


def _check_shapes(log_prob: Tensor, tensors: dict[str, Tensor | None]) -> None:
    if log_prob.dim() != 2:
        raise ValueError(f"log_prob must be [N, T], got shape {tuple(log_prob.shape)}")
    n, t = log_prob.shape
    expected = {"old_log_prob": (n, t), "response_mask": (n, t), "token_weights": (n, t)}
    for name, tensor in tensors.items():
        want = expected.get(name, (n,))
        if tensor is not None and tuple(tensor.shape) != want:
            raise ValueError(
                f"{name} must have shape {want} to match log_prob {(n, t)}, got {tuple(tensor.shape)}"
            )


def compute_policy_loss(
    loss_mode: str,
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    group_var_norm: Tensor | None,
    config: Any,
    adv_rms: float | None = None,
    global_norm: float | None = None,
    token_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Scalar policy loss (differentiable w.r.t. log_prob) and float metrics, as etr_spec.md defines them."""
    loss_fn = POLICY_LOSSES.get(loss_mode)
    tensors = {
        "old_log_prob": old_log_prob,
        "advantages": advantages,
        "response_mask": response_mask,
        "group_var_norm": group_var_norm,
        "token_weights": token_weights,
    }
    _check_shapes(log_prob, tensors)
    if adv_rms is not None and not adv_rms > 0:
        raise ValueError(f"adv_rms must be > 0, got {adv_rms}")
    inputs = PolicyLossInputs(
        log_prob=log_prob,
        old_log_prob=old_log_prob.detach(),
        advantages=advantages.detach().to(log_prob.dtype),
        response_mask=response_mask.to(log_prob.dtype),
        group_var_norm=None if group_var_norm is None else group_var_norm.detach().to(log_prob.dtype),
        adv_rms=adv_rms,
        global_norm=global_norm,
        token_weights=None if token_weights is None else token_weights.to(log_prob.dtype),
    )
    return loss_fn(inputs, read_loss_settings(config))
