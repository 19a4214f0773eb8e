"""CISPO, SAPO, DPPO (binary TV) and BandPO against numbers computed by hand, values and gradients."""

import math

import pytest
import torch

from etr_dist.algos import POLICY_LOSSES, compute_policy_loss
from etr_dist.algos.baseline_losses import chi_square_band
from etr_dist.config import compose_config

from .test_policy_losses import PG_METRICS

EIGHT = ["grpo", "clip_higher", "gspo", "etr", "cispo", "sapo", "dppo_tv", "bandpo"]


def run(loss_mode, new_prob, old_prob, adv, mask, config=None):
    """Loss, metrics and d loss / d logp_new from probabilities of the sampled tokens (float64)."""
    old = torch.tensor(old_prob, dtype=torch.float64).log()
    log_prob = torch.tensor(new_prob, dtype=torch.float64).log().requires_grad_()
    adv = torch.tensor(adv, dtype=torch.float64)
    loss, metrics = compute_policy_loss(loss_mode, log_prob, old, adv, torch.tensor(mask), None, config or {})
    loss.backward()
    return loss.item(), metrics, log_prob.grad


def test_the_registry_holds_the_eight_losses():
    # the package's own (a test elsewhere registers a plugin's loss in the same process)
    own = [
        name for name in POLICY_LOSSES.names() if POLICY_LOSSES.get(name).__module__.startswith("etr_dist.")
    ]
    assert sorted(own) == sorted(EIGHT)


# CISPO, defaults eps_low = 1 (no lower bound), eps_high = 4 (weight cap 5); old probability 0.1 everywhere.
# Response 0: A = +1, r = [0.9, 1.1, 6.0]; response 1: A = -1, r = [0.5, 1.1] + padding.
CISPO_RATIOS = [[0.9, 1.1, 6.0], [0.5, 1.1, 1.0]]
MASK = [[1, 1, 1], [1, 1, 0]]


def cispo(config=None):
    new = [[0.1 * r for r in row] for row in CISPO_RATIOS]
    return run("cispo", new, [[0.1] * 3] * 2, [1.0, -1.0], MASK, config)


def test_cispo_by_hand():
    loss, metrics, grad = cispo()
    # w = clip(r, 0, 5) = [0.9, 1.1, 5.0], [0.5, 1.1];  L = -w A = [-0.9, -1.1, -5.0], [0.5, 1.1]
    assert loss == pytest.approx((-0.9 - 1.1 - 5.0 + 0.5 + 1.1) / 5)  # token-mean over 5 tokens
    # every token keeps a gradient -w A / 5, the truncated one too (grpo would give it 0)
    assert grad.tolist() == [pytest.approx([-0.18, -0.22, -1.0]), pytest.approx([0.1, 0.22, 0.0])]
    assert set(metrics) == PG_METRICS
    assert metrics["actor/pg_clipfrac_upper"] == metrics["actor/pg_clipfrac"] == pytest.approx(1 / 5)
    assert metrics["actor/pg_clipfrac_lower"] == metrics["actor/pg_clipfrac_dual"] == 0.0


def test_cispo_takes_the_configs_bounds():
    # eps 0.2 / 0.28: w = [0.9, 1.1, 1.28], [0.8, 1.1]; 0.5 is truncated up to 0.8 (lower)
    loss, metrics, grad = cispo({"clip_ratio_low": 0.2, "clip_ratio_high": 0.28})
    assert loss == pytest.approx((-0.9 - 1.1 - 1.28 + 0.8 + 1.1) / 5)
    assert grad[0, 2].item() == pytest.approx(-1.28 / 5)
    assert metrics["actor/pg_clipfrac_lower"] == pytest.approx(1 / 5)


