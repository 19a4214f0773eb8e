"""Checkpoint folders `step_<N>/`, an atomically replaced `latest` pointer, and keep-last-K pruning."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

DRIVER_STATE = "driver_state.json"
LATEST = "latest"


class CheckpointManager:
    def __init__(self, root: Path, keep_last: int = 2) -> None:
        self.root = Path(root)
        self.keep_last = keep_last
        self.root.mkdir(parents=True, exist_ok=True)

    def step_dir(self, step: int) -> Path:
        return self.root / f"step_{step}"

    def commit(self, step: int, driver_state: dict[str, Any]) -> Path:
        """Called once the learner state is in step_dir: write the driver state, then move `latest` to it."""
        folder = self.step_dir(step)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / DRIVER_STATE, json.dumps(driver_state, indent=2, sort_keys=True))
        _atomic_write(self.root / LATEST, folder.name)
        self._prune()
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

    def _prune(self) -> None:
        if self.keep_last <= 0:
            return
        steps = sorted(
            (int(p.name.removeprefix("step_")), p)
            for p in self.root.glob("step_*")
            if (p / DRIVER_STATE).is_file()
        )
        for _, folder in steps[: -self.keep_last]:
            shutil.rmtree(folder, ignore_errors=True)


def find_checkpoint(path: Path) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) from a run folder, its checkpoints/ folder or one step_<N> folder."""
    path = Path(path).resolve()
    if (path / "driver_state.json").is_file():
        return path.parents[1], path
    run_dir = path.parent if path.name == "checkpoints" else path
    latest = (
        CheckpointManager(run_dir / "checkpoints").latest() if (run_dir / "checkpoints").is_dir() else None
    )
    if latest is None:
        raise FileNotFoundError(f"no checkpoint under {path}: expected a run folder with checkpoints/latest")
    return run_dir, latest


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
