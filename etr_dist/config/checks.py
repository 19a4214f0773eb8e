"""Value checks on typed config nodes, shared by compose_config and the math layer's dict/dataclass path.

Each check raises ConfigError naming the full key; registry-backed names are checked by compose_config.
"""

from __future__ import annotations

from typing import Any

from etr_dist.config.schema import AlgorithmConfig, EtrConfig, RolloutCorrectionConfig

# String options whose valid values are fixed here (not variants in a registry).
CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm.etr.budget": ("preserve", "absolute"),
    "algorithm.etr.side": ("both", "upper"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "learner.backend": ("auto", "gloo", "nccl"),
    **{
        f"cluster.roles.{role}.strategy": ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
        for role in ("learner", "rollout", "grader")
    },
}


# Losses whose bounds do not come from clip_ratio_low/high: setting those keys with them is an error.
OWN_BOUNDS: dict[str, str] = {
    "etr": "its bounds come from {prefix}.etr.eps_low_base/eps_high_base",
    "sapo": "it has a soft gate, no clip: {prefix}.sapo.tau_pos/tau_neg",
    "bandpo": "its bounds come from {prefix}.bandpo.delta",
}


class ConfigError(ValueError):
    """A config key, value or override is wrong; the message names it."""


def _require(ok: bool, key: str, message: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"bad value for config key '{key}': {message}, got {value!r}")


def check_choice(key: str, value: Any) -> None:
    """value is one of CHOICES[key], else a ConfigError naming the key."""
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
    check_choice("algorithm.etr.budget", etr.budget)
    check_choice("algorithm.etr.side", etr.side)
    if etr.side == "both":
        _require(
            etr.eps_max < 1, f"{prefix}.eps_max", "must be < 1 while the lower bound is elastic", etr.eps_max
        )


def check_rollout_correction(correction: RolloutCorrectionConfig, prefix: str) -> None:
    """Thresholds around 1 (an on-policy token, w = 1, is never masked); the mode is a registry name."""
    _require(0 <= correction.c_low <= 1, f"{prefix}.c_low", "must be in [0, 1]", correction.c_low)
    _require(correction.c_high >= 1, f"{prefix}.c_high", "must be >= 1", correction.c_high)


def check_algorithm(algorithm: AlgorithmConfig, prefix: str = "algorithm") -> None:
    """Ranges of the loss settings; clip_ratio_low/high not set with a loss that has its own bounds."""
    if algorithm.name in OWN_BOUNDS:
        given = [k for k in ("clip_ratio_low", "clip_ratio_high") if getattr(algorithm, k) is not None]
        if given:
            reason = OWN_BOUNDS[algorithm.name].format(prefix=prefix)
            raise ConfigError(
                f"config keys '{prefix}.clip_ratio_low' and '{prefix}.clip_ratio_high' do not apply to "
                f"{prefix}.name={algorithm.name} ({reason}); unset {given}"
            )
    low, high, dual = algorithm.clip_ratio_low, algorithm.clip_ratio_high, algorithm.clip_ratio_c
    if low is not None:
        _require(0 <= low <= 1, f"{prefix}.clip_ratio_low", "must be in [0, 1] or null", low)
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
    for name in ("tau_pos", "tau_neg"):
        value = getattr(algorithm.sapo, name)
        _require(value > 0, f"{prefix}.sapo.{name}", "must be > 0", value)
    _require(algorithm.bandpo.delta > 0, f"{prefix}.bandpo.delta", "must be > 0", algorithm.bandpo.delta)
    check_rollout_correction(algorithm.rollout_correction, f"{prefix}.rollout_correction")


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


def parse_resources(entries: list[str], key: str) -> dict[str, float]:
    """cluster.roles.<role>.resources: "name:amount" entries (amount > 0) as Ray's resource dict."""
    resources = {}
    for entry in entries:
        name, _, amount = str(entry).partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = 0.0
        if not name or value <= 0 or name in ("CPU", "GPU", "memory"):
            raise ConfigError(
                f"bad value for config key '{key}': {entry!r} is not 'name:amount' with a custom resource name "
                "and an amount > 0 (CPUs and GPUs come from the role's num_cpus/num_gpus keys)"
            )
        resources[name] = value
    return resources
