import pytest

from etr_dist.driver.evaluate import evaluate, evaluate_sets, summarize


def test_summarize_uses_the_unbiased_pass_at_k():
    # item A: 1 of 4 correct, B: 0 of 4, C: 4 of 4; pass@4 = any correct of all 4
    result = summarize("arith", 4, {"A": [4, 1], "B": [4, 0], "C": [4, 4]})
    assert result.metrics["eval/arith/pass@1"] == pytest.approx((0.25 + 0.0 + 1.0) / 3)
    assert result.metrics["eval/arith/pass@4"] == pytest.approx(2 / 3)
    assert result.items == [
        {"id": "A", "n": 4, "correct": 1},
        {"id": "B", "n": 4, "correct": 0},
        {"id": "C", "n": 4, "correct": 4},
    ]


def test_summarize_pass_at_k_below_n_is_not_any_correct():
    # 1 of 4 correct: pass@2 = 1 - C(3,2)/C(4,2) = 0.5, while "any of the 4" would say 1.0
    result = summarize("arith", 2, {"A": [4, 1]})
    assert result.metrics == {
        "eval/arith/pass@1": pytest.approx(0.25),
        "eval/arith/pass@2": pytest.approx(0.5),
    }


def test_greedy_cannot_give_pass_at_k():
    with pytest.raises(ValueError, match="eval_samples=4 needs trainer.eval_temperature > 0"):
        evaluate([], None, [], None, samples=4, temperature=0.0, name="x")


def test_empty_sets_give_no_metrics_but_an_item_file(tmp_path):
    metrics = evaluate_sets([], None, {"arith": [], "other": []}, None, 1, 0.0, tmp_path / "step_0")
    assert metrics == {}
    assert (tmp_path / "step_0" / "arith.jsonl").read_text() == ""
    assert (tmp_path / "step_0" / "other.jsonl").is_file()
