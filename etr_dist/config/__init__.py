"""Typed, Hydra-composed configuration (no Ray, DeepSpeed or vLLM here)."""

from etr_dist.config.compose import ConfigError, compose_config, default_config_dir, to_dataclass
from etr_dist.config.schema import RootConfig

__all__ = ["ConfigError", "RootConfig", "compose_config", "default_config_dir", "to_dataclass"]
