"""The range of every numeric config key and the rules between keys, checked at load (no imports, < 1 ms).

A value outside its range would otherwise fail after the cluster starts, sometimes hours in; here it fails
at once with the key's full name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from etr_dist.config.checks import CHOICES, ConfigError, check_algorithm, check_choice, parse_resources
from etr_dist.config.schema import TimeoutsConfig


@dataclass(frozen=True)
class Range:
    """A key's allowed values: ge/gt/le/lt bounds; `optional` lets null pass (null means 'unset')."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    optional: bool = False

    def describe(self) -> str:
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        words = " and ".join(f"{op} {bound:g}" for op, bound in bounds if bound is not None)
        return f"must be {words}" + (" (or null)" if self.optional else "")

    def admits(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )


POSITIVE, AT_LEAST_ONE, NON_NEGATIVE = Range(gt=0), Range(ge=1), Range(ge=0)
TIMEOUT_KEYS = tuple(f.name for f in fields(TimeoutsConfig))
RANGES: dict[str, Range] = {
    "data.train_size": Range(ge=1, optional=True),
    "data.eval_size": Range(ge=0, optional=True),
    "data.max_operand": AT_LEAST_ONE,
    "data.num_operands": Range(ge=2),
    "data.max_prompt_tokens": AT_LEAST_ONE,
    "rollout.num_workers": AT_LEAST_ONE,
    "rollout.group_size": Range(ge=2),
    "rollout.temperature": POSITIVE,
    "rollout.top_p": Range(gt=0, le=1),
    "rollout.max_new_tokens": AT_LEAST_ONE,
    "rollout.generate_batch_size": AT_LEAST_ONE,
    "rollout.prompts_per_request": AT_LEAST_ONE,
    "rollout.num_cpus_per_worker": NON_NEGATIVE,
    "rollout.num_gpus_per_worker": NON_NEGATIVE,
    "rollout.vllm.gpu_memory_utilization": Range(gt=0, le=1),
    "rollout.vllm.cpu_kvcache_gb": AT_LEAST_ONE,
    "rollout.vllm.max_model_len": AT_LEAST_ONE,
    "learner.num_ranks": AT_LEAST_ONE,
    "learner.zero_stage": Range(ge=0, le=3),
    "learner.lr": POSITIVE,
    "learner.warmup_steps": NON_NEGATIVE,
    "learner.weight_decay": NON_NEGATIVE,
    "learner.grad_clip": POSITIVE,
    "learner.micro_batch_size": AT_LEAST_ONE,
    "learner.ppo_mini_batches": AT_LEAST_ONE,
    "learner.ppo_epochs": AT_LEAST_ONE,
    "learner.logprob_chunk_size": AT_LEAST_ONE,
    "learner.num_cpus_per_rank": NON_NEGATIVE,
    "learner.num_gpus_per_rank": NON_NEGATIVE,
    "sync.bucket_mb": POSITIVE,
    "reward.num_workers": AT_LEAST_ONE,
    "reward.timeout_s": POSITIVE,
    "reward.max_input_chars": AT_LEAST_ONE,
    "reward.batch_timeout_s": POSITIVE,
    "reward.max_worker_start_failures": AT_LEAST_ONE,
    "reward.worker_memory_mb": NON_NEGATIVE,
    "cluster.num_cpus": Range(ge=1, optional=True),
    "cluster.num_gpus": Range(ge=0, optional=True),
    "cluster.max_actor_restarts": NON_NEGATIVE,
    "cluster.max_redispatch": NON_NEGATIVE,
    **{f"cluster.timeouts.{name}": POSITIVE for name in TIMEOUT_KEYS},
    "logging.samples_per_step": NON_NEGATIVE,
    "logging.log_every": AT_LEAST_ONE,
    "trainer.total_steps": AT_LEAST_ONE,
    "trainer.prompts_per_step": AT_LEAST_ONE,
    "trainer.max_refill_rounds": NON_NEGATIVE,
    "trainer.max_staleness": NON_NEGATIVE,
    "trainer.max_skipped_steps": AT_LEAST_ONE,
    "trainer.save_every": NON_NEGATIVE,
    "trainer.keep_last": AT_LEAST_ONE,
    "trainer.eval_every": NON_NEGATIVE,
    "trainer.eval_samples": AT_LEAST_ONE,
    "trainer.eval_temperature": NON_NEGATIVE,
}


def select(cfg: Any, key: str) -> Any:
    """cfg.a.b.c for key 'a.b.c' on the typed tree (None where a node is missing)."""
    node = cfg
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def check_ranges(cfg: Any) -> None:
    for key, allowed in RANGES.items():
        value = select(cfg, key)
        if not allowed.admits(value):
            raise ConfigError(f"bad value for config key '{key}': {allowed.describe()}, got {value!r}")
    for i, beta in enumerate(cfg.learner.betas):
        if not 0 <= beta < 1:
            raise ConfigError(
                f"bad value for config key 'learner.betas': each must be in [0, 1), got {beta} at {i}"
            )


