"""Read the `algorithm` config node (dict, OmegaConf node or dataclass) into a checked AlgorithmConfig."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from etr_dist.config.checks import ConfigError, check_algorithm
from etr_dist.config.schema import AlgorithmConfig

_ALGORITHM_KEYS = {f.name for f in dataclasses.fields(AlgorithmConfig)}
# nested nodes (algorithm.etr, .sapo, .bandpo, .rollout_correction): key -> their dataclass
_NODES = {
    f.name: f.default_factory
    for f in dataclasses.fields(AlgorithmConfig)
    if dataclasses.is_dataclass(f.default_factory)
}


def _as_dict(node: Any, where: str) -> dict[str, Any]:
    if node is None:
        return {}
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return {str(key): node[key] for key in node}
    raise TypeError(f"{where} must be a dict, an OmegaConf node or a dataclass, got {type(node).__name__}")


def _reject_unknown(given: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")


def read_algorithm_config(config: Any, loss_mode: str | None = None) -> AlgorithmConfig:
    """Missing keys take the schema's defaults (clip ranges: None = the loss's own); bad keys or values raise.

    The same node gives the same AlgorithmConfig whichever form it comes in. loss_mode, when given, is the
    loss the config is read for: it replaces `name`, so the rules that depend on the loss check that one.
    """
    if isinstance(config, AlgorithmConfig):
        algorithm = config
    else:
        given = _as_dict(config, "algorithm config")
        _reject_unknown(given, _ALGORITHM_KEYS, "algorithm config")
        nodes = {}
        for key, node_type in _NODES.items():
            node_given = _as_dict(given.pop(key, None), f"algorithm.{key}")
            _reject_unknown(node_given, {f.name for f in dataclasses.fields(node_type)}, f"algorithm.{key}")
            nodes[key] = node_type(**node_given)
        algorithm = AlgorithmConfig(**given, **nodes)
    if loss_mode is not None and loss_mode != algorithm.name:
        algorithm = dataclasses.replace(algorithm, name=loss_mode)
    check_algorithm(algorithm)
    return algorithm


def clip_range(algorithm: AlgorithmConfig, default_low: float, default_high: float) -> tuple[float, float]:
    """(eps_low, eps_high): the config's clip_ratio_low/high where set, else the loss's own defaults."""
    low = default_low if algorithm.clip_ratio_low is None else algorithm.clip_ratio_low
    high = default_high if algorithm.clip_ratio_high is None else algorithm.clip_ratio_high
    return low, high
