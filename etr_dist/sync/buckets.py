"""Greedy, order-preserving split of named tensors into buckets of at most `bucket_mb` megabytes."""

from __future__ import annotations

from collections.abc import Iterable


def bucketize(named_sizes: Iterable[tuple[str, int]], bucket_mb: float) -> list[list[str]]:
    """Group (name, bytes) pairs in order; a tensor larger than a bucket gets a bucket to itself."""
    if bucket_mb <= 0:
        raise ValueError(f"bucket_mb must be positive, got {bucket_mb}")
    limit = bucket_mb * 1024 * 1024
    buckets: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    for name, size in named_sizes:
        if size < 0:
            raise ValueError(f"tensor '{name}' has a negative size {size}")
        if current and current_bytes + size > limit:
            buckets.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += size
    if current:
        buckets.append(current)
    return buckets
