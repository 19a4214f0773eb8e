"""Invariants of the math layer on random inputs (hypothesis)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from etr_dist.algos import compute_advantages, compute_policy_loss, elastic_bounds
from etr_dist.config.schema import AlgorithmConfig, EtrConfig

FAST = settings(max_examples=40, deadline=None)
unit = st.floats(0.0, 1.0)


@st.composite
def policy_batches(draw):
    """log_prob, old_log_prob [N, T], advantages [N] (some zero), mask [N, T], v_q [N], float64."""
    n, t = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    log_prob = draw(arrays(np.float64, (n, t), elements=st.floats(-6.0, 0.0)))
    shift = draw(arrays(np.float64, (n, t), elements=st.floats(-1.5, 1.5)))
    adv = draw(arrays(np.float64, n, elements=st.one_of(st.just(0.0), st.floats(-4.0, 4.0))))
    mask = draw(arrays(np.bool_, (n, t)))
    var_norm = draw(arrays(np.float64, n, elements=unit))
    return tuple(torch.from_numpy(a) for a in (log_prob, log_prob + shift, adv, mask, var_norm))


etr_configs = st.builds(
    EtrConfig,
    lambda_micro=st.floats(0.0, 2.0),
    lambda_macro=st.floats(0.0, 2.0),
    phi_min=st.floats(0.1, 1.0),
    phi_max=st.floats(1.0, 4.0),
    eps_min=st.floats(0.01, 0.1),
    eps_max=st.floats(0.3, 0.9),
    eps_low_base=st.floats(0.1, 0.3),
    eps_high_base=st.floats(0.1, 0.4),
    micro=st.booleans(),
    macro=st.booleans(),
    budget=st.sampled_from(["preserve", "absolute"]),
    side=st.sampled_from(["both", "upper"]),
)


@st.composite
def step_outcomes(draw):
    """rewards [N] in [0, 1] (0/1 or real), group ids [N], response lengths [N]."""
    n = draw(st.integers(1, 24))
    rewards = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0]) | unit))
    groups = torch.arange(n) % draw(st.integers(1, 5))
    lengths = draw(arrays(np.int64, n, elements=st.integers(1, 40)))
    return torch.from_numpy(rewards), groups, torch.from_numpy(lengths)


@FAST
@given(outcomes=step_outcomes(), etr=etr_configs, agg=st.sampled_from(["token-mean", "seq-mean-token-sum"]))
def test_elastic_bounds_stay_within_limits(outcomes, etr, agg):
    rewards, groups, lengths = outcomes
    bounds = elastic_bounds(rewards, groups, lengths, AlgorithmConfig(loss_agg_mode=agg, etr=etr))
    assert torch.all((bounds.eps_high >= etr.eps_min) & (bounds.eps_high <= etr.eps_max))
    if etr.side == "upper":
        assert torch.all(bounds.eps_low == etr.eps_low_base)
    else:
        assert torch.all((bounds.eps_low >= etr.eps_min) & (bounds.eps_low <= etr.eps_max))
    assert torch.all((bounds.phi >= 0) & (bounds.phi <= etr.phi_max))
    assert torch.all((bounds.psi >= 0) & (bounds.psi <= 1))
    assert all(np.isfinite(value) for value in bounds.metrics.values())
    assert 0.0 <= bounds.metrics["etr/clamped_frac"] <= 1.0


@FAST
@given(
    batch=policy_batches(),
    loss_mode=st.sampled_from(["grpo", "clip_higher", "gspo", "etr", "cispo", "sapo", "dppo_tv", "bandpo"]),
    agg=st.sampled_from(
        ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
    ),
    dual_clip=st.sampled_from([None, 3.0]),
)
def test_loss_is_finite_and_clip_fractions_are_fractions(batch, loss_mode, agg, dual_clip):
    log_prob, old, adv, mask, var_norm = batch
    config = {"loss_agg_mode": agg, "clip_ratio_c": dual_clip}
    bounds = (torch.full_like(adv, 0.2), torch.full_like(adv, 0.28))
    loss, metrics = compute_policy_loss(loss_mode, log_prob, old, adv, mask, var_norm, config, bounds)
    assert torch.isfinite(loss)
    fractions = [metrics[f"actor/pg_clipfrac{side}"] for side in ("", "_upper", "_lower", "_dual")]
    assert all(0.0 <= fraction <= 1.0 for fraction in fractions)
    # a token binds at most one: the upper bound needs A > 0, the lower A < 0 and r < 1, the dual A < 0, r > c
    assert fractions[0] == pytest.approx(fractions[1] + fractions[2] + fractions[3])


@FAST
@given(batch=policy_batches(), symmetric=st.booleans())
def test_etr_with_zero_lambdas_is_the_static_baseline(batch, symmetric):
    log_prob, old, adv, mask, var_norm = batch
    etr = {"lambda_micro": 0.0, "lambda_macro": 0.0}
    etr |= {"eps_low_base": 0.2, "eps_high_base": 0.2} if symmetric else {}
    baseline = "grpo" if symmetric else "clip_higher"
    rewards = (adv > 0).double()  # any outcomes: with zero lambdas every bound is the base
    bounds = elastic_bounds(rewards, torch.arange(len(adv)) % 2, mask.sum(-1), {"etr": etr})
    clip_bounds = (bounds.eps_low, bounds.eps_high)
    etr_loss, etr_metrics = compute_policy_loss(
        "etr", log_prob, old, adv, mask, var_norm, {"etr": etr}, clip_bounds
    )
    base_loss, base_metrics = compute_policy_loss(baseline, log_prob, old, adv, mask, var_norm, {})
    assert torch.equal(etr_loss, base_loss)
    assert {k: v for k, v in etr_metrics.items() if k.startswith("actor/")} == base_metrics


@FAST
@given(
    rewards=arrays(np.float64, st.integers(1, 24), elements=st.sampled_from([0.0, 1.0]) | unit),
    num_groups=st.integers(1, 5),
    estimator=st.sampled_from(["grpo", "dr_grpo", "rloo"]),
    unbiased_std=st.booleans(),
)
def test_advantages_are_zero_sum_per_group_and_v_in_unit_interval(
    rewards, num_groups, estimator, unbiased_std
):
    rewards = torch.from_numpy(rewards)
    group_ids = torch.arange(len(rewards)) % num_groups
    adv, var_norm = compute_advantages(estimator, rewards, group_ids, unbiased_std=unbiased_std)
    for group in group_ids.unique():
        members = group_ids == group
        assert adv[members].sum().item() == pytest.approx(0.0, abs=1e-9)
        if torch.all(rewards[members] == rewards[members][0]):
            assert torch.all(adv[members] == 0)
    assert torch.all((var_norm >= 0) & (var_norm <= 1))
