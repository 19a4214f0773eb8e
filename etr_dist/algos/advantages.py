"""Group-relative advantage estimators (GRPO, Dr.GRPO, RLOO) and the normalised group variance v_q."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from etr_dist.algos.registries import ADVANTAGES, register_advantage

GRPO_STD_EPS = 1e-6


@dataclass(frozen=True)
class GroupStats:
    """Statistics of each response's group, broadcast to the response (every field is [N])."""

    mean: Tensor  # mu_q
    std: Tensor  # sigma_q (population, or unbiased when asked)
    population_var: Tensor  # sigma_q^2 with 1/G, for v_q
    size: Tensor  # G
    all_equal: Tensor  # bool: every reward of the group is the same


def group_stats(rewards: Tensor, group_ids: Tensor, unbiased_std: bool = False) -> GroupStats:
    """Per-group mean/std/size, computed with scatter-adds so groups may be interleaved and of any size."""
    _, group = torch.unique(group_ids, return_inverse=True)  # [N] -> 0..Q-1
    num_groups = int(group.max()) + 1
    zeros = rewards.new_zeros(num_groups)
    size = zeros.index_add(0, group, torch.ones_like(rewards))  # [Q]
    mean = zeros.index_add(0, group, rewards) / size  # [Q]
    squared_dev = zeros.index_add(0, group, (rewards - mean[group]) ** 2)  # [Q]
    population_var = squared_dev / size
    sample_var = squared_dev / (size - 1).clamp(min=1)
    highest = zeros.scatter_reduce(0, group, rewards, "amax", include_self=False)
    lowest = zeros.scatter_reduce(0, group, rewards, "amin", include_self=False)
    std = (sample_var if unbiased_std else population_var).sqrt()
    return GroupStats(
        mean=mean[group],
        std=std[group],
        population_var=population_var[group],
        size=size[group],
        all_equal=(highest == lowest)[group],
    )


@register_advantage("grpo")
def grpo_advantage(rewards: Tensor, stats: GroupStats) -> Tensor:
    """A_i = (R_i - mu_q) / (sigma_q + 1e-6)"""
    return (rewards - stats.mean) / (stats.std + GRPO_STD_EPS)


@register_advantage("dr_grpo")
def dr_grpo_advantage(rewards: Tensor, stats: GroupStats) -> Tensor:
    """A_i = R_i - mu_q   (Dr.GRPO drops the std normalisation)"""
    return rewards - stats.mean


@register_advantage("rloo")
def rloo_advantage(rewards: Tensor, stats: GroupStats) -> Tensor:
    """A_i = R_i - mean_{j != i} R_j = R_i - (G mu_q - R_i) / (G - 1)"""
    leave_one_out_mean = (stats.size * stats.mean - rewards) / (stats.size - 1).clamp(min=1)
    return rewards - leave_one_out_mean


def check_reward_inputs(rewards: Tensor, group_ids: Tensor, reward_range: tuple[float, float]) -> None:
    """[N] rewards and group ids, finite, inside reward_range (else v_q would leave [0, 1])."""
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must both be [N]; got {tuple(rewards.shape)} and {tuple(group_ids.shape)}"
        )
    if rewards.numel() == 0:
        raise ValueError("rewards is empty: there is no group to compute advantages for")
    low, high = reward_range
    if not high > low:
        raise ValueError(f"reward_range must be (reward_min, reward_max) with max > min, got {reward_range}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    if rewards.min() < low or rewards.max() > high:
        span = (rewards.min().item(), rewards.max().item())
        raise ValueError(f"rewards span {span}, outside reward_range {reward_range}")


def compute_advantages(
    estimator: str,
    rewards: Tensor,
    group_ids: Tensor,
    reward_range: tuple[float, float] = (0.0, 1.0),
    unbiased_std: bool = False,
) -> tuple[Tensor, Tensor]:
    """Advantages [N] and v_q [N] in [0, 1]; a group whose rewards are all equal gets exactly 0 advantage."""
    estimate = ADVANTAGES.get(estimator)
    check_reward_inputs(rewards, group_ids, reward_range)
    out_dtype = rewards.dtype if rewards.is_floating_point() else torch.get_default_dtype()
    rewards = rewards.to(torch.float64)
    stats = group_stats(rewards, group_ids, unbiased_std)
    advantages = estimate(rewards, stats).masked_fill(stats.all_equal, 0.0)  # [N]
    reward_min, reward_max = reward_range
    sigma_max_sq = (reward_max - reward_min) ** 2 / 4
    group_var_norm = (stats.population_var / sigma_max_sq).clamp(0.0, 1.0)  # v_q [N]
    return advantages.to(out_dtype), group_var_norm.to(out_dtype)
