"""score_set and set_summary with a scripted worker and the real grader in-process: rows, order, pass@k."""

import io
import json
import math

import pytest

from etr_dist.config.schema import DataConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.evaluation.runner import EvalPlan, score_set, set_summary
from etr_dist.evaluation.sets import EvalSet
from etr_dist.reward import grade
from etr_dist.rollout.engine import SamplingSpec

# answers the scripted model gives, per prompt, for its 4 samples
REPLIES = {
    "a": ["\\boxed{2}", "\\boxed{3}", "\\boxed{2}", "no idea"],  # 2 of 4 correct
    "b": ["\\boxed{5}"] * 4,  # 0 of 4 (gold 4)
    "c": ["\\boxed{9}"] * 4,  # 4 of 4
}
GOLDS = {"a": "2", "b": "4", "c": "9"}


class ScriptedWorker:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, prompts, sampling):
        self.calls.append([p.id for p in prompts])
        return [
            Completion(p.id, k, [1], [0.0], REPLIES[p.id][k], "length" if k == 3 else "stop", 0)
            for p in prompts
            for k in range(sampling.n)
        ]


class InProcessPool:
    def grade_batch(self, requests):
        return [grade(r.response, r.reference, last_number_fallback=r.last_number_fallback) for r in requests]


def test_rows_and_summary_by_hand():
    prompts = [Prompt(i, f"q {i}", GOLDS[i], "jsonl") for i in "abc"]
    eval_set = EvalSet("mine", DataConfig(source="jsonl", eval_path="x.jsonl"), prompts, 2, 1)
    worker, items, advanced = ScriptedWorker(), io.StringIO(), []
    sampling = SamplingSpec(n=4, temperature=1.0, top_p=1.0, max_new_tokens=8)
    rows = score_set(eval_set, worker, InProcessPool(), sampling, 2, items, advanced.append)
    assert worker.calls == [["a", "b"], ["c"]] and advanced == [2, 1]
    assert [json.loads(line) for line in items.getvalue().splitlines()] == rows
    assert [(r["id"], r["correct"], r["n"]) for r in rows] == [("a", 2, 4), ("b", 0, 4), ("c", 4, 4)]
    assert rows[0]["rewards"] == [1.0, 0.0, 1.0, 0.0] and rows[0]["extracted"][:3] == ["2", "3", "2"]
    summary = set_summary(eval_set, rows, EvalPlan(samples=4, ks=(2, 4), temperature=1.0))
    # pass@1 = (2/4 + 0 + 1) / 3 = 0.5; pass@2 = (1 - C(2,2)/C(4,2) = 5/6, 0, 1) / 3 = 11/18; pass@4 = 2/3
    assert summary["pass@1"] == pytest.approx(0.5)
    assert summary["pass@2"] == pytest.approx(11 / 18)
    assert summary["pass@4"] == pytest.approx(2 / 3)
    # per-item pass@1 (.5, 0, 1): sample variance ((0)^2 + .5^2 + .5^2) / 2 = .25; stderr sqrt(.25 / 3)
    assert summary["pass@1_stderr"] == pytest.approx(math.sqrt(0.25 / 3))
    assert (summary["items"], summary["skipped_rows"], summary["too_long_prompts"]) == (3, 2, 1)
    assert summary["truncated_fraction"] == pytest.approx(0.25) and summary["k"] == [1, 2, 4]


def test_plans_that_cannot_work_are_refused():
    with pytest.raises(ValueError, match="needs trainer.eval_temperature > 0"):
        EvalPlan(samples=4, ks=(4,), temperature=0.0)
    with pytest.raises(ValueError, match=r"1 <= k <= n .* got k=\[8\]"):
        EvalPlan(samples=4, ks=(8,), temperature=1.0)
