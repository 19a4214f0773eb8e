"""A study's runs read back (metrics.jsonl rows, per-item eval rows) and the statistics glue over them:
curves across seeds, final values per seed, and (seeds x items) matrices for the paired bootstrap."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from etr_dist.evaluation.stats import Interval, paired_bootstrap, t_interval


@dataclass
class RunResult:
    arm: str
    seed: int
    rows: dict[int, dict[str, float]] = field(
        default_factory=dict
    )  # step -> its metrics (train and eval rows)
    items: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)  # step -> set -> id -> c / n


def load_run(arm: str, seed: int, run_dir: Path) -> RunResult:
    """A run folder's metrics rows (merged per step) and its in-training per-item eval rows."""
    result = RunResult(arm, seed)
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            step = int(row.pop("step"))
            result.rows.setdefault(step, {}).update(
                {k: float(v) for k, v in row.items() if isinstance(v, (int, float))}
            )
    for folder in sorted((run_dir / "eval").glob("step_*")):
        step = int(folder.name.removeprefix("step_"))
        for path in sorted(folder.glob("*.jsonl")):
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            result.items.setdefault(step, {})[path.stem] = {r["id"]: r["correct"] / r["n"] for r in rows}
    return result


def share_step0(results: Sequence[RunResult], sources: Mapping[int, RunResult]) -> None:
    """Give every run the step-0 evaluation of its seed's source run (same initial model, eval seed and data)."""
    for result in results:
        source = sources.get(result.seed)
        if source is None or source is result or 0 not in source.rows:
            continue
        shared = {k: v for k, v in source.rows[0].items() if k.startswith("eval/")}
        result.rows.setdefault(0, {}).update(shared)
        if 0 in source.items:
            result.items[0] = source.items[0]


def curve(results: Sequence[RunResult], key: str) -> list[tuple[int, Interval]]:
    """Per step, the mean across seeds of `key` and its t-interval (no interval where one seed has it)."""
    steps = sorted({s for r in results for s, row in r.rows.items() if key in row})
    return [(s, t_interval([r.rows[s][key] for r in results if key in r.rows.get(s, {})])) for s in steps]


def final_values(results: Sequence[RunResult], key: str) -> dict[str, dict[int, float]]:
    """{arm: {seed: value at the run's last step that has key}}, as compare_arms takes them."""
    values: dict[str, dict[int, float]] = {}
    for r in results:
        steps = [s for s, row in r.rows.items() if key in row]
        if steps:
            values.setdefault(r.arm, {})[r.seed] = r.rows[max(steps)][key]
    return values


def final_items(result: RunResult, set_name: str) -> dict[str, float] | None:
    """The per-item pass@1 of the run's last evaluation of the set (None if it has none)."""
    steps = [s for s, sets in result.items.items() if set_name in sets]
    return result.items[max(steps)][set_name] if steps else None


def item_matrix(
    per_seed: Mapping[int, Mapping[str, float]], seeds: Sequence[int], ids: Sequence[str]
) -> np.ndarray:
    """(seeds, items) per-item scores in the given seed and item order."""
    return np.array([[per_seed[s][i] for i in ids] for s in seeds], dtype=float)


def bootstrap_vs_baseline(
    results: Sequence[RunResult], set_name: str, baseline: str
) -> dict[str, tuple[Interval, int]]:
    """Each arm's final per-item pass@1 minus the baseline's: the paired bootstrap over the seeds both ran
    (paired by seed) and the items every one of those runs scored (paired by item); with the item count."""
    finals: dict[str, dict[int, dict[str, float]]] = {}
    for r in results:
        items = final_items(r, set_name)
        if items is not None:
            finals.setdefault(r.arm, {})[r.seed] = items
    if baseline not in finals:
        return {}
    out = {}
    for arm, per_seed in finals.items():
        seeds = sorted(set(per_seed) & set(finals[baseline]))
        if arm == baseline or not seeds:
            continue
        ids = sorted(set.intersection(*(set(d[s]) for d in (per_seed, finals[baseline]) for s in seeds)))
        if not ids:
            continue
        a = item_matrix(per_seed, seeds, ids)
        b = item_matrix(finals[baseline], seeds, ids)
        out[arm] = (paired_bootstrap(a, b), len(ids))
    return out
