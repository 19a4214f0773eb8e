"""ETR: elastic bounds and loss by hand, its ablations, and its reductions to clip-higher and GRPO."""

import pytest
import torch

from etr_dist.algos import advantage_rms, compute_policy_loss, elastic_bounds
from etr_dist.config.schema import EtrConfig

ETR_METRICS = {
    "etr/eps_high_mean", "etr/eps_high_p10", "etr/eps_high_p90",
    "etr/eps_low_mean", "etr/eps_low_p10", "etr/eps_low_p90",
    "etr/phi_mean", "etr/psi_mean",
}  # fmt: skip

# Two responses of different groups, adv_rms = 1:
#   resp 0: A = +2,   v = 1    -> u = 2,   phi = 1 + 0.5 (2 - 1) = 1.5,    psi = 1^0.5 = 1
#   resp 1: A = -0.5, v = 0.25 -> u = 0.5, phi = 1 + 0.5 (0.5 - 1) = 0.75, psi = 0.25^0.5 = 0.5
#   eps_high = 0.28 * [1.5 * 1, 0.75 * 0.5] = [0.42, 0.105];  eps_low = 0.2 * [1.5, 0.375] = [0.3, 0.075]
RATIOS = torch.tensor([[1.3, 1.5], [0.9, 0.95]])
ADV = torch.tensor([2.0, -0.5])
VAR_NORM = torch.tensor([1.0, 0.25])
MASK = torch.ones(2, 2)


def etr_loss(etr=None, ratios=RATIOS, adv=ADV, var_norm=VAR_NORM, mode="etr", **config):
    log_prob = ratios.log().requires_grad_()
    config = {**config, "etr": etr or {}}
    old = torch.zeros_like(log_prob)
    loss, metrics = compute_policy_loss(mode, log_prob, old, adv, MASK, var_norm, config, adv_rms=1.0)
    return loss, metrics, log_prob


def test_elastic_bounds_by_hand():
    bounds = elastic_bounds(ADV, VAR_NORM, 1.0, EtrConfig())
    assert bounds.phi.tolist() == pytest.approx([1.5, 0.75])
    assert bounds.psi.tolist() == pytest.approx([1.0, 0.5])
    assert bounds.eps_high.tolist() == pytest.approx([0.42, 0.105])
    assert bounds.eps_low.tolist() == pytest.approx([0.3, 0.075])


def test_etr_loss_and_metrics_by_hand():
    # resp 0 (A = 2, upper bound 1.42): 1.3 -> -2 * 1.3 = -2.6 | 1.5 -> -2 * 1.42 = -2.84 (upper binds)
    # resp 1 (A = -0.5, lower bound 1 - 0.075 = 0.925):
    #   0.9 -> max(0.45, 0.4625) = 0.4625 (lower binds) | 0.95 -> 0.475
    loss, metrics, _ = etr_loss()
    assert loss.item() == pytest.approx((-2.6 - 2.84 + 0.4625 + 0.475) / 4)
    assert set(metrics) >= ETR_METRICS
    assert metrics["actor/pg_clipfrac_upper"] == metrics["actor/pg_clipfrac_lower"] == pytest.approx(0.25)
    assert metrics["etr/eps_high_mean"] == pytest.approx((0.42 + 0.105) / 2)
    # torch.quantile interpolates linearly between the two values: p10 = 0.105 + 0.1 * (0.42 - 0.105)
    assert metrics["etr/eps_high_p10"] == pytest.approx(0.105 + 0.1 * 0.315)
    assert metrics["etr/eps_high_p90"] == pytest.approx(0.105 + 0.9 * 0.315)
    assert metrics["etr/eps_low_mean"] == pytest.approx((0.3 + 0.075) / 2)
    assert metrics["etr/phi_mean"] == pytest.approx(1.125)
    assert metrics["etr/psi_mean"] == pytest.approx(0.75)


