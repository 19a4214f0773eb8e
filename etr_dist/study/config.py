"""A study config (configs/study/*.yaml): arms, seeds, shared overrides, eval sets and the primary metric, all
fixed before any run; and the plan of training runs it expands to, each composed and validated at load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from etr_dist.config import ConfigError, compose_config

STUDY_KEYS = {"name", "baseline", "primary_metric", "seeds", "overrides", "eval_sets", "arms"}
SEED_KEYS = ("trainer.seed", "rollout.seed", "learner.seed")  # a seed sets all three (docs/algorithms.md)


@dataclass(frozen=True)
class StudyConfig:
    name: str
    baseline: str  # the arm every other arm is compared with
    primary_metric: str  # e.g. eval/arithmetic/pass@1: the one the study is about, fixed before it runs
    seeds: list[int]
    arms: dict[str, list[str]]  # arm -> its own overrides (the arms differ only in algorithm.*)
    overrides: list[str] = field(
        default_factory=list
    )  # shared by every run (the study config's, then the CLI's)
    eval_sets: list[str] = field(default_factory=list)  # presets of configs/eval/ beside the held-out split


@dataclass(frozen=True)
class PlannedRun:
    arm: str
    seed: int
    overrides: list[str]  # the whole override list of `python -m etr_dist.train`, run_dir and resume included
    run_dir: Path
    evals_start: bool  # this run's step-0 evaluation is the one every arm of its seed reports

    @property
    def key(self) -> str:
        return f"{self.arm}_s{self.seed}"

    @property
    def log(self) -> Path:
        """<study>/logs/<key>.log: the run's output; every attempt appends to it."""
        return self.run_dir.parents[1] / "logs" / f"{self.key}.log"

    @property
    def done(self) -> Path:
        """<study>/runs/<key>.done: written when the run finished; a rerun of the study skips the run."""
        return self.run_dir.parent / f"{self.key}.done"

    @property
    def train_args(self) -> list[str]:
        """The arguments after the interpreter: `-m etr_dist.train <overrides>`."""
        return ["-m", "etr_dist.train", *self.overrides]


def load_study(path: Path, cli_overrides: list[str]) -> StudyConfig:
    """Read and check a study file; command-line overrides join the shared ones (after them)."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study config is a mapping with keys {sorted(STUDY_KEYS)}")
    unknown = sorted(set(raw) - STUDY_KEYS)
    missing = sorted({"name", "baseline", "primary_metric", "seeds", "arms"} - set(raw))
    if unknown or missing:
        raise ConfigError(f"{path}: unknown study keys {unknown}, missing {missing}")
    study = StudyConfig(
        name=str(raw["name"]),
        baseline=str(raw["baseline"]),
        primary_metric=str(raw["primary_metric"]),
        seeds=[int(s) for s in raw["seeds"]],
        arms={str(arm): [str(o) for o in overrides or []] for arm, overrides in raw["arms"].items()},
        overrides=[str(o) for o in raw.get("overrides") or []] + list(cli_overrides),
        eval_sets=[str(s) for s in raw.get("eval_sets") or []],
    )
    if study.baseline not in study.arms or len(study.arms) < 2:
        raise ConfigError(
            f"{path}: study.baseline={study.baseline!r} must be one of >= 2 arms {list(study.arms)}"
        )
    if not study.seeds or len(set(study.seeds)) < len(study.seeds):
        raise ConfigError(f"{path}: study.seeds must be distinct and not empty, got {study.seeds}")
    return study


def run_overrides(study: StudyConfig, arm: str, seed: int, run_dir: Path, evals_start: bool) -> list[str]:
    """Shared, then the arm's, then the run's own: its seed, folder, resume=auto and eval settings."""
    sets = ",".join(study.eval_sets)
    return [
        *study.overrides,
        *study.arms[arm],
        *(f"{key}={seed}" for key in SEED_KEYS),
        f"trainer.experiment={study.name}_{arm}_s{seed}",
        f"trainer.run_dir={run_dir}",
        "trainer.resume=auto",
        f"trainer.eval_sets=[{sets}]",
        f"trainer.eval_at_start={str(evals_start).lower()}",
        "logging.progress_bar=false",
    ]


def plan_runs(study: StudyConfig, folder: Path) -> list[PlannedRun]:
    """Seed-major (every arm of seed 0 first); the first arm of each seed runs the shared step-0 evaluation."""
    first = next(iter(study.arms))
    runs = []
    for seed in study.seeds:
        for arm in study.arms:
            run_dir = (folder / "runs" / f"{arm}_s{seed}").resolve()
            overrides = run_overrides(study, arm, seed, run_dir, evals_start=arm == first)
            runs.append(PlannedRun(arm, seed, overrides, run_dir, arm == first))
    return runs


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _flatten(child, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): node}


def compose_arms(study: StudyConfig) -> dict[str, dict[str, Any]]:
    """Each arm's composed config at the first seed (validated as training validates it); the arms must agree
    on every key outside algorithm.*, so they share the initial model, data and evaluation."""
    seed = study.seeds[0]
    composed = {}
    for arm in study.arms:
        overrides = run_overrides(study, arm, seed, Path("study_check"), evals_start=True)
        try:
            cfg = compose_config(overrides)
        except ConfigError as err:
            raise ConfigError(f"arm {arm!r}: {err}") from None
        composed[arm] = OmegaConf.to_container(cfg, resolve=True)
    flat = {
        arm: _flatten({k: v for k, v in cfg.items() if k != "algorithm"}) for arm, cfg in composed.items()
    }
    reference = flat[study.baseline]
    ignored = {"trainer.experiment"}
    for arm, keys in flat.items():
        differ = sorted(
            k for k in set(keys) | set(reference) if k not in ignored and keys.get(k) != reference.get(k)
        )
        if differ:
            raise ConfigError(
                f"arm {arm!r} differs from {study.baseline!r} outside algorithm.* in {differ}: the arms of a study "
                "may differ only in the algorithm (put shared settings in the study's overrides)"
            )
    metric = study.primary_metric
    names = [composed[study.baseline]["data"]["source"], *study.eval_sets]
    if not any(metric.startswith(f"eval/{name}/pass@") for name in names):
        raise ConfigError(f"primary_metric={metric!r} is not eval/<set>/pass@<k> for a set of {names}")
    return composed
