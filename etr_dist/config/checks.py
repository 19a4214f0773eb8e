"""Value checks on typed config nodes, shared by compose_config and the math layer's dict/dataclass path.

Each check raises ConfigError naming the full key; registry-backed names are checked by compose_config.
"""

from __future__ import annotations

from typing import Any

from etr_dist.config.schema import AlgorithmConfig, EtrConfig

# String options whose valid values are fixed here (not variants in a registry).
CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm.etr.budget": ("preserve", "absolute"),
    "algorithm.etr.side": ("both", "upper"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "learner.backend": ("auto", "gloo", "nccl"),
}


class ConfigError(ValueError):
    """A config key, value or override is wrong; the message names it."""


def _require(ok: bool, key: str, message: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"bad value for config key '{key}': {message}, got {value!r}")


def _check_choice(key: str, value: Any) -> None:
    allowed = CHOICES[key]
    if value not in allowed:
        raise ConfigError(f"bad value for config key '{key}': {value!r} is not one of {list(allowed)}")


def check_etr(etr: EtrConfig, prefix: str = "algorithm.etr") -> None:
    """The spec's knob rules: non-negative exponents and minima, ordered ranges, bases in (0, 1)."""
    for name in ("lambda_micro", "lambda_macro", "phi_min", "eps_min"):
        _require(getattr(etr, name) >= 0, f"{prefix}.{name}", "must be >= 0", getattr(etr, name))
    for name in ("eps_low_base", "eps_high_base"):
        _require(getattr(etr, name) > 0, f"{prefix}.{name}", "must be > 0", getattr(etr, name))
    _require(
        etr.eps_low_base < 1, f"{prefix}.eps_low_base", "must be < 1 (1 - eps_low > 0)", etr.eps_low_base
    )
    _require(
        etr.phi_min <= etr.phi_max, f"{prefix}.phi_max", f"must be >= phi_min={etr.phi_min}", etr.phi_max
    )
    _require(
        etr.eps_min <= etr.eps_max, f"{prefix}.eps_max", f"must be >= eps_min={etr.eps_min}", etr.eps_max
    )
    _check_choice("algorithm.etr.budget", etr.budget)
    _check_choice("algorithm.etr.side", etr.side)
    if etr.side == "both":
        _require(
            etr.eps_max < 1, f"{prefix}.eps_max", "must be < 1 while the lower bound is elastic", etr.eps_max
        )


def check_algorithm(algorithm: AlgorithmConfig, prefix: str = "algorithm") -> None:
    """Ranges of the loss settings, and clip_ratio_low/high, which ETR replaces, not set with ETR."""
    if algorithm.name == "etr":
        given = [k for k in ("clip_ratio_low", "clip_ratio_high") if getattr(algorithm, k) is not None]
        if given:
            raise ConfigError(
                f"config keys '{prefix}.clip_ratio_low' and '{prefix}.clip_ratio_high' do not apply to "
                f"{prefix}.name=etr (its bounds come from {prefix}.etr.eps_low_base/eps_high_base); "
                f"unset {given}"
            )
    low, high, dual = algorithm.clip_ratio_low, algorithm.clip_ratio_high, algorithm.clip_ratio_c
    if low is not None:
        _require(0 <= low < 1, f"{prefix}.clip_ratio_low", "must be in [0, 1) or null", low)
    if high is not None:
        _require(high >= 0, f"{prefix}.clip_ratio_high", "must be >= 0 or null", high)
    if dual is not None:
        _require(dual > 1, f"{prefix}.clip_ratio_c", "must be > 1 (or null = off)", dual)
    _require(
        len(algorithm.reward_range) == 2,
        f"{prefix}.reward_range",
        "must be [min, max]",
        algorithm.reward_range,
    )
    _require(
        algorithm.reward_range[1] > algorithm.reward_range[0],
        f"{prefix}.reward_range",
        "must be [min, max] with max > min",
        algorithm.reward_range,
    )
    for name in ("kl_coef", "entropy_coef"):
        _require(getattr(algorithm, name) >= 0, f"{prefix}.{name}", "must be >= 0", getattr(algorithm, name))
    check_etr(algorithm.etr, f"{prefix}.etr")


def check_root(cfg: Any) -> None:
    """Cross-group rules of a whole typed config (RootConfig)."""
    check_algorithm(cfg.algorithm)
    for key in ("model.dtype", "learner.backend"):
        group, name = key.split(".")
        _check_choice(key, getattr(getattr(cfg, group), name))
    learner, rollout, trainer = cfg.learner, cfg.rollout, cfg.trainer
    for key, value in (
        ("learner.num_ranks", learner.num_ranks),
        ("learner.ppo_mini_batches", learner.ppo_mini_batches),
        ("learner.ppo_epochs", learner.ppo_epochs),
        ("learner.micro_batch_size", learner.micro_batch_size),
        ("rollout.group_size", rollout.group_size),
        ("trainer.prompts_per_step", trainer.prompts_per_step),
    ):
        _require(value >= 1, key, "must be >= 1", value)
    rows = trainer.prompts_per_step * rollout.group_size
    needed = learner.num_ranks * learner.ppo_mini_batches
    if rows < needed:
        raise ConfigError(
            f"trainer.prompts_per_step x rollout.group_size = {rows} rows per step, fewer than "
            f"learner.num_ranks x learner.ppo_mini_batches = {needed}: every rank needs a row of every "
            "mini-batch; lower learner.ppo_mini_batches or raise trainer.prompts_per_step"
        )


def inert_trust_region_warning(cfg: Any) -> str | None:
    """A warning when a ratio-clipping loss gets one optimizer step per batch (its ratio is then always 1)."""
    learner = cfg.learner
    if learner.ppo_mini_batches * learner.ppo_epochs >= 2:
        return None
    return (
        f"algorithm.name={cfg.algorithm.name} clips the policy ratio, but learner.ppo_mini_batches x "
        "learner.ppo_epochs = 1 optimizer step per batch keeps the ratio at exactly 1: no trust region "
        "(static or elastic) can bind. Set learner.ppo_mini_batches >= 2 (default 4)."
    )
