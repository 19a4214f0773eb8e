"""ETR v2: elastic bounds by hand, the 0/1 identity, the per-side budget, ablations and reductions."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from etr_dist.algos import compute_policy_loss, elastic_bounds
from etr_dist.config import ConfigError
from etr_dist.config.schema import AlgorithmConfig, EtrConfig

# Group A (p = 1/4): rewards [1, 0, 0, 0], sigma = sqrt(3)/4 -> z = [sqrt(3), -1/sqrt(3) x3], v = 3/4
# Group B (p = 1/2): rewards [1, 1, 0, 0], sigma = 1/2       -> z = [1, 1, -1, -1],            v = 1
# mean z^2 over the 8 non-zero z = (3 + 1 + 4) / 8 = 1 -> s = 1, u = |z|, phi = u (lambda_micro = 1)
# psi = sqrt(v) = [sqrt(3)/2 x4, 1 x4]; w = phi psi = [1.5, 0.5, 0.5, 0.5, 1, 1, 1, 1] = 2 |R - mu|
REWARDS = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
LENGTHS = torch.tensor([4, 2, 2, 2, 3, 1, 2, 2])
SQRT3 = math.sqrt(3.0)
# token-mean budget: W_high = (1.5*4 + 1*3 + 1*1) / 8 = 1.25;  W_low = (0.5*6 + 1*4) / 10 = 0.7
#   eps_high: A0 = 0.28 * 1.5 / 1.25 = 0.336;  B0, B1 = 0.28 * 1 / 1.25 = 0.224
#   eps_low:  A1-3 = 0.2 * 0.5 / 0.7 = 1/7;    B2, B3 = 0.2 * 1 / 0.7 = 2/7
HIGH_ROWS, LOW_ROWS = [0, 4, 5], [1, 2, 3, 6, 7]


def bounds_of(etr=None, lengths=LENGTHS, rewards=REWARDS, groups=GROUPS, **algorithm):
    return elastic_bounds(rewards, groups, lengths, {**algorithm, "etr": etr or {}})


def test_v2_bounds_by_hand_token_mean():
    bounds = bounds_of()
    assert bounds.phi.tolist() == pytest.approx([SQRT3, *[1 / SQRT3] * 3, 1, 1, 1, 1], rel=1e-5)
    assert bounds.psi.tolist() == pytest.approx([SQRT3 / 2] * 4 + [1.0] * 4, rel=1e-5)
    assert bounds.W_high == pytest.approx(1.25, rel=1e-5)
    assert bounds.W_low == pytest.approx(0.7, rel=1e-5)
    assert bounds.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.336, 0.224, 0.224], rel=1e-5)
    assert bounds.eps_low[LOW_ROWS].tolist() == pytest.approx([1 / 7] * 3 + [2 / 7] * 2, rel=1e-5)
    metrics = bounds.metrics
    assert metrics["etr/eps_high_active_mean"] == pytest.approx(0.28, rel=1e-6)
    assert metrics["etr/eps_low_active_mean"] == pytest.approx(0.2, rel=1e-6)
    assert metrics["etr/eps_high_mean"] == pytest.approx((0.336 + 0.224 * 2) / 3, rel=1e-5)
    assert metrics["etr/eps_low_mean"] == pytest.approx((3 / 7 + 4 / 7) / 5, rel=1e-5)
    # torch.quantile interpolates linearly: p90 of [0.224, 0.224, 0.336] = 0.224 + 0.8 * 0.112
    assert metrics["etr/eps_high_p90"] == pytest.approx(0.224 + 0.8 * 0.112, rel=1e-5)
    assert metrics["etr/eps_high_p10"] == pytest.approx(0.224, rel=1e-5)
    assert metrics["etr/phi_mean"] == pytest.approx((2 * SQRT3 + 4) / 8, rel=1e-5)
    assert metrics["etr/psi_mean"] == pytest.approx((4 * SQRT3 / 2 + 4) / 8, rel=1e-5)
    assert metrics["etr/W_high"] == pytest.approx(1.25, rel=1e-5)
    assert metrics["etr/clamped_frac"] == 0.0


def test_v2_bounds_by_hand_seq_mean():
    # weights 1 per response: W_high = (1.5 + 1 + 1) / 3 = 7/6, W_low = (0.5 * 3 + 1 * 2) / 5 = 0.7
    bounds = bounds_of(loss_agg_mode="seq-mean-token-mean")
    assert bounds.W_high == pytest.approx(7 / 6, rel=1e-5)
    assert bounds.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.36, 0.24, 0.24], rel=1e-5)
    assert bounds.eps_low[LOW_ROWS].tolist() == pytest.approx([1 / 7] * 3 + [2 / 7] * 2, rel=1e-5)
    assert bounds.metrics["etr/eps_high_active_mean"] == pytest.approx(0.28, rel=1e-6)
    assert bounds.metrics["etr/eps_high_mean"] == pytest.approx(0.28, rel=1e-6)


def test_clamps_by_hand():
    # eps_max = 0.3 cuts A0's 0.336; token-weighted share of the clamped: 4 of the 18 active tokens
    bounds = bounds_of({"eps_max": 0.3})
    assert bounds.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.3, 0.224, 0.224], rel=1e-5)
    assert bounds.metrics["etr/clamped_frac"] == pytest.approx(4 / 18)
    assert bounds.metrics["etr/eps_high_active_mean"] == pytest.approx((0.3 * 4 + 0.224 * 4) / 8, rel=1e-5)
    # phi_max = 1.5 cuts phi_A0 = sqrt(3): w_A0 = 1.5 * sqrt(3)/2, then the budget renormalises
    capped = bounds_of({"phi_max": 1.5})
    w_a0 = 1.5 * SQRT3 / 2
    w_high = (w_a0 * 4 + 4) / 8
    assert capped.eps_high[0].item() == pytest.approx(0.28 * w_a0 / w_high, rel=1e-5)


def bucket_metrics(metrics):
    return {k.removeprefix("etr/eps_"): v for k, v in metrics.items() if "_pass_" in k}


def test_bounds_by_pass_rate_bucket_by_hand():
    # binary groups, population std: z = sqrt((1-p)/p) for a success, -sqrt(p/(1-p)) for a failure; every group
    # with a gradient has mean z^2 = 1, so s = 1 and phi = |z|; psi = sqrt(4 p (1-p)); w = phi psi
    #   A [1,0,0,0]   p = 1/4: w success 1.5, failures 0.5        -> bucket 0-25
    #   B [1,1,0,0]   p = 1/2: w 1 each                            -> 25-50
    #   C [1,1,1,0]   p = 3/4: w successes 0.5, failure 1.5        -> 50-75
    #   E [1,1,1,1,0] p = 4/5: z 0.5 / -2, psi 0.8: w 0.4 / 1.6   -> 75-100
    #   D [0,0,0,0]   p = 0:   no gradient, in no bucket
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    groups = torch.tensor([0] * 4 + [1] * 4 + [2] * 4 + [3] * 5 + [4] * 4)
    lengths = torch.arange(1, 22)  # ignored: seq-mean weighs every response 1
    bounds = bounds_of(rewards=rewards, groups=groups, lengths=lengths, loss_agg_mode="seq-mean-token-mean")
    # W_high = (1.5 + 2 + 1.5 + 1.6) / 10 = 0.66: eps_high = 0.28 w / 0.66, A's 0.636 clamped to eps_max 0.6
    # W_low = (1.5 + 2 + 1.5 + 1.6) / 7: eps_low = 0.2 w 7 / 6.6
    assert bucket_metrics(bounds.metrics) == pytest.approx(
        {
            "high_active_mean_pass_0-25": 0.6,
            "high_active_mean_pass_25-50": 0.28 / 0.66,
            "high_active_mean_pass_50-75": 0.14 / 0.66,
            "high_active_mean_pass_75-100": 0.112 / 0.66,
            "low_active_mean_pass_0-25": 0.7 / 6.6,
            "low_active_mean_pass_25-50": 1.4 / 6.6,
            "low_active_mean_pass_50-75": 2.1 / 6.6,
            "low_active_mean_pass_75-100": 2.24 / 6.6,
        },
        rel=1e-6,
    )


def test_pass_rate_buckets_weigh_as_the_budget_and_skip_empty_buckets():
    # the fixture: A (p = 1/4) in 0-25, B (p = 1/2) in 25-50; 50-75 and 75-100 hold no group: no key
    metrics = bucket_metrics(bounds_of().metrics)
    assert metrics == pytest.approx(
        {
            "high_active_mean_pass_0-25": 0.336,
            "high_active_mean_pass_25-50": 0.224,
            "low_active_mean_pass_0-25": 1 / 7,
            "low_active_mean_pass_25-50": 2 / 7,
        },
        rel=1e-5,
    )
    # A [1,0,0,0] and G [1,0,0,0,0] (p = 1/5, z 2 / -0.5, psi 0.8: w 1.6 / 0.4) share bucket 0-25; token-weighted
    # over it, without a clamp, the bounds average to the bases exactly (unweighted they would not:
    # eps_high A0 = 0.28 * 1.5 / W_high, G0 = 0.28 * 1.6 / W_high, W_high = (1.5 * 4 + 1.6 * 2) / 6)
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 0])
    groups = torch.tensor([0] * 4 + [1] * 5)
    lengths = torch.tensor([4, 2, 2, 2, 2, 1, 1, 1, 1])
    bounds = bounds_of(rewards=rewards, groups=groups, lengths=lengths)
    w_high = (1.5 * 4 + 1.6 * 2) / 6
    assert bounds.eps_high[[0, 4]].tolist() == pytest.approx([0.28 * 1.5 / w_high, 0.28 * 1.6 / w_high])
    assert bucket_metrics(bounds.metrics) == pytest.approx(
        {"high_active_mean_pass_0-25": 0.28, "low_active_mean_pass_0-25": 0.2}, rel=1e-6
    )


def test_pass_rate_scales_by_the_reward_range():
    # rewards in [-1, 1]: [1, -1, -1, -1] has mean -0.5, pass rate 1/4 (bucket 0-25), as [1, 0, 0, 0] in [0, 1]
    bounds = elastic_bounds(REWARDS * 2 - 1, GROUPS, LENGTHS, {"etr": {}}, reward_range=(-1.0, 1.0))
    assert bucket_metrics(bounds.metrics) == pytest.approx(bucket_metrics(bounds_of().metrics), rel=1e-5)


def test_side_upper_and_budget_absolute():
    upper = bounds_of({"side": "upper"})
    assert upper.eps_low.tolist() == [pytest.approx(0.2)] * 8
    assert upper.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.336, 0.224, 0.224], rel=1e-5)
    absolute = bounds_of({"budget": "absolute"})  # b_i = w_i
    assert absolute.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.42, 0.28, 0.28], rel=1e-5)
    assert absolute.eps_low[LOW_ROWS].tolist() == pytest.approx([0.1] * 3 + [0.2] * 2, rel=1e-5)
    assert absolute.metrics["etr/eps_high_active_mean"] == pytest.approx((0.42 * 4 + 0.28 * 4) / 8, rel=1e-5)


def test_micro_and_macro_switches():
    macro_only = bounds_of({"micro": False})  # w = psi: A sqrt(3)/2 (len 4), B 1 (len 3 + 1)
    w_high = (SQRT3 / 2 * 4 + 4) / 8
    assert macro_only.eps_high[0].item() == pytest.approx(0.28 * (SQRT3 / 2) / w_high, rel=1e-5)
    assert macro_only.phi.tolist() == [1.0] * 8
    micro_only = bounds_of({"macro": False})  # w = phi: A0 sqrt(3), B0 1
    w_high = (SQRT3 * 4 + 4) / 8
    assert micro_only.eps_high[4].item() == pytest.approx(0.28 / w_high, rel=1e-5)
    off = bounds_of({"micro": False, "macro": False})
    assert off.eps_high[HIGH_ROWS].tolist() == pytest.approx([0.28] * 3)
    assert off.eps_low[LOW_ROWS].tolist() == pytest.approx([0.2] * 5)


def random_binary_step(seed, num_groups=6, group_size=8):
    gen = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(num_groups * group_size, generator=gen) < torch.rand(1, generator=gen)).float()
    rewards[::group_size], rewards[1::group_size] = 1.0, 0.0  # every group has variance
    groups = torch.arange(num_groups).repeat_interleave(group_size)
    lengths = torch.randint(1, 30, (num_groups * group_size,), generator=gen)
    return rewards, groups, lengths


WIDE = {"phi_min": 0.0, "phi_max": 100.0, "eps_min": 0.0, "eps_max": 0.99}


@pytest.mark.parametrize("adv_estimator", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("unbiased_std", [False, True])
def test_binary_identity_w_is_twice_the_distance_to_the_pass_rate(adv_estimator, unbiased_std):
    rewards, groups, lengths = random_binary_step(seed=3)
    config = {"adv_estimator": adv_estimator, "unbiased_std": unbiased_std, "etr": WIDE}
    bounds = elastic_bounds(rewards, groups, lengths, config)
    pass_rate = torch.stack([rewards[groups == g].mean() for g in groups])
    torch.testing.assert_close(bounds.phi * bounds.psi, 2 * (rewards - pass_rate).abs(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_side_budget_means_equal_the_bases_without_clamps(agg, seed):
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.rand(40, generator=gen)  # real-valued rewards in [0, 1]
    groups = torch.arange(5).repeat_interleave(8)
    lengths = torch.randint(1, 50, (40,), generator=gen)
    metrics = elastic_bounds(rewards, groups, lengths, {"loss_agg_mode": agg, "etr": WIDE}).metrics
    assert metrics["etr/eps_high_active_mean"] == pytest.approx(0.28, rel=1e-6)
    assert metrics["etr/eps_low_active_mean"] == pytest.approx(0.2, rel=1e-6)
    assert metrics["etr/clamped_frac"] == 0.0


def test_rarest_success_on_a_hard_prompt_gets_more_room_than_clip_higher():
    # one success in 8 next to a p = 1/2 group: the v1 defect gave the rare success less than 0.28
    rewards = torch.tensor([1.0] + [0.0] * 7 + [1.0] * 4 + [0.0] * 4)
    groups = torch.arange(2).repeat_interleave(8)
    bounds = elastic_bounds(rewards, groups, torch.full((16,), 10), {})
    assert bounds.eps_high[0] > 0.28 > bounds.eps_high[8]


def test_all_equal_groups_carry_no_budget():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    bounds = elastic_bounds(rewards, groups, torch.tensor([2, 3, 4, 5, 6, 7]), {})
    # group 1 is all ones (z = 0): base bounds, not in W; group 0 alone holds each side's budget
    assert bounds.eps_high[3:].tolist() == pytest.approx([0.28] * 3)
    assert bounds.metrics["etr/eps_high_active_mean"] == pytest.approx(0.28, rel=1e-6)
    assert bounds.eps_low[2].item() == pytest.approx(0.2, rel=1e-5)  # the only z < 0 response


def test_a_step_without_variance_reports_the_bases():
    bounds = elastic_bounds(torch.ones(4), torch.tensor([0, 0, 1, 1]), torch.ones(4, dtype=torch.long), {})
    assert bounds.W_high == bounds.W_low == 1.0
    assert bounds.metrics["etr/eps_high_mean"] == bounds.metrics["etr/eps_high_active_mean"] == 0.28
    assert bounds.metrics["etr/eps_low_p90"] == 0.2


def test_zero_lambdas_give_the_bases_exactly():
    rewards, groups, lengths = random_binary_step(seed=5)
    bounds = elastic_bounds(rewards, groups, lengths, {"etr": {"lambda_micro": 0.0, "lambda_macro": 0.0}})
    assert torch.all(bounds.eps_high == 0.28) and torch.all(bounds.eps_low == 0.2)


def test_etr_loss_uses_the_given_bounds_by_hand():
    # resp 0: A = +2, eps_high = 0.42: ratios 1.3 -> -2.6 | 1.5 -> -2 * 1.42 = -2.84 (upper binds)
    # resp 1: A = -0.5, eps_low = 0.075 (1 - eps = 0.925): 0.9 -> 0.5 * 0.925 = 0.4625 (lower binds) | 0.95 -> 0.475
    log_prob = torch.tensor([[1.3, 1.5], [0.9, 0.95]]).log().requires_grad_()
    adv, mask = torch.tensor([2.0, -0.5]), torch.ones(2, 2)
    bounds = (torch.tensor([0.3, 0.075]), torch.tensor([0.42, 0.105]))
    loss, metrics = compute_policy_loss(
        "etr", log_prob, torch.zeros(2, 2), adv, mask, None, {}, clip_bounds=bounds
    )
    assert loss.item() == pytest.approx((-2.6 - 2.84 + 0.4625 + 0.475) / 4)
    assert metrics["actor/pg_clipfrac_upper"] == metrics["actor/pg_clipfrac_lower"] == pytest.approx(0.25)
    assert not any(name.startswith("etr/") for name in metrics)  # etr/* come from the step batch
    loss.backward()
    assert log_prob.grad.tolist() == [
        pytest.approx([-2 * 1.3 / 4, 0.0]),
        pytest.approx([0.0, 0.5 * 0.95 / 4]),
    ]


def test_etr_without_bounds_fails_clearly():
    log_prob = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="clip_bounds"):
        compute_policy_loss("etr", log_prob, log_prob, torch.ones(1), torch.ones(1, 2), None, {})


@pytest.mark.parametrize(
    ("etr", "key"),
    [
        ({"lambda_micro": -0.1}, "algorithm.etr.lambda_micro"),
        ({"lambda_macro": -1.0}, "algorithm.etr.lambda_macro"),
        ({"phi_min": -0.5}, "algorithm.etr.phi_min"),
        ({"eps_min": -0.01}, "algorithm.etr.eps_min"),
        ({"phi_min": 2.0, "phi_max": 1.0}, "algorithm.etr.phi_max"),
        ({"eps_min": 0.5, "eps_max": 0.4}, "algorithm.etr.eps_max"),
        ({"eps_max": 1.0}, "algorithm.etr.eps_max"),
        ({"eps_low_base": 1.0}, "algorithm.etr.eps_low_base"),
        ({"eps_high_base": 0.0}, "algorithm.etr.eps_high_base"),
        ({"budget": "some"}, "algorithm.etr.budget"),
        ({"side": "lower"}, "algorithm.etr.side"),
    ],
)
def test_invalid_knobs_fail_naming_the_key(etr, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        bounds_of(etr)


def test_eps_max_above_one_is_fine_when_only_the_upper_side_is_elastic():
    bounds_of({"eps_max": 1.5, "side": "upper"})


def test_clip_ratio_keys_conflict_with_etr():
    with pytest.raises(ConfigError, match="clip_ratio_low.*clip_ratio_high"):
        bounds_of(name="etr", clip_ratio_high=0.3)


def test_config_forms_give_the_same_bounds():
    as_dict = {"loss_agg_mode": "token-mean", "etr": {"lambda_micro": 0.5}}
    typed = AlgorithmConfig(etr=EtrConfig(lambda_micro=0.5))
    forms = [as_dict, OmegaConf.create(as_dict), typed, OmegaConf.structured(typed)]
    results = [elastic_bounds(REWARDS, GROUPS, LENGTHS, form).eps_high for form in forms]
    assert all(torch.equal(result, results[0]) for result in results)