def test_bounds_clamp_to_eps_limits_by_hand():
    # resp 0: u = 5 -> phi = 1 + 0.5 * 4 = 3 -> 2 (phi_max); psi = 1
    #         -> eps_high = 0.28 * 2 = 0.56 -> 0.5 (eps_max), eps_low = 0.2 * 2 = 0.4
    # resp 1: u = 0.1 -> phi = 0.55; v = 0.01 -> psi = 0.1 -> eps = 0.2 * 0.055 = 0.011 -> 0.05 (eps_min)
    bounds = elastic_bounds(torch.tensor([5.0, 0.1]), torch.tensor([1.0, 0.01]), 1.0, EtrConfig())
    assert bounds.phi.tolist() == pytest.approx([2.0, 0.55])
    assert bounds.eps_high.tolist() == pytest.approx([0.5, 0.05])
    assert bounds.eps_low.tolist() == pytest.approx([0.4, 0.05])


def test_macro_mode_weight_by_hand():
    # bounds from phi only: eps_high = [0.42, 0.21], eps_low = [0.3, 0.15]; resp 1's loss times psi = 0.5
    # resp 0 as before: -2.6, -2.84.  resp 1 (lower bound 0.85): 0.9 -> 0.45, 0.95 -> 0.475, times 0.5
    loss, metrics, _ = etr_loss({"macro_mode": "weight"})
    assert loss.item() == pytest.approx((-2.6 - 2.84 + 0.5 * (0.45 + 0.475)) / 4)
    assert metrics["etr/eps_high_mean"] == pytest.approx((0.42 + 0.21) / 2)
    assert metrics["etr/psi_mean"] == pytest.approx(0.75)


def test_side_upper_keeps_eps_low_static():
    # eps_low = 0.2 for every response: resp 1 lower bound 0.8, so 0.9 -> 0.45 is no longer clipped
    loss, metrics, _ = etr_loss({"side": "upper"})
    assert loss.item() == pytest.approx((-2.6 - 2.84 + 0.45 + 0.475) / 4)
    assert (
        metrics["etr/eps_low_mean"]
        == metrics["etr/eps_low_p10"]
        == metrics["etr/eps_low_p90"]
        == pytest.approx(0.2)
    )
    assert metrics["etr/eps_high_mean"] == pytest.approx((0.42 + 0.105) / 2)


def test_micro_and_macro_switches():
    off = elastic_bounds(ADV, VAR_NORM, 1.0, EtrConfig(micro=False, macro=False))
    assert off.eps_high.tolist() == pytest.approx([0.28, 0.28])
    micro_only = elastic_bounds(ADV, None, 1.0, EtrConfig(macro=False))  # v_q is not needed without macro
    assert micro_only.eps_high.tolist() == pytest.approx([0.28 * 1.5, 0.28 * 0.75])
    macro_only = elastic_bounds(ADV, VAR_NORM, 1.0, EtrConfig(micro=False))
    assert macro_only.eps_high.tolist() == pytest.approx([0.28, 0.28 * 0.5])


def test_adv_rms_is_over_nonzero_advantages():
    # sqrt((2^2 + 1^2 + 1^2) / 3) = sqrt(2); the zeros of an all-equal group do not count
    assert advantage_rms(torch.tensor([2.0, 0.0, -1.0, 0.0, 1.0])) == pytest.approx(2**0.5)
    assert advantage_rms(torch.zeros(4)) == 1.0
    # no underflow of A^2 for tiny advantages (else u = A / 0 and the bounds turn NaN)
    assert advantage_rms(torch.tensor([3e-200, -4e-200], dtype=torch.float64)) == pytest.approx(
        12.5**0.5 * 1e-200
    )
    # without adv_rms the loss uses its own batch's: A = [2, -0.5] -> rms = sqrt(2.125)
    log_prob = RATIOS.log()
    own = compute_policy_loss("etr", log_prob, torch.zeros(2, 2), ADV, MASK, VAR_NORM, {})[0]
    given = compute_policy_loss(
        "etr", log_prob, torch.zeros(2, 2), ADV, MASK, VAR_NORM, {}, adv_rms=2.125**0.5
    )[0]
    assert own.item() == given.item()


