"""Read the `algorithm` config node (dict, OmegaConf node or dataclass) into typed loss settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from etr_dist.config.compose import CHOICES
from etr_dist.config.schema import AlgorithmConfig, EtrConfig

_ALGORITHM_KEYS = {f.name for f in dataclasses.fields(AlgorithmConfig)}
_ETR_KEYS = {f.name for f in dataclasses.fields(EtrConfig)}


@dataclass(frozen=True)
class LossSettings:
    """clip_ratio_low/high are None when the config does not set them: each loss then uses its own default."""

    clip_ratio_low: float | None = None
    clip_ratio_high: float | None = None
    clip_ratio_c: float | None = AlgorithmConfig.clip_ratio_c
    loss_agg_mode: str = AlgorithmConfig.loss_agg_mode
    etr: EtrConfig = field(default_factory=EtrConfig)


def _as_dict(node: Any, where: str) -> dict[str, Any]:
    if node is None:
        return {}
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    if isinstance(node, Mapping):
        return {str(key): node[key] for key in node}
    raise TypeError(f"{where} must be a dict, an OmegaConf node or a dataclass, got {type(node).__name__}")


def _reject_unknown(given: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")


def read_loss_settings(config: Any) -> LossSettings:
    """Missing keys take the spec's defaults; unknown keys and invalid values raise, naming the key."""
    algorithm = _as_dict(config, "algorithm config")
    _reject_unknown(algorithm, _ALGORITHM_KEYS, "algorithm config")
    etr_given = _as_dict(algorithm.get("etr"), "algorithm.etr")
    _reject_unknown(etr_given, _ETR_KEYS, "algorithm.etr")
    etr = dataclasses.replace(EtrConfig(), **etr_given)
    for key in ("macro_mode", "side"):
        allowed = CHOICES[f"algorithm.etr.{key}"]
        if getattr(etr, key) not in allowed:
            raise ValueError(f"algorithm.etr.{key} must be one of {allowed}, got {getattr(etr, key)!r}")
    clip_ratio_c = algorithm.get("clip_ratio_c", LossSettings.clip_ratio_c)
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"algorithm.clip_ratio_c must be > 1 (or null = off), got {clip_ratio_c}")
    return LossSettings(
        clip_ratio_low=algorithm.get("clip_ratio_low"),
        clip_ratio_high=algorithm.get("clip_ratio_high"),
        clip_ratio_c=clip_ratio_c,
        loss_agg_mode=algorithm.get("loss_agg_mode", LossSettings.loss_agg_mode),
        etr=etr,
    )
