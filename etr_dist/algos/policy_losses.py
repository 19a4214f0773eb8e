"""Static-trust-region policy losses (GRPO, DAPO clip-higher, GSPO), PolicyLoss and compute_policy_loss."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from etr_dist.algos.registries import POLICY_LOSSES, register_policy_loss
from etr_dist.algos.settings import clip_range, read_algorithm_config
from etr_dist.algos.surrogate import PolicyLossInputs, clipped_surrogate, finish_policy_loss
from etr_dist.config.schema import AlgorithmConfig

LossResult = tuple[Tensor, dict[str, float]]


def _token_clip_loss(
    inputs: PolicyLossInputs, algorithm: AlgorithmConfig, default_low: float, default_high: float
) -> LossResult:
    ratio = inputs.log_ratio().exp()  # r_{i,t}   [N, T]
    adv = inputs.advantages[:, None]  # A_i       [N, 1]
    eps_low, eps_high = clip_range(algorithm, default_low, default_high)
    surrogate = clipped_surrogate(ratio, adv, eps_low, eps_high, algorithm.clip_ratio_c)
    return finish_policy_loss(inputs, algorithm, surrogate.loss, surrogate)


@register_policy_loss("grpo")
def grpo_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """Vanilla PPO clip (Schulman et al. 2017, arXiv 1707.06347), static symmetric region 0.2 / 0.2."""
    return _token_clip_loss(inputs, algorithm, 0.2, 0.2)


@register_policy_loss("clip_higher")
def clip_higher_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """DAPO clip-higher (arXiv 2503.14476), static asymmetric region 0.2 / 0.28."""
    return _token_clip_loss(inputs, algorithm, 0.2, 0.28)


@register_policy_loss("gspo")
def gspo_loss(inputs: PolicyLossInputs, algorithm: AlgorithmConfig) -> LossResult:
    """GSPO (arXiv 2507.18071): s_i = exp(mean_t log r_{i,t}), one clip per response at 3e-4 / 4e-4."""
    mask = inputs.response_mask  # [N, T]
    mean_log_ratio = (inputs.log_ratio() * mask).sum(-1) / mask.sum(-1).clamp(min=1)  # [N]
    seq_ratio = mean_log_ratio.exp()[:, None].expand_as(mask)  # s_i   [N, T]
    adv = inputs.advantages[:, None]  # [N, 1]
    eps_low, eps_high = clip_range(algorithm, 3e-4, 4e-4)
    surrogate = clipped_surrogate(seq_ratio, adv, eps_low, eps_high, algorithm.clip_ratio_c)
    return finish_policy_loss(inputs, algorithm, surrogate.loss, surrogate)


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


class PolicyLoss:
    """A registered loss bound once to its checked config (the learner builds one; no per-call re-reading)."""

    def __init__(self, loss_mode: str, config: Any) -> None:
        self.loss_mode = loss_mode
        self.fn = POLICY_LOSSES.get(loss_mode)
        self.algorithm = read_algorithm_config(config, loss_mode)

    def __call__(
        self,
        log_prob: Tensor,
        old_log_prob: Tensor,
        advantages: Tensor,
        response_mask: Tensor,
        group_var_norm: Tensor | None = None,
        clip_bounds: tuple[Tensor, Tensor] | None = None,
        token_weights: Tensor | None = None,
        global_norm: float | None = None,
    ) -> LossResult:
        eps_low, eps_high = clip_bounds if clip_bounds is not None else (None, None)
        tensors = {
            "old_log_prob": old_log_prob,
            "advantages": advantages,
            "response_mask": response_mask,
            "group_var_norm": group_var_norm,
            "token_weights": token_weights,
            "eps_low": eps_low,
            "eps_high": eps_high,
        }
        _check_shapes(log_prob, tensors)
        dtype = log_prob.dtype
        inputs = PolicyLossInputs(
            log_prob=log_prob,
            old_log_prob=old_log_prob.detach(),
            advantages=advantages.detach().to(dtype),
            response_mask=response_mask.to(dtype),
            group_var_norm=None if group_var_norm is None else group_var_norm.detach().to(dtype),
            clip_bounds=clip_bounds,
            global_norm=global_norm,
            token_weights=None if token_weights is None else token_weights.to(dtype),
        )
        return self.fn(inputs, self.algorithm)


def compute_policy_loss(
    loss_mode: str,
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    group_var_norm: Tensor | None,
    config: Any,
    clip_bounds: tuple[Tensor, Tensor] | None = None,
    token_weights: Tensor | None = None,
    global_norm: float | None = None,
) -> LossResult:
    """Scalar policy loss (differentiable w.r.t. log_prob) and float metrics, as docs/algorithms.md defines."""
    return PolicyLoss(loss_mode, config)(
        log_prob,
        old_log_prob,
        advantages,
        response_mask,
        group_var_norm,
        clip_bounds,
        token_weights,
        global_norm,
    )
