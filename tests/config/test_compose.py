import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from etr_dist.config import ConfigError, RootConfig, compose_config, default_config_dir, to_dataclass
from etr_dist.config.checks import inert_trust_region_warning
from etr_dist.config.schema import AlgorithmConfig


def test_default_composes_to_typed_schema():
    cfg = compose_config()
    assert cfg.algorithm.name == "etr"
    assert cfg.rollout.engine == "hf"
    assert isinstance(to_dataclass(cfg), RootConfig)


@pytest.mark.parametrize("option", ["grpo", "clip_higher", "dr_grpo", "gspo", "etr"])
def test_every_algorithm_option_composes(option):
    cfg = compose_config([f"algorithm={option}"])
    assert isinstance(to_dataclass(cfg).algorithm, AlgorithmConfig)


def test_algorithm_options_set_their_methods_and_leave_clip_ranges_to_the_loss():
    dr = compose_config(["algorithm=dr_grpo"]).algorithm
    assert (dr.name, dr.adv_estimator, dr.loss_agg_mode) == ("grpo", "dr_grpo", "seq-mean-token-sum-norm")
    for option in ("grpo", "clip_higher", "gspo", "etr"):
        algorithm = compose_config([f"algorithm={option}"]).algorithm
        assert (algorithm.clip_ratio_low, algorithm.clip_ratio_high) == (None, None)


def test_etr_and_clip_higher_presets_differ_only_in_the_loss():
    etr = OmegaConf.to_container(compose_config(["algorithm=etr"]).algorithm)
    clip_higher = OmegaConf.to_container(compose_config(["algorithm=clip_higher"]).algorithm)
    assert {k for k in etr if etr[k] != clip_higher[k]} == {"name"}


def test_clip_ratio_with_etr_fails_naming_both_keys():
    with pytest.raises(ConfigError, match="'algorithm.clip_ratio_low' and 'algorithm.clip_ratio_high'"):
        compose_config(["algorithm=etr", "algorithm.clip_ratio_high=0.3"])


def test_etr_knobs_are_checked_at_load():
    with pytest.raises(ConfigError, match="algorithm.etr.phi_max"):
        compose_config(["algorithm.etr.phi_min=3", "algorithm.etr.phi_max=2"])


def test_every_rank_needs_a_row_of_every_mini_batch():
    with pytest.raises(ConfigError, match="learner.ppo_mini_batches"):
        compose_config(["trainer.prompts_per_step=1", "rollout.group_size=4", "learner.num_ranks=2"])
    compose_config(["trainer.prompts_per_step=1", "rollout.group_size=8", "learner.num_ranks=2"])


def test_one_optimizer_step_per_batch_warns_that_no_trust_region_can_bind():
    assert inert_trust_region_warning(to_dataclass(compose_config())) is None
    cfg = to_dataclass(compose_config(["learner.ppo_mini_batches=1"]))
    assert "no trust region" in inert_trust_region_warning(cfg)
    assert (
        inert_trust_region_warning(
            to_dataclass(compose_config(["learner.ppo_mini_batches=1", "learner.ppo_epochs=2"]))
        )
        is None
    )


