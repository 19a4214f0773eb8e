"""data.last_number_fallback: each dataset's grading choice, carried by every prompt to the grader."""

import json

from etr_dist.config import compose_config
from etr_dist.config.schema import DataConfig
from etr_dist.data.loading import load_prompts


def test_every_prompt_carries_its_datasets_choice(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text(
        "".join(
            json.dumps({"question": f"q{i}", "answer": f"\\frac{{1}}{{{i + 2}}}"}) + "\n" for i in range(6)
        )
    )
    math_like = DataConfig(source="jsonl", train_path=str(path), eval_path=str(path))
    train, evals = load_prompts(math_like)
    assert {p.last_number_fallback for p in train + evals} == {False}  # the default: MATH-style data
    arithmetic = DataConfig(source="arithmetic", train_size=5, eval_size=3, last_number_fallback=True)
    train, evals = load_prompts(arithmetic)
    assert {p.last_number_fallback for p in train + evals} == {True}


def test_the_shipped_data_configs_choose_per_dataset():
    assert compose_config([]).data.last_number_fallback is True  # arithmetic, the default data
    assert compose_config(["data=gsm_symbolic"]).data.last_number_fallback is True
    assert compose_config(["data=jsonl", "data.train_path=x.jsonl"]).data.last_number_fallback is False
    assert compose_config(["data=parquet", "data.train_path=x.parquet"]).data.last_number_fallback is False
