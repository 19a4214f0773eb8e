"""KL estimators against hand-computed values."""

import math

import pytest
import torch

from etr_dist.algos import KL_ESTIMATORS, kl_penalty

# pi = 0.5, pi_ref = 0.25 -> log pi - log pi_ref = ln 2
LOG_PROB = torch.tensor([[math.log(0.5), math.log(0.3)]])
REF_LOG_PROB = torch.tensor([[math.log(0.25), math.log(0.3)]])


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("k1", math.log(2)),  # ln 2 = 0.6931
        ("k2", 0.5 * math.log(2) ** 2),  # 0.2402
        ("k3", 0.5 + math.log(2) - 1),  # pi_ref/pi - ln(pi_ref/pi) - 1 = 0.5 + ln 2 - 1 = 0.1931
    ],
)
def test_estimators_by_hand(estimator, expected):
    kl = kl_penalty(LOG_PROB, REF_LOG_PROB, estimator)
    assert kl.shape == (1, 2)
    assert kl[0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert kl[0, 1].item() == 0.0  # identical policies


def test_k3_is_unbiased_for_the_true_kl():
    # E_{x ~ pi}[k3] = KL(pi || ref) for a categorical: check with the exact expectation over 3 outcomes
    pi, ref = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    true_kl = (pi * (pi / ref).log()).sum()
    for estimator in ("k1", "k3"):
        expected_value = (pi * kl_penalty(pi.log(), ref.log(), estimator)).sum()
        assert expected_value.item() == pytest.approx(true_kl.item(), rel=1e-6)
    assert KL_ESTIMATORS.names() == ["k1", "k2", "k3"]


def test_shape_mismatch_and_unknown_estimator():
    with pytest.raises(ValueError, match="differ"):
        kl_penalty(LOG_PROB, REF_LOG_PROB[:, :1], "k3")
    with pytest.raises(KeyError, match="KL estimator"):
        kl_penalty(LOG_PROB, REF_LOG_PROB, "k4")


def test_k3_stays_finite_for_far_apart_log_probs():
    # log(pi_ref / pi) = 100 would overflow exp in float32; clamped to 20: e^20 - 20 - 1
    log_prob = torch.tensor([[-100.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[0.0, -1.0]])
    kl = kl_penalty(log_prob, ref, "k3")
    assert kl[0, 0].item() == pytest.approx(math.exp(20.0) - 21.0, rel=1e-6)
    assert kl[0, 1].item() == 0.0
    kl.sum().backward()
    assert torch.isfinite(log_prob.grad).all()
