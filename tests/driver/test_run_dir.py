"""The run folder records the grader's version in config.yaml: a grader change changes the rewards."""

from omegaconf import OmegaConf

from etr_dist.config import compose_config
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
