import pytest

from etr_dist.driver.evaluate import evaluate, pass_at_k


def test_pass_at_k_by_hand():
    # prompt A: 1 of 4 correct, prompt B: 0 of 4, prompt C: 4 of 4
    correct = [[True, False, False, False], [False] * 4, [True] * 4]
    pass1, pass4 = pass_at_k(correct)
    assert pass1 == pytest.approx((0.25 + 0.0 + 1.0) / 3)
    assert pass4 == pytest.approx(2 / 3)


def test_greedy_cannot_give_pass_at_k():
    with pytest.raises(ValueError, match="eval_samples=4 needs trainer.eval_temperature > 0"):
        evaluate([], None, [], None, samples=4, temperature=0.0, name="x")