def test_sapo_by_hand():
    # tau = 1 for A = +1, 1.05 for A = -2; f(r) = sigmoid(tau (r - 1)) 4 / tau; L = -f A
    # resp 0, r = [1, 2]:   f = [0.5 * 4, sigmoid(1) * 4] = [2, 2.9242344]         L = [-2, -2.9242344]
    # resp 1, r = [1, 0.5]: f = [0.5 * 4 / 1.05, sigmoid(-0.525) * 4 / 1.05]
    #                         = [1.9047619, 0.3716838 * 3.8095238 = 1.4159383]     L = [3.8095238, 2.8318767]
    new, old = [[0.2, 0.4], [0.2, 0.1]], [[0.2, 0.2], [0.2, 0.2]]
    loss, metrics, grad = run("sapo", new, old, [1.0, -2.0], [[1, 1]] * 2)
    assert loss == pytest.approx((-2 - 2.9242343 + 3.8095238 + 2.8318767) / 4, rel=1e-6)  # token-mean
    # gradient -A f'(r) r / 4 with f'(r) = 4 s (1 - s): 1 on-policy; 4 * 0.7310586 * 0.2689414 = 0.7864477
    # at r = 2; 4 * 0.3716838 * 0.6283162 = 0.9341398 at r = 0.5
    expected = [[-1 * 1 / 4, -0.7864477 * 2 / 4], [2 * 1 / 4, 2 * 0.9341398 * 0.5 / 4]]
    assert grad.tolist() == [pytest.approx(row, rel=1e-6) for row in expected]
    assert metrics["sapo/gate_mean"] == pytest.approx((1 + 0.7864477 + 1 + 0.9341398) / 4, rel=1e-6)
    assert metrics["actor/pg_clipfrac"] == 0.0  # a soft gate never clips


def test_sapo_temperatures_come_from_the_config():
    # tau_pos = 2 at r = 2, A = +1: f = sigmoid(2) * 4 / 2 = 0.8807971 * 2 = 1.7615942
    loss, _, _ = run("sapo", [[0.4]], [[0.2]], [1.0], [[1]], {"sapo": {"tau_pos": 2.0}})
    assert loss == pytest.approx(-1.7615942, rel=1e-6)


# DPPO binary TV, delta 0.15 / 0.15 on d = pi - pi_old of the sampled token.
#   resp 0, A = +1: pi_old [0.5, 0.5, 0.01] -> pi [0.6, 0.7, 0.05]: d = [0.1, 0.2, 0.04], r = [1.2, 1.4, 5]
#       d = 0.2 > 0.15 pushes further up: masked. r = 5 is kept (PPO would clip it at 1.2): a rare token
#       may grow while its probability moves little.                                  L = [-1.2, 0, -5]
#   resp 1, A = -1: pi_old [0.5, 0.4] -> pi [0.3, 0.6]: d = [-0.2, 0.2], r = [0.6, 1.5]
#       d = -0.2 < -0.15 pushes further down: masked; d = +0.2 goes against A, not masked.  L = [0, 1.5]
def test_dppo_tv_by_hand():
    new, old = [[0.6, 0.7, 0.05], [0.3, 0.6, 0.4]], [[0.5, 0.5, 0.01], [0.5, 0.4, 0.4]]
    loss, metrics, grad = run("dppo_tv", new, old, [1.0, -1.0], MASK)
    assert loss == pytest.approx((-1.2 - 5.0 + 1.5) / 5)
    # gradient -A r / 5 on the kept tokens, 0 on the masked ones
    assert grad.tolist() == [pytest.approx([-0.24, 0.0, -1.0]), pytest.approx([0.0, 0.3, 0.0])]
    assert metrics["actor/pg_clipfrac_upper"] == metrics["actor/pg_clipfrac_lower"] == pytest.approx(1 / 5)
    assert metrics["actor/pg_clipfrac"] == pytest.approx(2 / 5)


def test_dppo_tv_dual_clip_and_config_deltas():
    # A = -1, pi_old 0.1 -> pi 0.4: r = 4, d = +0.3 against A (not masked): -r A = 4 > 3 = c: L = 3, no gradient
    loss, metrics, grad = run("dppo_tv", [[0.4]], [[0.1]], [-1.0], [[1]])
    assert (loss, grad.item(), metrics["actor/pg_clipfrac_dual"]) == (pytest.approx(3.0), 0.0, 1.0)
    # delta_high = 0.3 (clip_ratio_high): the d = 0.2 token of resp 0 above is no longer masked
    new, old = [[0.6, 0.7, 0.05], [0.3, 0.6, 0.4]], [[0.5, 0.5, 0.01], [0.5, 0.4, 0.4]]
    loss, _, _ = run("dppo_tv", new, old, [1.0, -1.0], MASK, {"clip_ratio_high": 0.3})
    assert loss == pytest.approx((-1.2 - 1.4 - 5.0 + 1.5) / 5)