def _rows_for_every_rank(cfg: Any) -> str | None:
    learner, rows = cfg.learner, cfg.trainer.prompts_per_step * cfg.rollout.group_size
    needed = learner.num_ranks * learner.ppo_mini_batches
    if rows < needed:
        return (
            f"trainer.prompts_per_step x rollout.group_size = {rows} rows per step, fewer than "
            f"learner.num_ranks x learner.ppo_mini_batches = {needed}: every rank needs a row of every "
            "mini-batch; lower learner.ppo_mini_batches or raise trainer.prompts_per_step"
        )
    return None


def _greedy_eval_with_samples(cfg: Any) -> str | None:
    trainer = cfg.trainer
    if trainer.eval_temperature == 0 and trainer.eval_samples > 1:
        return (
            f"trainer.eval_samples={trainer.eval_samples} with trainer.eval_temperature=0: greedy decoding gives "
            "one answer per prompt; set trainer.eval_temperature > 0 or trainer.eval_samples=1"
        )
    return None


def _vllm_context(cfg: Any) -> str | None:
    rollout, data = cfg.rollout, cfg.data
    needed = data.max_prompt_tokens + rollout.max_new_tokens
    if rollout.engine == "vllm" and needed > rollout.vllm.max_model_len:
        return (
            f"data.max_prompt_tokens + rollout.max_new_tokens = {needed} exceeds rollout.vllm.max_model_len="
            f"{rollout.vllm.max_model_len}: raise rollout.vllm.max_model_len or shorten one of them"
        )
    return None


def _eval_set_presets(cfg: Any) -> str | None:
    """trainer.eval_sets names presets of configs/eval/, each once, none the held-out split's own name."""
    names = list(cfg.trainer.eval_sets)
    if not names:
        return None
    from etr_dist.config.compose import default_config_dir  # here: compose imports this module

    folder = default_config_dir() / "eval"
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    unknown = [name for name in names if name not in known]
    if unknown:
        return f"trainer.eval_sets: no preset {unknown} in {folder}; presets: {known}"
    if len(set(names)) < len(names) or cfg.data.source in names:
        return (
            f"trainer.eval_sets={names}: name each preset once, and not {cfg.data.source!r} (the name of the "
            "config's own held-out split, which is always scored)"
        )
    return None


def _experiment_name(cfg: Any) -> str | None:
    """trainer.experiment names a folder under trainer.output_dir: one path part of safe characters."""
    name = cfg.trainer.experiment
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or set(name) == {"."}:
        return (
            f"trainer.experiment={name!r} is not a usable folder name: use only letters, digits, '.', '_' "
            "and '-' (it becomes <trainer.output_dir>/<experiment>/)"
        )
    return None


def _resume_target(cfg: Any) -> str | None:
    resume = cfg.trainer.resume
    if resume not in ("never", "auto") and not Path(resume).exists():
        return f"trainer.resume={resume!r} is neither never, auto nor an existing run folder or checkpoint"
    return None


def _local_cluster_resources(cfg: Any) -> str | None:
    """A local cluster (no cluster.address, no RAY_ADDRESS) has a known size: every role must fit in it."""
    cluster = cfg.cluster
    if cluster.address or os.environ.get("RAY_ADDRESS"):
        return None
    learner, rollout = cfg.learner, cfg.rollout
    cpus = (
        learner.num_ranks * learner.num_cpus_per_rank
        + rollout.num_workers * rollout.num_cpus_per_worker
        + cfg.reward.num_workers
    )
    if cluster.num_cpus is not None and cpus > cluster.num_cpus:
        return (
            f"the roles ask for {cpus:g} CPUs (learner.num_ranks x learner.num_cpus_per_rank + rollout.num_workers x "
            f"rollout.num_cpus_per_worker + reward.num_workers) but the local cluster has cluster.num_cpus="
            f"{cluster.num_cpus}: Ray could never place them all"
        )
    gpus = learner.num_ranks * learner.num_gpus_per_rank + rollout.num_workers * rollout.num_gpus_per_worker
    if gpus > 0 and gpus > (cluster.num_gpus or 0):
        return (
            f"the roles ask for {gpus:g} GPUs but the local cluster has cluster.num_gpus={cluster.num_gpus}: "
            "set cluster.num_gpus (or cluster.address to join a GPU cluster)"
        )
    return None


CROSS_RULES: tuple[Callable[[Any], str | None], ...] = (
    _rows_for_every_rank,
    _greedy_eval_with_samples,
    _vllm_context,
    _experiment_name,
    _eval_set_presets,
    _resume_target,
    _local_cluster_resources,
)


def check_cross_rules(cfg: Any) -> None:
    for rule in CROSS_RULES:
        problem = rule(cfg)
        if problem:
            raise ConfigError(problem)


def check_root(cfg: Any) -> None:
    """Every value check of a whole typed config (RootConfig): ranges, choices, the loss's rules, cross rules."""
    check_ranges(cfg)
    for key in CHOICES:
        if not key.startswith("algorithm."):  # check_algorithm checks those with the loss's rules
            check_choice(key, select(cfg, key))
    for role in ("learner", "rollout", "grader"):
        parse_resources(getattr(cfg.cluster.roles, role).resources, f"cluster.roles.{role}.resources")
    check_algorithm(cfg.algorithm)
    check_cross_rules(cfg)
