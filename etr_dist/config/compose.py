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
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from etr_dist.config.checks import ConfigError
from etr_dist.config.ranges import check_root
from etr_dist.config.schema import RootConfig
from etr_dist.registry import registered_names

SCHEMA_NAME = "etr_dist_schema"

# Keys that must be set when another key takes a value: (key, value) -> required key.
REQUIRED_WHEN: dict[tuple[str, str], str] = {
    ("model.source", "hf"): "model.path",
    ("data.source", "jsonl"): "data.train_path",
    ("data.source", "parquet"): "data.train_path",
}


def default_config_dir() -> Path:
    """$ETR_DIST_CONFIG_DIR, else configs/ beside the package (checkout, Ray working_dir), else ./configs."""
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
        for key in node:
            path = f"{prefix}{key}"
            keys.append(path)
            keys.extend(_all_keys(node._get_node(key), f"{path}."))
    return keys


def _explain(err: Exception, known: list[str]) -> str:
    """Turn Hydra/OmegaConf errors (the useful part is often in __cause__) into one line naming the key."""
    cause = err
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause)
    first = text.strip().splitlines()[0]
    if first.endswith("raised while composing config:"):
        first = text.strip().splitlines()[1]
    match = re.search(r"full_key: ([\w.\[\]]+)", text)
    if isinstance(err, MissingConfigException):
        options = re.findall(r"^\t(\w+)$", str(err), flags=re.M)
        missing = first.removeprefix("In 'config': ")
        return f"{missing}; available: {options}"
    if not match:
        return first
    key = match.group(1)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or re.search(r"Key '[^']+' not in", text):
        return f"unknown config key '{key}'{_suggest(key, known)}"
    return f"bad value for config key '{key}': {first}"


def _suggest(key: str, known: list[str]) -> str:
    parent, _, name = key.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
    hint = difflib.get_close_matches(name, siblings, n=1, cutoff=0.7)
    return f" (did you mean '{parent + '.' if parent else ''}{hint[0]}'?)" if hint else ""


def _reject_unknown_keys(cfg: DictConfig, known: list[str]) -> None:
    """`+new_key=...` can add keys the schema does not know; name the first one."""
    unknown = sorted(set(_all_keys(cfg)) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'{_suggest(unknown[0], known)}")


def validate_registered_names(cfg: DictConfig) -> None:
    """Each registry-backed key (algorithm.name, rollout.engine, ...) names a variant its registry holds."""
    try:
        known = registered_names(cfg.plugins)
    except ImportError as err:
        raise ConfigError(str(err)) from None
    for key, names in known.items():
        value = OmegaConf.select(cfg, key)
        if value not in names:
            raise ConfigError(f"bad value for config key '{key}': {value!r} is not one of {names}")


def validate_required(cfg: DictConfig) -> None:
    for (key, value), required in REQUIRED_WHEN.items():
        if OmegaConf.select(cfg, key) == value and OmegaConf.select(cfg, required) is None:
            raise ConfigError(f"config key '{required}' must be set when {key}={value}")


def check_override_syntax(overrides: list[str]) -> None:
    """Parse each override alone, so a syntax error names the override it is in."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except HydraException as err:
            reason = str(err).strip().splitlines()[0]
            raise ConfigError(
                f"cannot parse override {override!r}: {reason} (quote values with spaces or braces: "
                "'key=\"a {b} c\"')"
            ) from None


def compose_config(overrides: list[str] | None = None, config_dir: str | Path | None = None) -> DictConfig:
    """Compose configs/config.yaml with Hydra-style overrides (`group=option`, `a.b.c=value`, `+new=...`)."""
    _register_schema()
    directory = Path(config_dir).resolve() if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in config directory {directory}")
    check_override_syntax(list(overrides or []))
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
    _reject_unknown_keys(cfg, known)
    validate_required(cfg)
    check_root(to_dataclass(cfg))  # value checks first: they need no imports
    validate_registered_names(cfg)
    return cfg


def to_dataclass(cfg: DictConfig) -> RootConfig:
    """The typed tree: each role takes its own node of it (cfg.learner, cfg.algorithm, ...)."""
    return OmegaConf.to_object(cfg)
