"""Checkpoint folders `step_<N>/`, an atomically replaced `latest` pointer, and keep-last-K pruning.

A step is written under a staging name (`.step_<N>.staging/`), fsynced, then renamed; only then does `latest`
move to it. A crash at any point leaves `latest` on a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

DRIVER_STATE = "driver_state.json"
LATEST = "latest"
# Keys a resume may not change: the learner's ZeRO shards, the model, and what the prompt stream position means.
RESUME_FIXED_KEYS = (
    "learner.num_ranks",
    "learner.zero_stage",
    "learner.warmup_steps",  # the lr scheduler's state is in the checkpoint: DeepSpeed cannot load it into another
    "model.source",
    "model.path",
    "model.dtype",
    "data.source",
    "data.train_path",
    "data.seed",
    "data.train_size",
    "trainer.seed",
)


class CheckpointManager:
    def __init__(self, root: Path, keep_last: int = 2) -> None:
        self.root = Path(root)
        self.keep_last = keep_last
        self.root.mkdir(parents=True, exist_ok=True)

    def step_dir(self, step: int) -> Path:
        return self.root / f"step_{step}"

    def staging_dir(self, step: int) -> Path:
        """Where the learner writes step `step` before commit() renames it into place."""
        folder = self.root / f".step_{step}.staging"
        shutil.rmtree(folder, ignore_errors=True)  # a crash mid-save left it: start clean
        folder.mkdir(parents=True)
        return folder

    def commit(self, step: int, driver_state: dict[str, Any]) -> Path:
        """Once the learner state is in staging_dir(step): driver state, fsync, rename, move `latest`, prune."""
        staging = self.root / f".step_{step}.staging"
        staging.mkdir(parents=True, exist_ok=True)
        _atomic_write(staging / DRIVER_STATE, json.dumps(driver_state, indent=2, sort_keys=True))
        _fsync_tree(staging)
        folder = self.step_dir(step)
        if folder.exists():  # a resumed run saving a step again (the old one is not `latest` beyond it)
            shutil.rmtree(folder)
        os.replace(staging, folder)
        _fsync_dir(self.root)
        _atomic_write(self.root / LATEST, folder.name)
        self._prune(step)
        return folder

    def latest(self) -> Path | None:
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        folder = self.root / pointer.read_text().strip()
        if not (folder / DRIVER_STATE).is_file():
            raise FileNotFoundError(
                f"checkpoint pointer {pointer} names {folder}, which has no {DRIVER_STATE}"
            )
        return folder

    @staticmethod
    def driver_state(folder: Path) -> dict[str, Any]:
        return json.loads((Path(folder) / DRIVER_STATE).read_text())

    def _prune(self, committed: int) -> None:
        """Keep the last K committed steps up to `committed`; never touch a step after it."""
        steps = sorted(
            (int(p.name.removeprefix("step_")), p)
            for p in self.root.glob("step_*")
            if (p / DRIVER_STATE).is_file() and int(p.name.removeprefix("step_")) <= committed
        )
        for _, folder in steps[: -self.keep_last]:
            shutil.rmtree(folder, ignore_errors=True)


def find_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) from a run folder, its checkpoints/ folder or one step_<N> folder."""
    path = Path(path).resolve()
    if (path / DRIVER_STATE).is_file():
        return path.parents[1], path
    run_dir = path.parent if path.name == "checkpoints" else path
    latest = (
        CheckpointManager(run_dir / "checkpoints").latest() if (run_dir / "checkpoints").is_dir() else None
    )
    if latest is None:
        raise FileNotFoundError(
            f"no checkpoint under {path}: expected a run folder with checkpoints/latest. A run saves one every "
            "trainer.save_every steps and at its end (save_every=0 saves none)"
        )
    return run_dir, latest


def incompatible_resume(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first RESUME_FIXED_KEYS value the current config changes from the checkpoint's, as a message.

    `saved` is the checkpoint's resolved config; checkpoints written before configs were stored have none.
    """
    if not isinstance(saved, dict):
        return None
    for key in RESUME_FIXED_KEYS:
        before, now = _select(saved, key), _select(current, key)
        if before != now:
            return (
                f"cannot resume: config key '{key}' was {before!r} when the checkpoint was saved and is {now!r} "
                "now (it must stay the same across a resume); start a new run instead"
            )
    return None


def _select(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under root reaches the disk before the rename that publishes it."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(Path(folder) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(folder))
