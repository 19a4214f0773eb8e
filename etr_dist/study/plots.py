"""The report's PNGs (matplotlib, Agg): per arm the mean across seeds with its 95% t-interval as a band."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a training machine
import matplotlib.pyplot as plt  # noqa: E402

from etr_dist.algos.etr import PASS_BUCKETS as ETR_PASS_BUCKETS  # noqa: E402
from etr_dist.algos.etr import pass_rate_metric  # noqa: E402
from etr_dist.study.results import RunResult, curve  # noqa: E402

DYNAMICS = (
    ("actor/entropy", "policy entropy"),
    ("response_length/mean", "response length (tokens)"),
    ("actor/pg_clipfrac_upper", "clip fraction, upper side"),
    ("actor/pg_clipfrac_lower", "clip fraction, lower side"),
)
ETR_BOUNDS = (("eps_high", "upper bounds (z > 0)"), ("eps_low", "lower bounds (z < 0)"))
PASS_BUCKETS = tuple(name for _, _, name in ETR_PASS_BUCKETS)  # "0-25", ..., in percent


def pass_rate_key(side: str, bucket: str) -> str:
    """ETR's mean bound of one side ("eps_high" or "eps_low") over the groups of one pass-rate bucket."""
    return pass_rate_metric(side.removeprefix("eps_"), bucket)


def _band(ax, by_arm: Mapping[str, Sequence[RunResult]], key: str, scale: float = 1.0) -> bool:
    """One line per arm (x = step * scale) with its interval band; False when no arm has the key."""
    drawn = False
    for arm, results in by_arm.items():
        points = curve(results, key)
        if not points:
            continue
        x = [step * scale for step, _ in points]
        (line,) = ax.plot(x, [i.estimate for _, i in points], marker="o", markersize=3, label=arm)
        ax.fill_between(
            x, [i.low for _, i in points], [i.high for _, i in points], alpha=0.2, color=line.get_color()
        )
        drawn = True
    if drawn:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return drawn


def eval_figure(
    by_arm: Mapping[str, Sequence[RunResult]],
    set_name: str,
    metrics: Sequence[str],
    samples_per_step: int,
    path: Path,
) -> None:
    """Held-out pass@1 (and pass@k) against samples trained on."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        _band(ax, by_arm, f"eval/{set_name}/{metric}", scale=samples_per_step)
        ax.set(title=f"{set_name}: {metric}", xlabel="samples trained on", ylabel=metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dynamics_figure(by_arm: Mapping[str, Sequence[RunResult]], path: Path) -> None:
    """Entropy, response length and each side's clip fraction against step."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, label) in zip(axes.flat, DYNAMICS, strict=True):
        _band(ax, by_arm, key)
        ax.set(title=label, xlabel="step", ylabel=key)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def etr_figure(by_arm: Mapping[str, Sequence[RunResult]], path: Path) -> None:
    """ETR's elastic bounds per side against step: mean, 10th and 90th percentile over responses (seed means)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for ax, (side, label) in zip(axes[:2], ETR_BOUNDS, strict=True):
        for arm, results in by_arm.items():
            for stat, style in (("mean", "-"), ("p10", ":"), ("p90", "--")):
                points = curve(results, f"etr/{side}_{stat}")
                ax.plot([s for s, _ in points], [i.estimate for _, i in points], style, label=f"{arm} {stat}")
        ax.set(title=f"ETR {label}", xlabel="step", ylabel=f"etr/{side}_*")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    _band(axes[2], by_arm, "etr/clamped_frac")
    axes[2].set(title="share of bounds a clamp changed", xlabel="step", ylabel="etr/clamped_frac")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def etr_pass_rate_figure(by_arm: Mapping[str, Sequence[RunResult]], path: Path) -> None:
    """Per arm (a row) and side (a column): one line per pass-rate bucket of the group, its mean bound against
    step (seed means; a step where no seed had a response of that side in the bucket has no point)."""
    fig, axes = plt.subplots(len(by_arm), 2, figsize=(10, 3.6 * len(by_arm)), squeeze=False)
    for row, (arm, results) in zip(axes, by_arm.items(), strict=True):
        for ax, (side, label) in zip(row, ETR_BOUNDS, strict=True):
            for bucket in PASS_BUCKETS:
                points = curve(results, pass_rate_key(side, bucket))
                x, y = [s for s, _ in points], [i.estimate for _, i in points]
                ax.plot(x, y, marker="o", markersize=3, label=f"pass rate {bucket}%")
            ax.set(title=f"{arm}: ETR {label}", xlabel="step", ylabel=f"etr/{side}_active_mean_pass_*")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
