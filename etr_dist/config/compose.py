"""Compose the Hydra config tree into a validated, typed config; every error names the offending key."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from etr_dist.config.schema import RootConfig

SCHEMA_NAME = "etr_dist_schema"

# String options whose valid values are fixed by this layer (registry names are checked by their registries).
CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm.adv_estimator": ("grpo", "dr_grpo", "rloo"),
    "algorithm.name": ("grpo", "clip_higher", "gspo", "etr"),
    "algorithm.loss_agg_mode": (
        "token-mean",
        "seq-mean-token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-sum-norm",
    ),
    "algorithm.kl_estimator": ("k1", "k2", "k3"),
    "algorithm.etr.macro_mode": ("clip", "weight"),
    "algorithm.etr.side": ("both", "upper"),
    "model.source": ("tiny", "smollm2", "hf"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "data.source": ("arithmetic", "gsm_symbolic", "jsonl", "parquet"),
    "rollout.engine": ("hf", "vllm"),
    "learner.backend": ("auto", "gloo", "nccl"),
    "sync.transport": ("object_store", "nccl"),
}


class ConfigError(ValueError):
    """A config key, value or override is wrong; the message names it."""


def default_config_dir() -> Path:
    """configs/ beside the package (source checkout, Ray working_dir), else $ETR_DIST_CONFIG_DIR or ./configs."""
    env = os.environ.get("ETR_DIST_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    beside = Path(__file__).resolve().parents[2] / "configs"
    return beside if beside.is_dir() else Path.cwd().resolve() / "configs"


def _register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RootConfig)


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}{key}"
            keys.append(path)
            keys.extend(_all_keys(node._get_node(key), f"{path}."))
    return keys


def _explain(err: Exception, known: list[str]) -> str:
    text = str(err)
    match = re.search(r"full_key: ([\w.\[\]]+)", text) or re.search(r"override '([\w.]+)", text)
    key = match.group(1) if match else None
    first = text.strip().splitlines()[0]
    if key and ("not in struct" in text or "Key '" in text and "not in" in text):
        hint = difflib.get_close_matches(key, known, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown config key '{key}'{suggestion}"
    if key:
        return f"bad value for config key '{key}': {first}"
    return first


def validate_choices(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"bad value for config key '{key}': {value!r} is not one of {list(allowed)}")


def compose_config(overrides: list[str] | None = None, config_dir: str | Path | None = None) -> DictConfig:
    """Compose configs/config.yaml with Hydra-style overrides (`group=option`, `a.b.c=value`, `+new=...`)."""
    _register_schema()
    directory = Path(config_dir).resolve() if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in config directory {directory}")
    known = _all_keys(OmegaConf.structured(RootConfig))
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides or []))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_explain(err, known)) from None
    finally:
        GlobalHydra.instance().clear()
    validate_choices(cfg)
    return cfg


def to_dataclass(cfg: DictConfig) -> RootConfig:
    return OmegaConf.to_object(cfg)
