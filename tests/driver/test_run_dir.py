"""The run folder: its name, the config (and grader version) it records, and which run resume=auto continues."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from etr_dist.config import ConfigError, compose_config
from etr_dist.driver.checkpoint import CheckpointManager
from etr_dist.driver.run_dir import prepare_run_dir
from etr_dist.reward import grader_version


def test_config_yaml_records_the_grader_version(tmp_path):
    run = prepare_run_dir(compose_config([f"trainer.run_dir={tmp_path / 'builtin'}"]))
    recorded = OmegaConf.load(run / "config.yaml")
    assert recorded.reward.grader_version == grader_version()
    assert "math-verify 0.9.0" in recorded.reward.grader_version


def test_a_custom_reward_function_records_no_grader_version(tmp_path):
    cfg = compose_config([f"trainer.run_dir={tmp_path / 'custom'}", "reward.fn=my_rewards:score"])
    recorded = OmegaConf.load(prepare_run_dir(cfg) / "config.yaml")
    assert recorded.reward.fn == "my_rewards:score"
    assert recorded.reward.grader_version is None


ALGORITHMS = ["etr", "grpo", "clip_higher", "dr_grpo", "gspo", "cispo", "sapo", "dppo_tv", "bandpo"]


def test_every_algorithm_preset_gets_its_own_experiment_name():
    names = {algo: compose_config([f"algorithm={algo}"]).trainer.experiment for algo in ALGORITHMS}
    assert names["grpo"] == "grpo.adv-grpo.arithmetic"
    assert names["dr_grpo"] == "grpo.adv-dr_grpo.arithmetic"
    assert names["etr"] == "etr.adv-grpo.arithmetic"
    assert len(set(names.values())) == len(ALGORITHMS)


@pytest.mark.parametrize("name", ["a/b", "../up", "..", "with space", "", "naïve"])
def test_an_experiment_name_that_is_no_plain_folder_name_fails_at_load(name):
    with pytest.raises(ConfigError, match="is not a usable folder name: use only letters, digits"):
        compose_config([f"trainer.experiment='{name}'"])


def saved_run(experiment_dir: Path, stamp: str, *overrides: str) -> Path:
    """A run folder whose step-2 checkpoint stores the config of `overrides`, as a training run leaves it."""
    run = experiment_dir / stamp
    cfg = compose_config([*overrides, "trainer.experiment=exp"])
    state = {"step": 2, "config": OmegaConf.to_container(cfg, resolve=True)}
    CheckpointManager(run / "checkpoints").commit(2, state)
    return run


def test_resume_auto_continues_the_newest_run_whose_config_matches(tmp_path, capsys):
    exp = tmp_path / "exp"
    mine = saved_run(exp, "20260101-000001", "algorithm=grpo", "learner.num_ranks=2")
    saved_run(exp, "20260101-000002", "algorithm=dr_grpo", "learner.num_ranks=2")
    saved_run(exp, "20260101-000003", "algorithm=grpo", "learner.num_ranks=1")
    (exp / "20260101-000004").mkdir()  # a run that never saved: not a candidate
    overrides = [f"trainer.output_dir={tmp_path}", "trainer.experiment=exp", "trainer.resume=auto"]
    cfg = compose_config([*overrides, "algorithm=grpo", "learner.num_ranks=2", "trainer.total_steps=30"])
    assert prepare_run_dir(cfg) == mine
    out = capsys.readouterr().out
    assert (
        f"skipped {exp / '20260101-000003'}: cannot resume: config key 'learner.num_ranks' was 1 when the "
        "checkpoint was saved and is 2 now" in out
    )
    assert (
        f"skipped {exp / '20260101-000002'}: config key 'algorithm.adv_estimator' was 'dr_grpo' in its "
        "checkpoint and is 'grpo' now" in out
    )
    assert f"picked {mine}, the newest run of exp whose checkpoint's config matches this one" in out
    assert out.rstrip().endswith(f"etr_dist: resuming {mine} from step_2")


def test_resume_auto_with_no_matching_run_starts_a_new_one_and_says_why(tmp_path, capsys):
    exp = tmp_path / "exp"
    other = saved_run(exp, "20260101-000001", "algorithm=etr", "algorithm.etr.lambda_micro=0.3")
    overrides = [f"trainer.output_dir={tmp_path}", "trainer.experiment=exp", "trainer.resume=auto"]
    run = prepare_run_dir(compose_config([*overrides, "algorithm=etr"]))
    assert run.parent == exp and run != other
    out = capsys.readouterr().out
    assert (
        f"skipped {other}: config key 'algorithm.etr.lambda_micro' was 0.3 in its checkpoint and is 1.0"
        in out
    )
    assert f"trainer.resume=auto found no checkpoint under {exp} to continue: starting a new run" in out
