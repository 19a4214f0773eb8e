"""One sink for every step's metrics: TensorBoard scalars and histograms, metrics.jsonl and a console bar."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class MetricsLogger:
    def __init__(
        self, run_dir: Path, tensorboard: bool = True, progress_bar: bool = True, total_steps: int = 0
    ):
        self.run_dir = Path(run_dir)
        self.tensorboard_dir = self.run_dir / "tensorboard"
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
        self._progress = None
        if progress_bar:
            self._progress = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("{task.fields[summary]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task("train", total=total_steps, summary="")
            self._progress.start()

    def log(
        self, step: int, metrics: dict[str, float], histograms: dict[str, Sequence[float]] | None = None
    ) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        self._jsonl.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        self._jsonl.flush()
        if self._writer is not None:
            for name, value in clean.items():
                self._writer.add_scalar(name, value, step)
            for name, values in (histograms or {}).items():
                if len(values):
                    self._writer.add_histogram(name, np.asarray(values, dtype=np.float64), step, bins=10)
            self._writer.flush()

    def advance(self, step: int, metrics: dict[str, Any]) -> None:
        if self._progress is None:
            return
        parts = [
            f"acc {metrics.get('reward/accuracy', float('nan')):.3f}",
            f"entropy {metrics.get('actor/entropy', float('nan')):.3f}",
            f"{metrics.get('perf/tokens_per_s', float('nan')):.0f} tok/s",
        ]
        self._progress.update(self._task, completed=step, summary=" | ".join(parts))

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._writer is not None:
            self._writer.close()
        self._jsonl.close()
