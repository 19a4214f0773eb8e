"""The four off-policy correction modes and their metrics against numbers computed by hand."""

import math

import pytest
import torch

from etr_dist.algos import ROLLOUT_CORRECTIONS, compute_policy_loss, rollout_correction_weights
from etr_dist.config.schema import RolloutCorrectionConfig

# log w = logp_old - logp_rollout:  row 0 = [0.5, 0, 1.0, pad],  row 1 = [-1.0, -0.2, pad, pad]
OLD = torch.tensor([[-1.0, -0.5, -0.5, -3.0], [-2.0, -0.7, 0.0, 0.0]])
ROLLOUT = torch.tensor([[-1.5, -0.5, -1.5, -0.1], [-1.0, -0.5, -9.0, -9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
E = math.exp
# per token w = [e^0.5 = 1.6487, 1, e^1 = 2.7183], [e^-1 = 0.3679, e^-0.2 = 0.8187]
# per sequence: row 0 exp(1.5 / 3) = e^0.5 = 1.6487, row 1 exp(-1.2 / 2) = e^-0.6 = 0.5488


def weights_of(mode, **thresholds):
    weights, metrics = rollout_correction_weights(
        OLD, ROLLOUT, MASK, RolloutCorrectionConfig(mode=mode, **thresholds)
    )
    return weights, metrics


def test_the_registry_holds_the_five_modes():
    assert ROLLOUT_CORRECTIONS.names() == [
        "none",
        "sequence_mask",
        "sequence_truncate",
        "token_mask",
        "token_truncate",
    ]


def test_token_truncate_is_tis():
    weights, metrics = weights_of("token_truncate")  # c_high = 2: e^1 is capped
    expected = [[E(0.5), 1.0, 2.0, 0.0], [E(-1.0), E(-0.2), 0.0, 0.0]]
    assert weights.tolist() == [pytest.approx(row) for row in expected]
    assert metrics["rollout_corr/weight_mean"] == pytest.approx((E(0.5) + 1 + 2 + E(-1) + E(-0.2)) / 5)
    assert metrics["rollout_corr/masked_frac"] == 0.0
    assert metrics["rollout_corr/log_ratio_abs_mean"] == pytest.approx((0.5 + 0 + 1 + 1 + 0.2) / 5)


def test_token_mask_is_icepop():
    # [c_low, c_high] = [0.5, 2]: e^1 = 2.72 and e^-1 = 0.37 are dropped, the others keep their weight
    weights, metrics = weights_of("token_mask")
    expected = [[E(0.5), 1.0, 0.0, 0.0], [0.0, E(-0.2), 0.0, 0.0]]
    assert weights.tolist() == [pytest.approx(row) for row in expected]
    assert metrics["rollout_corr/masked_frac"] == pytest.approx(2 / 5)
    assert metrics["rollout_corr/weight_mean"] == pytest.approx((E(0.5) + 1 + E(-0.2)) / 5)


def test_sequence_modes_use_the_geometric_mean():
    # truncate at 1.5: row 0's e^0.5 = 1.65 -> 1.5 on each of its tokens; row 1 keeps e^-0.6
    weights, metrics = weights_of("sequence_truncate", c_high=1.5)
    assert weights.tolist() == [pytest.approx([1.5, 1.5, 1.5, 0.0]), pytest.approx([E(-0.6)] * 2 + [0, 0])]
    assert metrics["rollout_corr/masked_frac"] == 0.0
    # mask outside [0.6, 2]: row 1 (0.55) is dropped whole
    weights, metrics = weights_of("sequence_mask", c_low=0.6)
    assert weights.tolist() == [pytest.approx([E(0.5)] * 3 + [0.0]), [0.0] * 4]
    assert metrics["rollout_corr/masked_frac"] == pytest.approx(2 / 5)


def test_none_gives_no_weights_but_still_measures_the_gap():
    weights, metrics = weights_of("none")
    assert weights is None
    assert metrics == {
        "rollout_corr/weight_mean": 1.0,
        "rollout_corr/masked_frac": 0.0,
        "rollout_corr/log_ratio_abs_mean": pytest.approx(2.7 / 5),
    }


def test_a_masked_token_stays_in_the_denominator():
    # on-policy ratios, A = +1: grpo's L = -1 on each of the 5 tokens. token_mask keeps w = [e^0.5, 1, e^-0.2]
    # and the loss divides by all 5 response tokens, not by the 3 kept ones
    weights, _ = weights_of("token_mask")
    loss, _ = compute_policy_loss("grpo", OLD, OLD, torch.ones(2), MASK, None, {}, token_weights=weights)
    assert loss.item() == pytest.approx(-(E(0.5) + 1 + E(-0.2)) / 5)


def test_unknown_mode_names_the_known_ones():
    with pytest.raises(KeyError, match="token_truncate"):
        weights_of("tis")
