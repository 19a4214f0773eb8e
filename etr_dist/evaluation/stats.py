"""Statistics for comparing trained arms over few seeds: t-intervals, paired differences, a paired bootstrap
over seeds and eval items, and the minimum detectable difference. numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float  # nan where the data cannot give an interval (fewer than two seeds)
    high: float
    n: int  # values behind it: seeds, seed pairs, or (bootstrap) resamples
    sd: float  # their standard deviation (ddof=1): across seeds, or the bootstrap's standard error


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta function's continued fraction by modified Lentz (Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for aa in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function: P(T <= t) with df degrees of freedom."""
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t (bisection on t_cdf; scipy is not a dependency); df=inf is the normal."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    if df <= 0:
        raise ValueError(f"t_quantile needs df > 0, got {df}")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if t_cdf(middle, df) < p else (low, middle)
    return 0.5 * (low + high)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and its t-interval: honest for few seeds, where a normal interval is far too narrow."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(data.mean())
    if data.size < 2:
        return Interval(mean, math.nan, math.nan, 1, math.nan)
    sd = float(data.std(ddof=1))
    half = t_quantile((1.0 + level) / 2.0, data.size - 1) * sd / math.sqrt(data.size)
    return Interval(mean, mean - half, mean + half, int(data.size), sd)


def paired_difference(
    arm: Mapping[int, float], baseline: Mapping[int, float], level: float = 0.95
) -> Interval:
    """arm - baseline over the seeds both have (seed -> metric): pairing by seed removes the seed's share."""
    seeds = sorted(set(arm) & set(baseline))
    if not seeds:
        raise ValueError("paired_difference: the two arms share no seed")
    return t_interval([arm[s] - baseline[s] for s in seeds], level)


def paired_bootstrap(
    arm: np.ndarray,
    baseline: np.ndarray,
    resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
    pair_seeds: bool = True,
) -> Interval:
    """Percentile interval of mean(arm) - mean(baseline) from per-item scores shaped (seeds, items).

    Each resample draws eval items with replacement, the same items for both arms (paired by item), and seeds
    with replacement: the same seed indices for both when pair_seeds (the arms ran the same seeds, in order).
    Both sources of noise, training seed and eval item, are in the interval.
    """
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"paired_bootstrap needs (seeds, items) arrays over the same items, got {a.shape}, {b.shape}"
        )
    if pair_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"pair_seeds needs as many seeds in both arms, got {a.shape[0]} and {b.shape[0]}")
    rng = np.random.default_rng(seed)
    items = a.shape[1]
    # Resampling counts instead of indices: a resample's mean is (seed weights) . scores . (item weights).
    item_w = rng.multinomial(items, np.full(items, 1.0 / items), size=resamples) / items
    seeds_a = rng.multinomial(a.shape[0], np.full(a.shape[0], 1.0 / a.shape[0]), size=resamples) / a.shape[0]
    seeds_b = (
        seeds_a
        if pair_seeds
        else rng.multinomial(b.shape[0], np.full(b.shape[0], 1.0 / b.shape[0]), size=resamples) / b.shape[0]
    )
    diffs = np.einsum("rs,si,ri->r", seeds_a, a, item_w) - np.einsum("rs,si,ri->r", seeds_b, b, item_w)
    low, high = np.quantile(diffs, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(
        float(a.mean() - b.mean()), float(low), float(high), int(resamples), float(diffs.std(ddof=1))
    )


def mdd_paired(sd_diff: float, seeds: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true paired difference a two-sided t-test over `seeds` pairs detects with this power:
    (t_{1-alpha/2, S-1} + t_{power, S-1}) * sd_diff / sqrt(S)."""
    if seeds < 2:
        return math.inf
    df = seeds - 1
    return (t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)) * sd_diff / math.sqrt(seeds)


def mdd_binomial(p: float, items: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest pass@1 difference the eval items alone resolve, two arms at accuracy p, one sample each:
    (z_{1-alpha/2} + z_{power}) * sqrt(2 p (1-p) / items). Unpaired, so an upper bound for paired items."""
    normal = NormalDist()
    return (normal.inv_cdf(1.0 - alpha / 2.0) + normal.inv_cdf(power)) * math.sqrt(
        2.0 * p * (1.0 - p) / items
    )


def compare_arms(
    per_seed: Mapping[str, Mapping[int, float]], baseline: str = "grpo", level: float = 0.95
) -> list[dict[str, float | int | str]]:
    """One row per arm: mean and interval across seeds, and (other arms) the paired difference to baseline
    with its interval and the minimum detectable difference for that many seeds at the observed spread."""
    if baseline not in per_seed:
        raise ValueError(f"compare_arms: no baseline arm {baseline!r} among {sorted(per_seed)}")
    rows = []
    for name, values in per_seed.items():
        mean = t_interval(list(values.values()), level)
        row: dict[str, float | int | str] = {
            "arm": name,
            "seeds": mean.n,
            "mean": mean.estimate,
            "low": mean.low,
            "high": mean.high,
        }
        if name != baseline:
            diff = paired_difference(values, per_seed[baseline], level)
            row.update(
                diff=diff.estimate,
                diff_low=diff.low,
                diff_high=diff.high,
                pairs=diff.n,
                mdd=mdd_paired(diff.sd, diff.n) if diff.n > 1 else math.inf,
            )
        rows.append(row)
    return rows


def markdown_table(rows: Sequence[Mapping[str, float | int | str]], baseline: str = "grpo") -> str:
    """compare_arms' rows as the report's markdown table."""
    lines = [
        f"| arm | seeds | mean [95% CI] | diff to {baseline} [95% CI] | min. detectable diff |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        diff = (
            f"{row['diff']:+.3f} [{row['diff_low']:+.3f}, {row['diff_high']:+.3f}]" if "diff" in row else "-"
        )
        mdd = f"{row['mdd']:.3f}" if "mdd" in row else "-"
        lines.append(
            f"| {row['arm']} | {row['seeds']} | {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}] "
            f"| {diff} | {mdd} |"
        )
    return "\n".join(lines)
