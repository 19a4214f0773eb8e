"""`etr-dist eval` end to end on the tiny model (which scores ~0): a few MATH-500 and GSM8K rows, the files and
their numbers agree; and the command's refusals."""

import json

import pytest

from etr_dist.cli import main
from etr_dist.evaluation.passk import mean_pass_at_k


@pytest.mark.slow
def test_eval_scores_math500_and_gsm8k_rows(tiny_model_path, tmp_path, capsys, shared_eval_file):
    shared_eval_file("math500"), shared_eval_file("gsm8k")
    out = tmp_path / "eval"
    args = [
        "eval", tiny_model_path, "--sets", "math500,gsm8k", "--limit", "3", "--k", "2", "--out", str(out),
        "trainer.eval_samples=2", "trainer.eval_temperature=1.0", "rollout.max_new_tokens=8",
        "reward.num_workers=1",
    ]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert list(summary["sets"]) == ["math500", "gsm8k"]
    assert summary["model"] == tiny_model_path and summary["sampling"]["n"] == 2
    for name, result in summary["sets"].items():
        mine = [row for row in rows if row["set"] == name]
        assert result["items"] == len(mine) >= 1 and result["items"] + result["too_long_prompts"] == 3
        for row in mine:
            assert len(row["completions"]) == len(row["rewards"]) == len(row["reasons"]) == row["n"] == 2
            assert row["correct"] == sum(row["rewards"]) and set(row["rewards"]) <= {0.0, 1.0}
        counts = [(row["n"], row["correct"]) for row in mine]
        assert result["pass@1"] == pytest.approx(mean_pass_at_k(counts, 1))
        assert result["pass@2"] == pytest.approx(mean_pass_at_k(counts, 2))
        assert (result["n"], result["k"], result["skipped_rows"]) == (2, [1, 2], 0)
    gsm8k = [row for row in rows if row["set"] == "gsm8k"]
    assert gsm8k[0]["gold"].endswith("#### 18")
    printed = capsys.readouterr().out
    assert "math500: pass@1 " in printed and "gsm8k: pass@1 " in printed
    assert main(args) == 2  # the folder already holds an evaluation
    assert "already holds an evaluation" in capsys.readouterr().err


def test_refusals_name_the_problem(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nowhere"), "trainer.eval_samples=0x"]) == 2
    assert "config error" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--sets", "mmlu"]) == 2
    assert "no eval set preset 'mmlu'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--sets", "gsm8k", "--set", "gsm8k=x.jsonl"]) == 2
    assert "distinct" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--k", "4"]) == 2  # k > n = trainer.eval_samples=1
    assert "1 <= k <= n" in capsys.readouterr().err
