"""Eval sets read the public MATH-500 and GSM8K files correctly; presets, --set files and model paths resolve."""

import json
from pathlib import Path

import pytest

from etr_dist.config import ConfigError, compose_config, default_config_dir, to_dataclass
from etr_dist.evaluation.command import with_train_path
from etr_dist.evaluation.model import resolve_model
from etr_dist.evaluation.sets import file_spec, preset_spec, read_prompts
from etr_dist.reward import grade

CONFIG_DIR = default_config_dir()


@pytest.fixture(scope="module")
def data_cfg():
    return to_dataclass(compose_config([])).data


@pytest.mark.parametrize(
    ("name", "rows", "question_key"), [("math500", 500, "problem"), ("gsm8k", 1319, "question")]
)
def test_every_gold_graded_against_itself_scores_one(name, rows, question_key, data_cfg, shared_eval_file):
    path = shared_eval_file(name)
    spec = preset_spec(name, CONFIG_DIR, data_cfg)
    assert Path(spec.data.eval_path) == path.resolve()
    prompts, stats = read_prompts(spec)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert (len(prompts), stats.skipped_rows) == (rows, 0)
    for prompt, row in zip(prompts, raw, strict=True):
        assert prompt.answer == row["answer"] and row[question_key] in prompt.text
        assert prompt.last_number_fallback == (name == "gsm8k")
    scores = [grade(p.answer, p.answer, last_number_fallback=p.last_number_fallback).score for p in prompts]
    assert scores == [1.0] * rows


def test_gsm8k_gold_is_the_number_after_the_marks(data_cfg, shared_eval_file):
    shared_eval_file("gsm8k")
    prompt = read_prompts(preset_spec("gsm8k", CONFIG_DIR, data_cfg), limit=1)[0][0]
    assert prompt.answer.endswith("#### 18")  # Janet's ducks: $18 a day
    assert grade("She makes 9 * 2 = 18 dollars. \\boxed{18}", prompt.answer).score == 1.0
    assert grade("She makes \\boxed{16} dollars.", prompt.answer).score == 0.0


def test_set_option_reads_a_file_with_its_keys(tmp_path, data_cfg):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"q": "1 + 1", "a": "2"}\n{"q": "", "a": "3"}\n{"q": "2 + 2", "a": 4}\n')
    spec = file_spec(f"mine={path}:q:a", CONFIG_DIR, data_cfg)
    assert (spec.name, spec.data.source, spec.data.question_key, spec.data.answer_key) == (
        "mine",
        "jsonl",
        "q",
        "a",
    )
    prompts, stats = read_prompts(spec)
    assert [(p.id, p.answer) for p in prompts] == [("jsonl-eval-0", "2"), ("jsonl-eval-2", "4")]
    assert stats.skipped_rows == 1  # the empty question
    assert [p.id for p in read_prompts(spec, limit=1)[0]] == ["jsonl-eval-0"]


def test_set_option_on_a_preset_keeps_its_settings(data_cfg):
    spec = file_spec("math500=/data/other.parquet", CONFIG_DIR, data_cfg)
    assert (spec.data.source, spec.data.eval_path, spec.data.question_key) == (
        "parquet",
        "/data/other.parquet",
        "problem",
    )
    assert "\\boxed{{}}" in spec.data.prompt_template


@pytest.mark.parametrize("option", ["nopath", "x=", "=a.jsonl", "x=a.jsonl:q"])
def test_bad_set_options_are_refused(option, data_cfg):
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        file_spec(option, CONFIG_DIR, data_cfg)


def test_unknown_preset_lists_the_presets(data_cfg):
    with pytest.raises(FileNotFoundError, match=r"presets: \['arith_4op', 'gsm8k', 'math500'\]"):
        preset_spec("mmlu", CONFIG_DIR, data_cfg)


def test_config_data_split_is_the_training_held_out_split(data_cfg):
    from etr_dist.data.loading import load_prompts
    from etr_dist.evaluation.sets import EvalSetSpec

    prompts, _ = read_prompts(EvalSetSpec("arithmetic", data_cfg), limit=5)
    assert prompts == load_prompts(data_cfg)[1][:5]


def test_an_eval_file_alone_composes():
    overrides = with_train_path(["data=jsonl", "data.eval_path=/d/test.jsonl"])
    assert overrides[-1] == "data.train_path=/d/test.jsonl"
    assert compose_config(overrides).data.eval_path == "/d/test.jsonl"
    assert with_train_path(["data.eval_path=e", "data.train_path=t"]) == [
        "data.eval_path=e",
        "data.train_path=t",
    ]


def test_model_paths_resolve(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert resolve_model(hf, tmp_path / "export") == hf  # used as is, nothing exported
    assert not (tmp_path / "export").exists()
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        resolve_model(tmp_path / "empty_run", tmp_path / "export")


def test_a_run_folder_is_exported_first(tmp_path, monkeypatch):
    import sys
    import types

    from etr_dist.driver.checkpoint import CheckpointManager

    run = tmp_path / "run"
    CheckpointManager(run / "checkpoints").commit(3, {"step": 3})
    calls = []
    fake = types.ModuleType(
        "etr_dist.driver.export"
    )  # stands in for DeepSpeed's export, which is tested there
    fake.export_hf = lambda path, out: calls.append((path, out)) or out
    monkeypatch.setitem(sys.modules, "etr_dist.driver.export", fake)
    assert resolve_model(run / "checkpoints" / "step_3", tmp_path / "export") == tmp_path / "export"
    assert calls == [(run / "checkpoints" / "step_3", tmp_path / "export")]


def test_a_synthetic_preset_is_a_held_out_task_variant():
    base = to_dataclass(compose_config(["data.mixed_difficulty=true", "data.num_operands=3"])).data
    spec = preset_spec("arith_4op", CONFIG_DIR, base)
    prompts, _ = read_prompts(spec)
    assert len(prompts) == 24 and len({p.text for p in prompts}) == 24
    assert all(p.text.count(" + ") + p.text.count(" - ") == 3 for p in prompts)  # four operands, never mixed
    assert prompts[0].id == "arithmetic-eval-0" and spec.data.seed == 104


def test_training_eval_sets_are_checked_at_load():
    cfg = compose_config(["trainer.eval_sets=[arith_4op,math500]"])
    assert cfg.trainer.eval_sets == ["arith_4op", "math500"]
    with pytest.raises(
        ConfigError, match=r"no preset \['arith4'\] in .*; presets: \[.*'arith_4op', .*'math500'"
    ):
        compose_config(["trainer.eval_sets=[arith4]"])
    with pytest.raises(ConfigError, match="name each preset once, and not 'arithmetic'"):
        compose_config(["trainer.eval_sets=[arith_4op,arith_4op]"])
