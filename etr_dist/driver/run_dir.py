"""The run folder of design.md: runs/<experiment>/<timestamp>/ with the resolved config beside the outputs."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from etr_dist.config.schema import TrainerConfig
from etr_dist.driver.checkpoint import LATEST, CheckpointManager, find_checkpoint, incompatible_resume
from etr_dist.reward.grader import grader_version


def find_resumable_run(trainer: TrainerConfig) -> Path | None:
    """`resume=auto`: the given run_dir, else the newest run of this experiment that has a checkpoint."""
    if trainer.run_dir:
        return Path(trainer.run_dir) if (Path(trainer.run_dir) / "checkpoints" / LATEST).is_file() else None
    experiment = Path(trainer.output_dir) / trainer.experiment
    runs = sorted(p for p in experiment.glob("*") if (p / "checkpoints" / LATEST).is_file())
    return runs[-1] if runs else None


def prepare_run_dir(cfg: DictConfig) -> Path:
    """The run's folder: new, or the one a resume continues (checked compatible before anything starts)."""
    trainer: TrainerConfig = cfg.trainer
    run_dir = checkpoint = None
    if trainer.resume == "auto":
        run_dir = find_resumable_run(trainer)
        if run_dir is None:
            where = trainer.run_dir or Path(trainer.output_dir) / trainer.experiment
            print(
                f"etr_dist: trainer.resume=auto found no checkpoint under {where}: starting a new run",
                flush=True,
            )
        else:
            checkpoint = CheckpointManager(run_dir / "checkpoints").latest()
    elif trainer.resume != "never":
        run_dir, checkpoint = find_checkpoint(Path(trainer.resume))
    if checkpoint is not None:
        saved = CheckpointManager.driver_state(checkpoint).get("config")
        problem = incompatible_resume(saved, OmegaConf.to_container(cfg, resolve=True))
        if problem:
            raise ValueError(f"{problem} (checkpoint {checkpoint})")
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
