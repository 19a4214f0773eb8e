"""Study configs: loading, the plan of runs, and the checks that fix the arms before any run."""

from pathlib import Path

import pytest

from etr_dist.config import ConfigError
from etr_dist.study.config import compose_arms, load_study, plan_runs

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "study"


def write_study(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


STUDY = """
name: s
baseline: grpo
primary_metric: eval/arithmetic/pass@1
seeds: [3, 5]
eval_sets: [arith_4op]
overrides: [trainer.total_steps=2]
arms:
  grpo: [algorithm=grpo, algorithm.loss_agg_mode=token-mean]
  etr: [algorithm=etr]
"""


def test_plan_is_seed_major_and_the_first_arm_of_each_seed_evaluates_at_start(tmp_path):
    study = load_study(write_study(tmp_path, STUDY), ["data.eval_size=8"])
    assert study.overrides == ["trainer.total_steps=2", "data.eval_size=8"]
    runs = plan_runs(study, tmp_path / "out")
    assert [(r.key, r.evals_start) for r in runs] == [
        ("grpo_s3", True),
        ("etr_s3", False),
        ("grpo_s5", True),
        ("etr_s5", False),
    ]
    etr = runs[1]
    assert etr.run_dir == (tmp_path / "out" / "runs" / "etr_s3").resolve()
    assert etr.overrides[:3] == ["trainer.total_steps=2", "data.eval_size=8", "algorithm=etr"]
    for override in ("trainer.seed=3", "rollout.seed=3", "learner.seed=3", "trainer.resume=auto"):
        assert override in etr.overrides
    assert "trainer.eval_sets=[arith_4op]" in etr.overrides and "trainer.eval_at_start=false" in etr.overrides
    assert f"trainer.run_dir={etr.run_dir}" in etr.overrides


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("baseline: grpo\n", "baseline: dapo\n"),
        ("seeds: [3, 5]", "seeds: [3, 3]"),
        ("name: s\n", "name: s\nsteps: 3\n"),
    ],
)
def test_bad_study_files_name_the_problem(tmp_path, change, message):
    with pytest.raises(ConfigError, match=r"baseline|seeds|unknown study keys \['steps'\]"):
        load_study(write_study(tmp_path, STUDY.replace(change, message)), [])


def test_arms_may_differ_only_in_the_algorithm(tmp_path):
    text = STUDY.replace("etr: [algorithm=etr]", "etr: [algorithm=etr, learner.lr=0.001]")
    with pytest.raises(
        ConfigError, match=r"arm 'etr' differs from 'grpo' outside algorithm\.\* in \['learner.lr'\]"
    ):
        compose_arms(load_study(write_study(tmp_path, text), []))
    with pytest.raises(ConfigError, match="primary_metric='eval/gsm8k/pass@1' is not"):
        compose_arms(load_study(write_study(tmp_path, STUDY.replace("arithmetic/pass", "gsm8k/pass")), []))
    with pytest.raises(ConfigError, match=r"arm 'grpo': .*no preset \['nope'\].*presets: \[.*'arith_4op'"):
        compose_arms(load_study(write_study(tmp_path, STUDY.replace("[arith_4op]", "[nope]")), []))


def test_cpu_preset_composes_with_arms_that_differ_only_in_the_trust_region():
    composed = compose_arms(load_study(CONFIGS / "cpu_arith.yaml", []))
    assert list(composed) == ["grpo", "clip_higher", "etr"]
    algorithms = {arm: cfg["algorithm"] for arm, cfg in composed.items()}
    assert {a["loss_agg_mode"] for a in algorithms.values()} == {"token-mean"}
    assert {a["name"] for a in algorithms.values()} == {"grpo", "clip_higher", "etr"}
    assert all({**a, "name": "x"} == {**algorithms["etr"], "name": "x"} for a in algorithms.values())
    data = composed["etr"]["data"]
    assert (
        data["mixed_difficulty"]
        and data["num_operands"] == 3
        and composed["etr"]["model"]["source"] == "smollm2"
    )


def test_gpu_preset_composes_and_needs_its_model_folder():
    study = load_study(
        CONFIGS / "gpu_math.yaml", ["model.path=/models/m", "data.train_path=/data/train.jsonl"]
    )
    composed = compose_arms(study)
    etr = composed["etr"]
    assert etr["model"]["path"] == "/models/m" and etr["trainer"]["eval_sets"] == ["math500"]
    assert etr["data"]["prompt_template"].endswith(
        "\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    )
    assert study.primary_metric == "eval/math500/pass@1"
    with pytest.raises(ConfigError, match="'model.path' must be set when model.source=hf"):
        compose_arms(load_study(CONFIGS / "gpu_math.yaml", ["data.train_path=/data/train.jsonl"]))
