"""Per-token log-probs and entropy from logits, a chunk of token positions at a time.

With a 150k vocabulary a float32 softmax of the whole batch would be N*T*V*4 bytes. Each chunk is upcast,
reduced and freed; under autograd each chunk is checkpointed, so backward recomputes it instead of keeping it.
Both describe the engine's sampling distribution: logits / temperature, renormalised over the top-p nucleus
(top_p < 1 sorts each chunk: a few more [C, V] buffers per chunk; lower the chunk size if memory is tight).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK_SIZE = 1024  # token positions per chunk


def _nucleus(scaled: Tensor, top_p: float, keep: Tensor | None = None) -> Tensor:
    """Logits outside the top-p nucleus of softmax(scaled) set to -inf, as transformers' TopPLogitsWarper.

    Sorted ascending, a token is dropped while the cumulative probability up to it is <= 1 - top_p; the most
    probable token always stays. keep [C] (the sampled labels) stays too: the engine sampled it from its
    nucleus, and neither a rounding difference at the boundary nor a later update may turn its log-prob
    into -inf (a ratio of 0, or NaN).   [C, V]
    """
    if top_p >= 1.0:
        return scaled
    with torch.no_grad():
        sorted_logits, order = torch.sort(scaled, dim=-1)
        dropped = sorted_logits.softmax(-1).cumsum(-1) <= 1 - top_p  # [C, V], a prefix of each sorted row
        dropped[:, -1] = False
        outside = dropped.scatter(-1, order, dropped)
        if keep is not None:
            outside.scatter_(-1, keep[:, None], False)
    return scaled.masked_fill(outside, float("-inf"))


def _scaled(logits: Tensor, temperature: float) -> Tensor:
    """z / tau in float32; no [C, V] copy when there is nothing to do (float32 logits, tau = 1)."""
    logits = logits.float()
    return logits if temperature == 1.0 else logits / temperature


def _token_logprob(logits: Tensor, labels: Tensor, temperature: float, top_p: float) -> Tensor:
    """log p(label) of softmax(z / tau) renormalised over the top-p nucleus   [C, V] -> [C]"""
    scaled = _nucleus(_scaled(logits, temperature), top_p, keep=labels)
    return scaled.gather(-1, labels[:, None]).squeeze(-1) - torch.logsumexp(scaled, dim=-1)


def _token_entropy(logits: Tensor, temperature: float, top_p: float) -> Tensor:
    """H = -sum_v p_v log p_v with p = softmax(z / tau) over the top-p nucleus   [C, V] -> [C]

    A -inf logit (a masked token) has p = 0 and adds 0: it is masked out of the sum, so neither the value nor
    the gradient sees 0 * -inf. Without a nucleus the plain sum is tried first (a third of the [C, V] passes)
    and kept unless such a logit made it NaN.
    """
    log_p = torch.log_softmax(_nucleus(_scaled(logits, temperature), top_p), dim=-1)
    if top_p >= 1.0:
        entropy = -(log_p.exp() * log_p).sum(-1)
        if bool(torch.isfinite(entropy).all()):
            return entropy
    finite = torch.isfinite(log_p)
    log_p = torch.where(finite, log_p, torch.zeros_like(log_p))
    p = torch.where(finite, log_p.exp(), torch.zeros_like(log_p))
    return -(p * log_p).sum(-1)


def _chunked(
    fn: Callable[..., Tensor], logits: Tensor, per_position: list[Tensor], chunk_size: int
) -> Tensor:
    """Apply fn to [C, V] slices of the flattened [N*T, V] logits; returns [N, T] float32."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n, t, vocab = logits.shape
    rows = logits.reshape(n * t, vocab)
    flat_args = [arg.reshape(n * t) for arg in per_position]
    pieces = []
    for start in range(0, n * t, chunk_size):
        args = [rows[start : start + chunk_size]] + [arg[start : start + chunk_size] for arg in flat_args]
        if rows.requires_grad and torch.is_grad_enabled():
            pieces.append(checkpoint(fn, *args, use_reentrant=False))
        else:
            pieces.append(fn(*args))
    return torch.cat(pieces).reshape(n, t) if pieces else rows.new_zeros((n, t), dtype=torch.float32)


def _check(logits: Tensor, temperature: float, top_p: float) -> None:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [N, T, V], got shape {tuple(logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def logprobs_from_logits(
    logits: Tensor,
    labels: Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> Tensor:
    """log p(labels) [N, T] in float32 under the engine's sampling distribution; differentiable.

    p = softmax(logits / temperature) renormalised over the top-p nucleus (the sampled label always kept).
    """
    _check(logits, temperature, top_p)
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels must be [N, T] = {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
    return _chunked(lambda z, y: _token_logprob(z, y, temperature, top_p), logits, [labels], chunk_size)


def entropy_from_logits(
    logits: Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE, temperature: float = 1.0, top_p: float = 1.0
) -> Tensor:
    """Entropy of the sampling distribution (logits / temperature, top-p nucleus) per position, [N, T]."""
    _check(logits, temperature, top_p)
    return _chunked(lambda z: _token_entropy(z, temperature, top_p), logits, [], chunk_size)
