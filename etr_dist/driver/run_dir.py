"""The run folder of design.md: runs/<experiment>/<timestamp>/ with the resolved config beside the outputs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from etr_dist.config.schema import TrainerConfig
from etr_dist.driver.checkpoint import LATEST, CheckpointManager, find_checkpoint, incompatible_resume
from etr_dist.reward.grader import grader_version


def resume_mismatch(saved: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """Why a checkpoint's config is not this run's: a key a resume may not change, or another algorithm."""
    problem = incompatible_resume(saved, current)
    if problem or not isinstance(saved, dict) or saved.get("algorithm") == current.get("algorithm"):
        return problem
    before, now = _leaves(saved.get("algorithm") or {}), _leaves(current["algorithm"])
    key = next(k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k))
    return (
        f"config key 'algorithm.{key}' was {before.get(key)!r} in its checkpoint and is {now.get(key)!r} now"
    )


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def find_matching_run(experiment: Path, current: dict[str, Any]) -> tuple[Path, Path] | None:
    """`resume=auto` without run_dir: the newest run of the experiment whose checkpoint's config is this one's
    (same algorithm, no fixed key changed); says which it picked and why each newer run was skipped."""
    runs = sorted((p for p in experiment.glob("*") if (p / "checkpoints" / LATEST).is_file()), reverse=True)
    skipped: list[str] = []
    for run in runs:
        checkpoint = CheckpointManager(run / "checkpoints").latest()
        problem = resume_mismatch(CheckpointManager.driver_state(checkpoint).get("config"), current)
        if problem is None:
            for line in skipped:
                print(line, flush=True)
            print(
                f"etr_dist: trainer.resume=auto: picked {run}, the newest run of {experiment.name} whose "
                "checkpoint's config matches this one",
                flush=True,
            )
            return run, checkpoint
        skipped.append(f"etr_dist: trainer.resume=auto: skipped {run}: {problem}")
    for line in skipped:
        print(line, flush=True)
    return None


def auto_resume_target(trainer: TrainerConfig, current: dict[str, Any]) -> tuple[Path, Path] | None:
    """`resume=auto`: (run, checkpoint) of trainer.run_dir, else of the newest matching run; None: a new run."""
    if trainer.run_dir:
        checkpoint = CheckpointManager(Path(trainer.run_dir) / "checkpoints").latest()
        found = (Path(trainer.run_dir), checkpoint) if checkpoint is not None else None
    else:
        found = find_matching_run(Path(trainer.output_dir) / trainer.experiment, current)
    if found is None:
        where = trainer.run_dir or Path(trainer.output_dir) / trainer.experiment
        print(
            f"etr_dist: trainer.resume=auto found no checkpoint under {where} to continue: starting a new run",
            flush=True,
        )
    return found


def prepare_run_dir(cfg: DictConfig) -> Path:
    """The run's folder: new, or the one a resume continues (checked compatible before anything starts)."""
    trainer: TrainerConfig = cfg.trainer
    current = OmegaConf.to_container(cfg, resolve=True)
    run_dir = checkpoint = None
    if trainer.resume == "auto":
        run_dir, checkpoint = auto_resume_target(trainer, current) or (None, None)
    elif trainer.resume != "never":
        run_dir, checkpoint = find_checkpoint(Path(trainer.resume))
    if checkpoint is not None:
        saved = CheckpointManager.driver_state(checkpoint).get("config")
        problem = incompatible_resume(saved, current)
        if problem:
            raise ValueError(f"{problem} (checkpoint {checkpoint})")
        print(f"etr_dist: resuming {run_dir} from {checkpoint.name}", flush=True)
    if run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = (
            Path(trainer.run_dir)
            if trainer.run_dir
            else Path(trainer.output_dir) / trainer.experiment / stamp
        )
        refuse_reused_run_dir(run_dir)
    for sub in ("tensorboard", "checkpoints", "samples"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(with_grader_version(cfg), resolve=True))
    return run_dir


def with_grader_version(cfg: DictConfig) -> DictConfig:
    """A copy whose reward.grader_version names the built-in grader's version (a grader change changes the
    rewards, so a run records which grader scored it); null with a custom reward.fn."""
    recorded = cfg.copy()
    recorded.reward.grader_version = grader_version() if cfg.reward.fn is None else None
    return recorded


def refuse_reused_run_dir(run_dir: Path) -> None:
    """A new run never writes into a folder that holds another run's metrics or checkpoints."""
    if (run_dir / "metrics.jsonl").is_file() or (run_dir / "checkpoints" / LATEST).is_file():
        raise FileExistsError(
            f"trainer.run_dir={run_dir} already holds a run: continue it with trainer.resume=auto, "
            "or choose another trainer.run_dir"
        )
