"""GRPO, clip-higher and GSPO losses, dual clip, token weights and config handling, against hand values."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from etr_dist.algos import compute_policy_loss
from etr_dist.config import compose_config
from etr_dist.config.schema import AlgorithmConfig

PG_METRICS = {
    "actor/pg_loss",
    "actor/pg_clipfrac",
    "actor/pg_clipfrac_upper",
    "actor/pg_clipfrac_lower",
    "actor/pg_clipfrac_dual",
    "actor/ppo_kl",
}

# Response 0: A = +1, ratios [0.9, 1.1, 1.5], 3 tokens.
# Response 1: A = -1, ratios [0.5, 1.1], 2 tokens + padding.
RATIOS = torch.tensor([[0.9, 1.1, 1.5], [0.5, 1.1, 1.0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
ADV = torch.tensor([1.0, -1.0])
NO_DUAL = {"clip_ratio_c": None}


def loss_of(mode, config, ratios=RATIOS, adv=ADV, mask=MASK, **kwargs):
    log_prob = ratios.log().requires_grad_()
    loss, metrics = compute_policy_loss(
        mode, log_prob, torch.zeros_like(log_prob), adv, mask, None, config, **kwargs
    )
    return loss, metrics, log_prob


# grpo, eps 0.2/0.2: L = -min(r A, clip(r, 0.8, 1.2) A)
#   resp 0 (A = +1): 0.9 -> -0.9 | 1.1 -> -1.1 | 1.5 -> -min(1.5, 1.2) = -1.2 (upper bound binds)   sum -3.2
#   resp 1 (A = -1): 0.5 -> max(0.5, 0.8) = 0.8 (lower bound binds) | 1.1 -> 1.1                    sum  1.9
@pytest.mark.parametrize(
    ("agg", "expected"),
    [
        ("token-mean", (-3.2 + 1.9) / 5),  # 5 response tokens
        ("seq-mean-token-mean", (-3.2 / 3 + 1.9 / 2) / 2),  # mean of per-response means
        ("seq-mean-token-sum", (-3.2 + 1.9) / 2),  # mean of per-response sums
        ("seq-mean-token-sum-norm", (-3.2 + 1.9) / (2 * 3)),  # 2 responses * max length T = 3
    ],
)
def test_grpo_by_hand_for_every_aggregation(agg, expected):
    loss, metrics, _ = loss_of("grpo", {**NO_DUAL, "loss_agg_mode": agg})
    assert loss.item() == pytest.approx(expected)
    assert metrics["actor/pg_loss"] == pytest.approx(expected)


def test_grpo_metrics_by_hand():
    _, metrics, _ = loss_of("grpo", {})
    assert set(metrics) == PG_METRICS
    assert metrics["actor/pg_clipfrac"] == pytest.approx(2 / 5)  # 1.5 (upper) and 0.5 (lower) of 5 tokens
    assert metrics["actor/pg_clipfrac_upper"] == pytest.approx(1 / 5)
    assert metrics["actor/pg_clipfrac_lower"] == pytest.approx(1 / 5)
    # ppo_kl = mean over response tokens of (logp_old - logp_new) = -mean(log r); padding excluded
    expected_kl = -(math.log(0.9) + math.log(1.1) + math.log(1.5) + math.log(0.5) + math.log(1.1)) / 5
    assert metrics["actor/ppo_kl"] == pytest.approx(expected_kl)


def test_grpo_gradient_by_hand():
    loss, _, log_prob = loss_of("grpo", {})
    loss.backward()
    # token-mean: dL/dlogp = -A r / 5 where unclipped, 0 where the bound binds or on padding
    expected = [[-0.9 / 5, -1.1 / 5, 0.0], [0.0, 1.1 / 5, 0.0]]
    assert log_prob.grad.tolist() == [pytest.approx(row) for row in expected]


def test_clip_higher_by_hand():
    # eps 0.2/0.28: only 1.5 changes: -min(1.5, 1.28) = -1.28 -> sum = -0.9 - 1.1 - 1.28 + 0.8 + 1.1 = -1.38
    loss, metrics, _ = loss_of("clip_higher", {})
    assert loss.item() == pytest.approx(-1.38 / 5)
    assert set(metrics) == PG_METRICS


def test_grpo_defaults_are_symmetric_and_config_bounds_win():
    assert loss_of("grpo", {})[0].item() == pytest.approx(-1.3 / 5)  # 0.2/0.2 when the keys are missing
    assert loss_of("grpo", {"clip_ratio_high": 0.28})[0].item() == pytest.approx(-1.38 / 5)
    # clip_higher with 0.2/0.2 set explicitly is grpo
    assert loss_of("clip_higher", {"clip_ratio_high": 0.2})[0].item() == pytest.approx(-1.3 / 5)


def test_dual_clip_by_hand():
    # resp 0: A = -2, r = 5: -min(-10, -2 * 1.2) = 10 -> dual clip: min(10, 3 * 2) = 6, no gradient
    # resp 1: A = +2, r = 5: -min(10, 2 * 1.2) = -2.4 (dual clip only acts on A < 0)
    ratios, adv, mask = torch.tensor([[5.0], [5.0]]), torch.tensor([-2.0, 2.0]), torch.ones(2, 1)
    loss, metrics, log_prob = loss_of("grpo", {"clip_ratio_c": 3.0}, ratios, adv, mask)
    assert loss.item() == pytest.approx((6.0 - 2.4) / 2)
    # resp 0's token is the dual clip's, resp 1's the upper bound's: both count in pg_clipfrac
    assert metrics["actor/pg_clipfrac_dual"] == metrics["actor/pg_clipfrac_upper"] == pytest.approx(0.5)
    assert metrics["actor/pg_clipfrac"] == pytest.approx(1.0)
    loss.backward()
    assert log_prob.grad.tolist() == [[0.0], [0.0]]
    # off (null): resp 0 keeps L = 10 and its gradient -A r / 2 = 5
    loss, _, log_prob = loss_of("grpo", NO_DUAL, ratios, adv, mask)
    assert loss.item() == pytest.approx((10.0 - 2.4) / 2)
    loss.backward()
    assert log_prob.grad[0, 0].item() == pytest.approx(5.0)


def test_gspo_one_clip_per_response_by_hand():
    # resp 0: A = +1, log r = [2e-4, 0]         -> s = exp(1e-4) = 1.000100005 < 1 + 4e-4: L = -s
    # resp 1: A = -1, log r = [-0.002, pad 5.0] -> s = exp(-0.002) = 0.998002 < 1 - 3e-4:
    #         L = max(s, 0.9997) = 0.9997
    log_prob = torch.tensor([[2e-4, 0.0], [-0.002, 5.0]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    config = {"loss_agg_mode": "seq-mean-token-mean"}
    loss, metrics = compute_policy_loss("gspo", log_prob, torch.zeros_like(log_prob), adv, mask, None, config)
    s0 = math.exp(1e-4)
    assert loss.item() == pytest.approx((-s0 + 0.9997) / 2, rel=1e-12)
    # the whole of response 1 is clipped (one clip per response), none of response 0
    assert metrics["actor/pg_clipfrac_lower"] == pytest.approx(1 / 3)
    assert metrics["actor/pg_clipfrac_upper"] == 0.0
    loss.backward()
    # d(-s0/2)/dlogp_t = -s0 * (1/2 tokens) / 2 responses; the clipped response has no gradient
    assert log_prob.grad.tolist() == [pytest.approx([-s0 / 4, -s0 / 4]), [0.0, 0.0]]


def test_token_weights_multiply_each_token_loss():
    # grpo per-token L: [[-0.9, -1.1, -1.2], [0.8, 1.1, pad]]; weights halve response 1's first token
    weights = torch.tensor([[1.0, 1.0, 1.0], [0.5, 1.0, 7.0]])
    loss, metrics, _ = loss_of("grpo", {}, token_weights=weights)
    assert loss.item() == pytest.approx((-0.9 - 1.1 - 1.2 + 0.5 * 0.8 + 1.1) / 5)
    assert metrics["actor/pg_clipfrac"] == pytest.approx(2 / 5)  # clip fractions stay unweighted


def test_global_norm_replaces_the_batch_normaliser():
    loss, _, _ = loss_of("grpo", {}, global_norm=10.0)
    assert loss.item() == pytest.approx(-1.3 / 10)


@pytest.mark.parametrize(
    ("loss_mode", "low", "high"), [("grpo", 0.2, 0.2), ("clip_higher", 0.2, 0.28), ("gspo", 3e-4, 4e-4)]
)
def test_each_loss_keeps_its_own_clip_defaults_in_every_config_form(loss_mode, low, high):
    """algorithm=<loss>, algorithm.name=<loss>, a dict, OmegaConf and the dataclass give the same numbers."""
    by_group = compose_config([f"algorithm={loss_mode}", "algorithm.loss_agg_mode=token-mean"]).algorithm
    by_name = compose_config([f"algorithm.name={loss_mode}"]).algorithm
    explicit = {"clip_ratio_low": low, "clip_ratio_high": high}
    forms = [{}, OmegaConf.create({}), AlgorithmConfig(name=loss_mode), by_group, by_name, explicit]
    ratios = torch.tensor([[1.0002, 1.1, 1.5], [0.5, 0.99995, 1.0]])  # both sides of gspo's and grpo's ranges
    results = [loss_of(loss_mode, form, ratios=ratios) for form in forms]
    assert all(result[0].item() == results[0][0].item() for result in results)
    assert all(result[1] == results[0][1] for result in results)


def test_an_explicit_clip_range_overrides_the_losss_default():
    assert (
        compose_config(["algorithm=gspo", "algorithm.clip_ratio_high=0.1"]).algorithm.clip_ratio_high == 0.1
    )
    assert loss_of("clip_higher", {"clip_ratio_high": 0.2})[0].item() == pytest.approx(-1.3 / 5)


def test_bad_config_and_shapes_raise_clear_errors():
    with pytest.raises(KeyError, match="known"):
        loss_of("ppo", {})
    with pytest.raises(ValueError, match="clip_ratio_hgh"):
        loss_of("grpo", {"clip_ratio_hgh": 0.3})
    with pytest.raises(ValueError, match="lambda_mikro"):
        loss_of("etr", {"etr": {"lambda_mikro": 0.3}})
    with pytest.raises(ValueError, match="macro_mode"):  # v1's knob is gone
        loss_of("etr", {"etr": {"macro_mode": "clip"}})
    with pytest.raises(ValueError, match="clip_ratio_c"):
        loss_of("grpo", {"clip_ratio_c": 0.5})
    with pytest.raises(KeyError, match="loss aggregation"):
        loss_of("grpo", {"loss_agg_mode": "mean"})
    with pytest.raises(ValueError, match="advantages"):
        loss_of("grpo", {}, adv=torch.ones(3))
    with pytest.raises(ValueError, match="global_norm"):
        loss_of("grpo", {}, global_norm=0.0)
    with pytest.raises(ValueError, match="clip_bounds"):
        loss_of("etr", {})
    with pytest.raises(ValueError, match="eps_high"):
        loss_of("etr", {}, clip_bounds=(torch.ones(2), torch.ones(3)))
