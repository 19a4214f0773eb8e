"""The statistics against hand-computed values (the arithmetic is in the comments); t quantiles from tables."""

import math

import numpy as np
import pytest

from etr_dist.evaluation.stats import (
    compare_arms,
    markdown_table,
    mdd_binomial,
    mdd_paired,
    paired_bootstrap,
    paired_difference,
    t_cdf,
    t_interval,
    t_quantile,
)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706205),
        (0.975, 2, 4.302653),
        (0.975, 4, 2.776445),
        (0.975, 9, 2.262157),
        (0.975, 30, 2.042272),
        (0.8, 4, 0.940965),
        (0.8, 2, 1.060660),  # df=2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)) = 0.8 -> t^2 = 1.125
        (0.025, 4, -2.776445),
        (0.975, math.inf, 1.959964),
    ],
)
def test_t_quantiles_match_the_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-6)


def test_t_cdf_closed_forms():
    assert t_cdf(0.0, 5) == pytest.approx(0.5)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(2.0, 2) == pytest.approx(0.5 + 1 / math.sqrt(6))  # 1/2 + 2 / (2 sqrt(6))
    assert t_cdf(-2.0, 2) == pytest.approx(0.5 - 1 / math.sqrt(6))


def test_t_interval_by_hand():
    # mean 0.32; deviations -.02 .02 0 .04 -.04, squares sum 0.004, var 0.004/4 = 0.001, sd 0.0316228;
    # se = sd/sqrt(5) = 0.0141421; half = t(0.975, 4) 2.776445 * 0.0141421 = 0.0392648
    result = t_interval([0.30, 0.34, 0.32, 0.36, 0.28])
    assert (result.estimate, result.n) == (pytest.approx(0.32), 5)
    assert result.sd == pytest.approx(math.sqrt(0.001))
    assert (result.low, result.high) == (pytest.approx(0.2807352), pytest.approx(0.3592648))


def test_one_seed_has_no_interval():
    result = t_interval([0.4])
    assert result.estimate == 0.4 and math.isnan(result.low) and math.isnan(result.high)


def test_paired_difference_pairs_by_seed():
    # diffs by seed: .05 .02 .08 (seed 3 has no pair); mean .05, deviations 0 -.03 .03, var .0018/2 = .0009,
    # sd .03, se .03/sqrt(3) = .0173205, half = t(0.975, 2) 4.302653 * .0173205 = .0745241
    arm = {0: 0.40, 1: 0.38, 2: 0.45}
    baseline = {0: 0.35, 1: 0.36, 2: 0.37, 3: 0.90}
    result = paired_difference(arm, baseline)
    assert (result.estimate, result.n, result.sd) == (pytest.approx(0.05), 3, pytest.approx(0.03))
    assert (result.low, result.high) == (
        pytest.approx(-0.0245241, abs=1e-6),
        pytest.approx(0.1245241, abs=1e-6),
    )
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference({0: 0.1}, {1: 0.2})


def test_bootstrap_over_items_by_hand():
    # one seed, per-item differences (1, 0): a resample of 2 items has mean 0, 1/2, 1 with chance 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% points are 0 and 1; its sd is sqrt(0.25 / 2) = 0.353553
    result = paired_bootstrap(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0]]), resamples=20000)
    assert (result.estimate, result.low, result.high) == (0.5, 0.0, 1.0)
    assert result.sd == pytest.approx(math.sqrt(0.125), abs=0.01)


def test_bootstrap_pairs_items_and_includes_seed_noise():
    rng = np.random.default_rng(1)
    baseline = rng.random((3, 50))
    shifted = paired_bootstrap(baseline + 0.1, baseline)  # same items and seeds: only the shift is left
    assert (shifted.estimate, shifted.low, shifted.high) == (
        pytest.approx(0.1),
        pytest.approx(0.1),
        pytest.approx(0.1),
    )
    # items equal within a seed: only seeds vary; 2 seeds (1, 0) resample like the items above
    seeds = paired_bootstrap(np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros((2, 2)))
    assert (seeds.low, seeds.high) == (0.0, 1.0)
    again = paired_bootstrap(baseline + 0.1, baseline[::-1], seed=7)
    assert again == paired_bootstrap(baseline + 0.1, baseline[::-1], seed=7)  # a fixed RNG seed


def test_bootstrap_shape_errors():
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="as many seeds"):
        paired_bootstrap(np.zeros((2, 3)), np.zeros((3, 3)))
    assert paired_bootstrap(np.ones((2, 3)), np.zeros((3, 3)), pair_seeds=False).estimate == 1.0


def test_minimum_detectable_differences_by_hand():
    # (t(0.975, 4) 2.776445 + t(0.8, 4) 0.940965) * 0.02 / sqrt(5) = 3.717410 * 0.0089443 = 0.0332495
    assert mdd_paired(0.02, 5) == pytest.approx(0.0332495, abs=1e-6)
    assert mdd_paired(0.02, 1) == math.inf
    # (z(0.975) 1.959964 + z(0.8) 0.841621) * sqrt(2 * 0.5 * 0.5 / 500) = 2.801585 * 0.0316228 = 0.0885939
    assert mdd_binomial(0.5, 500) == pytest.approx(0.0885939, abs=1e-6)
    # 1319 GSM8K items at p = 0.2: 2.801585 * sqrt(0.32 / 1319) = 2.801585 * 0.0155758 = 0.0436369
    assert mdd_binomial(0.2, 1319) == pytest.approx(0.0436369, abs=1e-6)


def test_compare_arms_table_by_hand():
    # grpo: mean .36, sd .01, half 4.302653 * .01 / sqrt(3) = .0248414; etr - grpo: as in the paired test;
    # mdd = (4.302653 + t(0.8, 2) 1.060660) * .03 / sqrt(3) = 5.363313 * .0173205 = .0928953;
    # etr alone: mean .41, squares .0001 + .0009 + .0016 = .0026, var .0013, se .0208167, half .0895670
    rows = compare_arms({"grpo": {0: 0.35, 1: 0.36, 2: 0.37}, "etr": {0: 0.40, 1: 0.38, 2: 0.45}})
    grpo, etr = rows
    assert grpo == {
        "arm": "grpo",
        "seeds": 3,
        "mean": pytest.approx(0.36),
        "low": pytest.approx(0.3351586),
        "high": pytest.approx(0.3848414),
    }
    assert etr["diff"] == pytest.approx(0.05) and etr["pairs"] == 3
    assert (etr["diff_low"], etr["diff_high"]) == (
        pytest.approx(-0.0245241, abs=1e-6),
        pytest.approx(0.1245241, abs=1e-6),
    )
    assert etr["mdd"] == pytest.approx(0.0928953, abs=1e-6)
    table = markdown_table(rows)
    assert "| grpo | 3 | 0.360 [0.335, 0.385] | - | - |" in table
    assert "| etr | 3 | 0.410 [0.320, 0.500] | +0.050 [-0.025, +0.125] | 0.093 |" in table
    with pytest.raises(ValueError, match="no baseline arm"):
        compare_arms({"etr": {0: 0.4}})