def test_chi_square_band_by_hand():
    # |r - 1| <= sqrt(delta (1 - p) / p), inside 0 <= r <= 1 / p; delta = 0.05
    #   p = 0.5:  sqrt(0.05) = 0.2236068                      -> (0.2236068, 0.2236068)
    #   p = 0.01: sqrt(4.95) = 2.2248595; 1 - 2.22 < 0 -> r >= 0 -> (1, 2.2248595)
    #   p = 1:    no room at all                               -> (0, 0)
    old = torch.tensor([[0.5, 0.01, 1.0]], dtype=torch.float64).log()
    eps_low, eps_high = chi_square_band(old, 0.05)
    assert eps_low[0].tolist() == pytest.approx([0.2236068, 1.0, 0.0], rel=1e-6)
    assert eps_high[0].tolist() == pytest.approx([0.2236068, 2.2248595, 0.0], rel=1e-6)
    # delta = 2, p = 0.5: sqrt(2) = 1.414 > 1 / p - 1 = 1: the simplex caps the upper bound at r = 2
    eps_low, eps_high = chi_square_band(torch.tensor([[math.log(0.5)]]), 2.0)
    assert (eps_low.item(), eps_high.item()) == (1.0, pytest.approx(1.0))


def test_bandpo_by_hand():
    # delta 0.05. resp 0, A = +1: p_old [0.5, 0.01], r [1.3, 3.0]
    #   0.5: upper 1.2236068 < 1.3 -> L = -1.2236068 (clipped);  0.01: upper 3.2248595 > 3 -> L = -3
    # resp 1, A = -1: p_old [0.8, 0.05], r [0.85, 0.5]
    #   0.8: sqrt(0.05 * 0.2 / 0.8) = 0.1118034, lower 0.8881966 > 0.85 -> L = 0.8881966 (clipped)
    #   0.05: sqrt(0.95) = 0.9746794, lower 0.0253206 < 0.5 -> L = 0.5
    old = [[0.5, 0.01], [0.8, 0.05]]
    new = [[0.5 * 1.3, 0.01 * 3.0], [0.8 * 0.85, 0.05 * 0.5]]
    loss, metrics, grad = run("bandpo", new, old, [1.0, -1.0], [[1, 1]] * 2)
    assert loss == pytest.approx((-1.2236068 - 3.0 + 0.8881966 + 0.5) / 4, rel=1e-6)
    assert grad.tolist() == [pytest.approx([0.0, -3.0 / 4]), pytest.approx([0.0, 0.5 / 4])]
    assert metrics["actor/pg_clipfrac_upper"] == metrics["actor/pg_clipfrac_lower"] == pytest.approx(1 / 4)
    # the radius comes from algorithm.bandpo.delta: at delta = 0.2 neither bound binds any more:
    # p = 0.5: 1 + sqrt(0.2) = 1.4472136 > 1.3;  p = 0.8: 1 - sqrt(0.2 * 0.2 / 0.8) = 0.7763932 < 0.85
    loss, metrics, _ = run("bandpo", new, old, [1.0, -1.0], [[1, 1]] * 2, {"bandpo": {"delta": 0.2}})
    assert loss == pytest.approx((-1.3 - 3.0 + 0.85 + 0.5) / 4)
    assert metrics["actor/pg_clipfrac"] == 0.0


@pytest.mark.parametrize("name", EIGHT)
def test_each_of_the_eight_composes_as_an_algorithm_option(name):
    algorithm = compose_config([f"algorithm={name}"]).algorithm
    assert algorithm.name == name
    assert compose_config([f"algorithm.name={name}"]).algorithm.name == name
