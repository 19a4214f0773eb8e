"""Advantage estimators and v_q against hand-computed values."""

import math

import pytest
import torch

from etr_dist.algos import ADVANTAGES, compute_advantages

# group 0: rewards [1, 0, 0, 0]   -> mu = 0.25, population sigma = sqrt(0.25 * 0.75) = sqrt(3)/4
# group 1: rewards [1, 1, 1, 1]   -> all equal: A = 0, v = 0
# group 2: rewards [1, 0]         -> mu = 0.5,  sigma = 0.5
REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
SIGMA_0 = math.sqrt(3) / 4


def test_grpo_by_hand():
    adv, var_norm = compute_advantages("grpo", REWARDS, GROUPS)
    expected = (
        [0.75 / (SIGMA_0 + 1e-6)] + [-0.25 / (SIGMA_0 + 1e-6)] * 3 + [0.0] * 4 + [0.5 / (0.5 + 1e-6)] * 1
    )
    expected += [-0.5 / (0.5 + 1e-6)]
    assert adv.tolist() == pytest.approx(expected, rel=1e-6)
    # v_q = 4 p (1 - p): group 0 -> 4 * 0.25 * 0.75 = 0.75, group 1 -> 0, group 2 -> 4 * 0.5 * 0.5 = 1
    assert var_norm.tolist() == pytest.approx([0.75] * 4 + [0.0] * 4 + [1.0] * 2)


def test_dr_grpo_by_hand():
    adv, _ = compute_advantages("dr_grpo", REWARDS, GROUPS)
    # R - mu: group 0 -> 1 - 0.25 = 0.75 and 0 - 0.25 = -0.25; group 2 -> +-0.5
    assert adv.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0, 0.5, -0.5])


def test_rloo_by_hand():
    adv, _ = compute_advantages("rloo", REWARDS, GROUPS)
    # group 0: 1 - mean(0, 0, 0) = 1;  0 - mean(1, 0, 0) = -1/3.  group 2: 1 - 0 = 1, 0 - 1 = -1
    assert adv.tolist() == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3, 0, 0, 0, 0, 1.0, -1.0])


def test_unbiased_std_by_hand():
    adv, var_norm = compute_advantages("grpo", REWARDS, GROUPS, unbiased_std=True)
    # group 0: sum of squared deviations = 0.75^2 + 3 * 0.25^2 = 0.75; / (G - 1) = 0.25 -> sigma = 0.5
    assert adv[0].item() == pytest.approx(0.75 / (0.5 + 1e-6))
    assert adv[1].item() == pytest.approx(-0.25 / (0.5 + 1e-6))
    # group 2: 0.5^2 + 0.5^2 = 0.5 / 1 -> sigma = sqrt(0.5)
    assert adv[8].item() == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-6))
    # v_q stays the population variance ratio so it remains in [0, 1] and equals 4 p (1 - p)
    assert var_norm[0].item() == pytest.approx(0.75)


def test_interleaved_groups_and_reward_range():
    # group 7: rewards [2, 0] on range (0, 2): sigma = 1, sigma_max^2 = (2 - 0)^2 / 4 = 1 -> v = 1
    # group 3: rewards [0.5, 1.5]: sigma = 0.5 -> v = 0.25 / 1 = 0.25
    rewards = torch.tensor([2.0, 0.5, 0.0, 1.5])
    groups = torch.tensor([7, 3, 7, 3])
    adv, var_norm = compute_advantages("dr_grpo", rewards, groups, reward_range=(0.0, 2.0))
    assert adv.tolist() == pytest.approx([1.0, -0.5, -1.0, 0.5])
    assert var_norm.tolist() == pytest.approx([1.0, 0.25, 1.0, 0.25])


@pytest.mark.parametrize("estimator", ADVANTAGES.names())
def test_all_equal_group_is_exactly_zero(estimator):
    # 0.1 * 3 / 3 is not exactly 0.1 in floating point: the zero must not rely on R - mu cancelling
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.3])
    adv, var_norm = compute_advantages(estimator, rewards, torch.tensor([0, 0, 0, 1, 1]))
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert var_norm[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[3].item() > 0 > adv[4].item()


def test_singleton_group_gets_zero_advantage():
    adv, var_norm = compute_advantages("rloo", torch.tensor([1.0]), torch.tensor([0]))
    assert adv.tolist() == [0.0] and var_norm.tolist() == [0.0]


def test_keeps_the_reward_dtype():
    rewards = torch.tensor([1.0, 0.0], dtype=torch.float64)
    adv, var_norm = compute_advantages("grpo", rewards, torch.tensor([0, 0]))
    assert adv.dtype == var_norm.dtype == torch.float64


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(KeyError, match="known"):
        compute_advantages("ppo", REWARDS, GROUPS)
    with pytest.raises(ValueError, match="outside reward_range"):
        compute_advantages("grpo", torch.tensor([1.5, 0.0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"\[N\]"):
        compute_advantages("grpo", REWARDS, GROUPS[:3])
    with pytest.raises(ValueError, match="NaN"):
        compute_advantages("grpo", torch.tensor([float("nan"), 0.0]), torch.tensor([0, 0]))
