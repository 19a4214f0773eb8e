"""The baselines' and the rollout correction's config keys: defaults, checks at load, the moved IS keys."""

import pytest

from etr_dist.config import ConfigError, compose_config, to_dataclass
from etr_dist.config.schema import RolloutCorrectionConfig


def test_rollout_correction_defaults_are_todays_truncated_weights():
    correction = to_dataclass(compose_config()).algorithm.rollout_correction
    assert correction == RolloutCorrectionConfig(mode="token_truncate", c_low=0.5, c_high=2.0)


@pytest.mark.parametrize(
    "mode", ["none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]
)
def test_every_correction_mode_composes(mode):
    assert (
        compose_config([f"algorithm.rollout_correction.mode={mode}"]).algorithm.rollout_correction.mode
        == mode
    )


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["algorithm.rollout_correction.mode=tis"], "algorithm.rollout_correction.mode"),
        (["algorithm.rollout_correction.c_low=1.5"], "algorithm.rollout_correction.c_low"),
        (["algorithm.rollout_correction.c_high=0.9"], "algorithm.rollout_correction.c_high"),
        (["algorithm=sapo", "algorithm.sapo.tau_neg=0"], "algorithm.sapo.tau_neg"),
        (["algorithm=bandpo", "algorithm.bandpo.delta=-0.1"], "algorithm.bandpo.delta"),
        (["algorithm=sapo", "algorithm.clip_ratio_high=0.3"], "algorithm.clip_ratio_high"),
        (["algorithm=bandpo", "algorithm.clip_ratio_low=0.3"], "algorithm.clip_ratio_low"),
        (["algorithm.clip_ratio_low=1.2"], "algorithm.clip_ratio_low"),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        compose_config(overrides)


@pytest.mark.parametrize("key", ["trainer.is_correction=false", "trainer.is_truncation=3"])
def test_the_old_is_keys_moved_to_the_algorithm(key):
    with pytest.raises(ConfigError, match="unknown config key 'trainer.is_"):
        compose_config([key])


def test_cispo_may_set_no_lower_bound_and_dppo_its_deltas():
    cispo = compose_config(["algorithm=cispo", "algorithm.clip_ratio_low=1.0"]).algorithm
    assert cispo.clip_ratio_low == 1.0
    dppo = compose_config(["algorithm=dppo_tv", "algorithm.clip_ratio_high=0.2"]).algorithm
    assert dppo.clip_ratio_high == 0.2
