"""Loss aggregation: a batch total divided by a normaliser that the driver computes once for the whole step.

Each mode is (total, norm). A micro-batch contributes total(micro-batch) / norm(step batch), so summing the
micro-batch losses of every rank gives the step loss whatever the sharding, and so the same gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from etr_dist.algos.registries import AGGREGATIONS


@dataclass(frozen=True)
class Aggregation:
    total: Callable[[Tensor, Tensor], Tensor]  # (values [N, T], mask [N, T]) -> scalar
    norm: Callable[[Tensor, int | None], float]  # (mask [N, T], max_response_len) -> denominator


def _token_sum(values: Tensor, mask: Tensor) -> Tensor:
    """sum_i sum_t L_{i,t} m_{i,t}"""
    return (values * mask).sum()


def _sum_of_token_means(values: Tensor, mask: Tensor) -> Tensor:
    """sum_i (sum_t L_{i,t} m_{i,t} / sum_t m_{i,t})"""
    return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum()


def _num_tokens(mask: Tensor, max_response_len: int | None) -> float:
    return float(mask.sum())


def _num_responses(mask: Tensor, max_response_len: int | None) -> float:
    """Responses with at least one token; all-padding rows do not count."""
    return float((mask.sum(-1) > 0).sum())


def _num_responses_times_max_len(mask: Tensor, max_response_len: int | None) -> float:
    """Dr.GRPO's constant normaliser: num responses * the configured max length (else the mask's T)."""
    return _num_responses(mask, None) * (max_response_len or mask.shape[-1])


_MODES = {
    "token-mean": Aggregation(_token_sum, _num_tokens),
    "seq-mean-token-mean": Aggregation(_sum_of_token_means, _num_responses),
    "seq-mean-token-sum": Aggregation(_token_sum, _num_responses),
    "seq-mean-token-sum-norm": Aggregation(_token_sum, _num_responses_times_max_len),
}
for _name, _aggregation in _MODES.items():
    AGGREGATIONS.register(_name)(_aggregation)


def aggregation_norm(response_mask: Tensor, mode: str, max_response_len: int | None = None) -> float:
    """The aggregation's denominator over the batch given (the driver passes the whole step batch)."""
    return AGGREGATIONS.get(mode).norm(response_mask.to(torch.float64), max_response_len)


def aggregate_loss(
    values: Tensor,
    mask: Tensor,
    mode: str,
    global_norm: float | None = None,
    max_response_len: int | None = None,
) -> Tensor:
    """Scalar total(values [N, T] over mask) / norm; norm = global_norm, else this batch's own (>= 1)."""
    aggregation = AGGREGATIONS.get(mode)
    mask = mask.to(values.dtype)
    if global_norm is None:
        norm = max(aggregation.norm(mask, max_response_len), 1.0)
    elif global_norm > 0:
        norm = float(global_norm)
    else:
        raise ValueError(f"global_norm must be > 0, got {global_norm}")
    return aggregation.total(values, mask) / norm
