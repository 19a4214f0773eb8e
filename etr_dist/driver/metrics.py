"""One sink for every step's metrics: TensorBoard scalars and histograms, metrics.jsonl, and on the console a
progress bar in a terminal or one plain line per step elsewhere (a Ray job log, a file, a pipe)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        tensorboard: bool = True,
        progress_bar: bool = True,
        total_steps: int = 0,
        start_step: int = 0,
    ):
        """start_step > 0 (a resume): rows and events of later steps, from the run that crashed, are dropped,
        so every step is logged once."""
        self.run_dir = Path(run_dir)
        self.tensorboard_dir = self.run_dir / "tensorboard"
        jsonl = self.run_dir / "metrics.jsonl"
        _drop_rows_after(jsonl, start_step)
        self._jsonl = open(jsonl, "a", encoding="utf-8")  # noqa: SIM115
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = start_step + 1 if start_step > 0 else None
            self._writer = SummaryWriter(log_dir=str(self.tensorboard_dir), purge_step=purge)
        self.total_steps = total_steps
        # a bar redraws in place, which a job log cannot show: anywhere but a terminal, one line per step
        self._plain_lines = not sys.stdout.isatty()
        self._progress = None
        if progress_bar and not self._plain_lines:
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
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        clean = {k: v for k, v in values.items() if math.isfinite(v)}
        nonfinite = sorted(set(values) - set(clean))  # never dropped silently: counted, named and warned
        clean["health/nonfinite_metrics"] = float(len(nonfinite))
        row = {"step": step, **clean, **({"nonfinite": nonfinite} if nonfinite else {})}
        if nonfinite:
            print(
                f"etr_dist: warning: step {step}: non-finite metrics {nonfinite}", file=sys.stderr, flush=True
            )
        self._jsonl.write(json.dumps(row, sort_keys=True) + "\n")
        self._jsonl.flush()
        if self._writer is not None:
            for name, value in clean.items():
                self._writer.add_scalar(name, value, step)
            for name, values in (histograms or {}).items():
                if len(values):
                    self._writer.add_histogram(name, np.asarray(values, dtype=np.float64), step, bins=10)
            self._writer.flush()

    def advance(self, step: int, metrics: dict[str, Any]) -> None:
        if self._plain_lines:
            print(step_line(step, self.total_steps, metrics), flush=True)
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


STEP_LINE_FIELDS = (  # (label, metric, format) of the plain per-step line
    ("reward", "critic/score/mean", "{:.3f}"),
    ("pass rate", "reward/accuracy", "{:.3f}"),
    ("entropy", "actor/entropy", "{:.3f}"),
    ("response len", "response_length/mean", "{:.0f}"),
    ("gen", "timing_s/gen", "{:.1f}s"),
    ("learn", "timing_s/learn", "{:.1f}s"),
    ("sync", "timing_s/sync", "{:.1f}s"),
    ("step", "timing_s/step", "{:.1f}s"),
)


def step_line(step: int, total_steps: int, metrics: dict[str, Any]) -> str:
    """One step's line for a log: its reward, pass rate, entropy, length, timings and any eval scores."""
    parts = [f"step {step}/{total_steps}"]
    for label, name, form in STEP_LINE_FIELDS:
        if metrics.get(name) is not None:
            parts.append(f"{label} {form.format(metrics[name])}")
    evals = sorted(name for name in metrics if name.startswith("eval/"))
    parts.extend(f"{name} {metrics[name]:.3f}" for name in evals)
    return " | ".join(parts)


def _drop_rows_after(path: Path, step: int) -> None:
    """Rewrite metrics.jsonl (atomically) without the rows of steps after `step`."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


class SkippedUpdateGuard:
    """Ends the run after `limit` consecutive steps whose every optimizer update the engine skipped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def observe(self, step: int, metrics: dict[str, float]) -> None:
        all_skipped = metrics.get("actor/skipped_steps", 0) >= metrics.get("actor/optimizer_steps", 1)
        self.in_a_row = self.in_a_row + 1 if all_skipped else 0
        if self.in_a_row >= self.limit:
            raise RuntimeError(
                f"step {step}: every optimizer update of the last {self.limit} steps was skipped (non-finite "
                "gradient norm, see actor/skipped_steps); the policy is not learning. Lower learner.lr, check "
                "the reward function, or raise trainer.max_skipped_steps"
            )