def random_batch(seed, n=6, t=5, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    log_prob = -torch.rand(n, t, generator=gen, dtype=dtype) * 3
    old = log_prob + torch.randn(n, t, generator=gen, dtype=dtype) * 0.3
    adv = torch.randn(n, generator=gen, dtype=dtype)
    var_norm = torch.rand(n, generator=gen, dtype=dtype)
    mask = torch.rand(n, t, generator=gen) < 0.8
    return log_prob, old, adv, mask, var_norm


@pytest.mark.parametrize(
    "agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
)
def test_zero_lambdas_equal_clip_higher_and_grpo_exactly(agg):
    log_prob, old, adv, mask, var_norm = random_batch(0)
    zero = {"lambda_micro": 0.0, "lambda_macro": 0.0}
    etr = {"loss_agg_mode": agg, "etr": zero}
    grads = {}
    for name, mode, config in [
        ("etr", "etr", etr),
        ("clip_higher", "clip_higher", {"loss_agg_mode": agg}),
        ("etr_symmetric", "etr", {**etr, "etr": {**zero, "eps_low_base": 0.2, "eps_high_base": 0.2}}),
        ("grpo", "grpo", {"loss_agg_mode": agg}),
    ]:
        x = log_prob.clone().requires_grad_()
        loss, metrics = compute_policy_loss(mode, x, old, adv, mask, var_norm, config)
        loss.backward()
        grads[name] = (loss, x.grad, metrics["actor/pg_clipfrac"])
    for etr_name, baseline in [("etr", "clip_higher"), ("etr_symmetric", "grpo")]:
        assert torch.equal(grads[etr_name][0], grads[baseline][0])
        assert torch.equal(grads[etr_name][1], grads[baseline][1])
        assert grads[etr_name][2] == grads[baseline][2]


@pytest.mark.parametrize("loss_mode", ["etr", "grpo", "clip_higher", "gspo"])
def test_zero_advantage_groups_give_zero_gradient(loss_mode):
    log_prob, old, _, mask, var_norm = random_batch(1)
    adv = torch.tensor([0.0, 0.0, 0.0, 1.5, -1.5, 0.0])
    x = log_prob.clone().requires_grad_()
    compute_policy_loss(loss_mode, x, old, adv, mask, var_norm, {}, adv_rms=1.5)[0].backward()
    zero_rows = adv == 0
    assert torch.all(x.grad[zero_rows] == 0)
    assert torch.any(x.grad[~zero_rows] != 0)


@pytest.mark.parametrize("etr", [{}, {"macro_mode": "weight"}, {"side": "upper"}])
def test_etr_gradcheck_float64(etr):
    # seed 12: both bounds bind on some tokens
    log_prob, old, adv, mask, var_norm = random_batch(12, dtype=torch.float64)
    # every response token is >= 1e-3 away from the kinks of min/clamp, so finite differences see one branch
    bounds = elastic_bounds(adv, var_norm, advantage_rms(adv), EtrConfig(**etr))
    ratio = (log_prob - old).exp()
    for edge in (1 - bounds.eps_low[:, None], 1 + bounds.eps_high[:, None], torch.full_like(ratio, 3.0)):
        assert torch.all((ratio - edge).abs()[mask] > 1e-3)

    def loss(x):
        return compute_policy_loss("etr", x, old, adv, mask, var_norm, {"etr": etr})[0]

    assert torch.autograd.gradcheck(loss, (log_prob.clone().requires_grad_(),))
    metrics = compute_policy_loss("etr", log_prob, old, adv, mask, var_norm, {"etr": etr})[1]
    assert metrics["actor/pg_clipfrac_upper"] > 0 and metrics["actor/pg_clipfrac_lower"] > 0