def test_a_loss_registered_in_a_plugin_is_a_valid_name(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(
        "from etr_dist.algos import register_policy_loss\n"
        "from etr_dist.algos.policy_losses import grpo_loss\n"
        "@register_policy_loss('my_plugin_loss')\n"
        "def my_loss(inputs, algorithm):\n"
        "    return grpo_loss(inputs, algorithm)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="'algorithm.name': 'my_plugin_loss' is not one of"):
        compose_config(["algorithm.name=my_plugin_loss"])
    cfg = compose_config(["algorithm.name=my_plugin_loss", "plugins=[my_losses]"])
    assert cfg.algorithm.name == "my_plugin_loss"
    with pytest.raises(ConfigError, match="plugin module 'no_such_module'"):
        compose_config(["plugins=[no_such_module]"])


def test_overrides_apply_with_types():
    cfg = compose_config(
        ["algorithm=etr", "algorithm.etr.lambda_micro=0.3", "rollout=vllm", "learner.num_ranks=4"]
    )
    assert cfg.algorithm.etr.lambda_micro == 0.3
    assert cfg.rollout.engine == "vllm"
    assert cfg.learner.num_ranks == 4


def test_interpolation_resolves():
    cfg = compose_config(["algorithm=grpo", "data=gsm_symbolic"])
    assert cfg.trainer.experiment == "grpo.adv-grpo.gsm_symbolic"
    assert (
        compose_config(["algorithm=dr_grpo"]).trainer.experiment
        != compose_config(["algorithm=grpo"]).trainer.experiment
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "algorithm.etr.lamda_micro=0.3",
            "unknown config key 'algorithm.etr.lamda_micro' (did you mean 'algorithm.etr.lambda_micro'?)",
        ),
        ("+algorithm.etr.zzz=1", "unknown config key 'algorithm.etr.zzz'"),
        ("+foo=1", "unknown config key 'foo'"),
        ("rollout.nope.x=1", "unknown config key 'rollout.nope'"),
        ("algorithm.etr.lambda_micro=abc", "bad value for config key 'algorithm.etr.lambda_micro'"),
        ("trainer.total_steps=1.5", "bad value for config key 'trainer.total_steps'"),
        ("rollout.engine=foo", "bad value for config key 'rollout.engine'"),
        (
            "algorithm=nope",
            "Could not find 'algorithm/nope'; available: ['bandpo', 'cispo', 'clip_higher', 'dppo_tv', 'dr_grpo',",
        ),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        compose_config([override])
    assert message in str(info.value)


def test_unparseable_override_is_named():
    expected = re.escape("cannot parse override 'data.prompt_template=What is {question} ?'")
    with pytest.raises(ConfigError, match=expected):
        compose_config(["algorithm=etr", "data.prompt_template=What is {question} ?"])


def test_quoted_override_with_braces_works():
    cfg = compose_config(['data.prompt_template="What is {question} ?"'])
    assert cfg.data.prompt_template == "What is {question} ?"


def test_mandatory_value_must_be_set():
    with pytest.raises(ConfigError, match="config key .model.path. must be set when model.source=hf"):
        compose_config(["model=hf"])


def test_unknown_key_in_a_yaml_file_names_it(tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(default_config_dir(), configs)
    (configs / "algorithm" / "etr.yaml").write_text("name: etr\netr:\n  lambda_mikro: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'algorithm.etr.lambda_mikro'"):
        compose_config(config_dir=configs)


def test_missing_config_dir_is_clear(tmp_path: Path):
    with pytest.raises(ConfigError, match="no config.yaml"):
        compose_config(config_dir=tmp_path)


def test_config_layer_imports_no_heavy_frameworks():
    heavy = "('ray', 'deepspeed', 'vllm', 'torch')"
    code = f"import sys, etr_dist.config; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_resolved_config_round_trips_to_yaml():
    cfg = compose_config(["algorithm=etr"])
    again = OmegaConf.create(OmegaConf.to_yaml(cfg))
    assert again.algorithm.etr.eps_high_base == 0.28


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_staleness=-1", "trainer.max_staleness"),
        ("learner.num_ranks=0", "learner.num_ranks"),
        ("reward.timeout_s=0", "reward.timeout_s"),
        ("sync.bucket_mb=0", "sync.bucket_mb"),
        ("rollout.top_p=1.5", "rollout.top_p"),
        ("rollout.group_size=1", "rollout.group_size"),
        ("learner.lr=0", "learner.lr"),
        ("learner.betas=[0.9,1.0]", "learner.betas"),
        ("trainer.keep_last=0", "trainer.keep_last"),
    ],
)
def test_out_of_range_values_fail_at_load_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=f"bad value for config key '{re.escape(key)}'"):
        compose_config([override])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.eval_samples=4", "trainer.eval_temperature=0"], "greedy decoding gives one answer"),
        (["rollout=vllm", "rollout.max_new_tokens=900"], "exceeds rollout.vllm.max_model_len=1024"),
        (["learner.num_ranks=8", "learner.num_cpus_per_rank=2"], "Ray could never place them all"),
        (["learner.num_gpus_per_rank=1"], "ask for 2 GPUs but the local cluster has cluster.num_gpus=None"),
    ],
)
def test_cross_field_rules_fail_at_load(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose_config(overrides)


def test_a_bad_value_fails_in_well_under_two_seconds():
    command = [sys.executable, "-m", "etr_dist.train", "trainer.max_staleness=-1"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert result.returncode == 2
    assert "'trainer.max_staleness': must be >= 0, got -1" in result.stderr
    assert time.perf_counter() - start < 2.0
