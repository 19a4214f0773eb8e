"""Training throughput: run `python -m etr_dist.train` (or read a finished run) and summarise its step timings.

python benchmarks/train_bench.py -- +experiment=demo          # run, then print the table row
python benchmarks/train_bench.py --run-dir runs/demo_etr_smollm2/<timestamp>
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = [
    ("timing_s/gen", "gen s"),
    ("timing_s/learn", "learn s"),
    ("timing_s/sync", "sync s"),
    ("timing_s/step", "step s"),
    ("perf/tokens_per_s", "gen tokens/s"),
    ("perf/weight_sync_gbps", "sync GB/s"),
]


def summarise(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "timing_s/step" in r]
    summary = {name: statistics.median(r[name] for r in steps) for name, _ in COLUMNS if steps}
    summary["steps"] = len(steps)
    evals = [r for r in rows if any(k.endswith("/pass@1") for k in r)]
    if evals:
        key = next(k for k in evals[0] if k.endswith("/pass@1"))
        summary["pass@1 first"], summary["pass@1 last"] = evals[0][key], evals[-1][key]
    return summary


def markdown(label: str, summary: dict[str, float], wall_s: float | None) -> str:
    header = ["run", "steps", *[title for _, title in COLUMNS], "held-out pass@1", "wall s"]
    accuracy = (
        f"{summary['pass@1 first']:.3f} -> {summary['pass@1 last']:.3f}" if "pass@1 first" in summary else "-"
    )
    cells = [label, str(summary["steps"]), *[f"{summary.get(name, float('nan')):.3g}" for name, _ in COLUMNS]]
    cells += [accuracy, "-" if wall_s is None else f"{wall_s:.0f}"]
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(cells) + " |"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, help="summarise this finished run instead of starting one")
    parser.add_argument("--label", default=None, help="the row's name (default: the overrides)")
    parser.add_argument("overrides", nargs="*", help="training overrides, after --")
    args = parser.parse_args()
    wall_s = None
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = Path("runs") / "bench" / time.strftime("%Y%m%d-%H%M%S")
        command = [sys.executable, "-m", "etr_dist.train", *args.overrides, f"trainer.run_dir={run_dir}"]
        start = time.perf_counter()
        subprocess.run([*command, "logging.progress_bar=false"], check=True)
        wall_s = time.perf_counter() - start
    label = args.label or (" ".join(args.overrides) or str(run_dir))
    print(markdown(label, summarise(run_dir), wall_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
