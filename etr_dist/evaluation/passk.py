"""pass@k from n samples per item: the unbiased estimator, so n > k samples give a lower-variance pass@k."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k): the chance that k of the n samples, drawn without replacement, hold a correct one."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """The set's pass@k: the mean over items of pass_at_k(n, c, k), from each item's (n, c)."""
    if not counts:
        raise ValueError("mean_pass_at_k needs at least one item")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
