"""Aggregation modes by hand, and the sharding invariance the global normalisers exist for."""

import pytest
import torch

from etr_dist.algos import (
    AGGREGATIONS,
    POLICY_LOSSES,
    aggregate_loss,
    aggregation_norm,
    compute_advantages,
    compute_policy_loss,
    elastic_bounds,
)

# values per token, padding marked 0 in the mask (its value must not count)
VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0], [99.0, 99.0, 99.0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])  # row 2 is all padding: not a response


@pytest.mark.parametrize(
    ("mode", "norm", "expected"),
    [
        ("token-mean", 5, (1 + 2 + 3 + 4 + 5) / 5),  # 5 tokens
        ("seq-mean-token-mean", 2, (6 / 3 + 9 / 2) / 2),  # 2 responses, mean of their token means
        ("seq-mean-token-sum", 2, (6 + 9) / 2),  # mean of their token sums
        ("seq-mean-token-sum-norm", 2 * 3, (6 + 9) / (2 * 3)),  # 2 responses * T = 3
    ],
)
def test_modes_by_hand(mode, norm, expected):
    assert aggregation_norm(MASK, mode) == norm
    assert aggregate_loss(VALUES, MASK, mode).item() == pytest.approx(expected)


def test_max_response_len_and_global_norm():
    # Dr.GRPO divides by the configured max length (here 10), not the padded T = 3
    assert aggregation_norm(MASK, "seq-mean-token-sum-norm", max_response_len=10) == 2 * 10
    assert aggregate_loss(
        VALUES, MASK, "seq-mean-token-sum-norm", max_response_len=10
    ).item() == pytest.approx(0.75)
    # a global normaliser replaces the batch's own for every mode
    assert aggregate_loss(VALUES, MASK, "token-mean", global_norm=30.0).item() == pytest.approx(15 / 30)
    assert aggregate_loss(VALUES, MASK, "seq-mean-token-mean", global_norm=4.0).item() == pytest.approx(
        6.5 / 4
    )


def test_empty_batch_is_zero_not_nan():
    assert aggregate_loss(VALUES, torch.zeros(3, 3), "token-mean").item() == 0.0


def test_unknown_mode_names_the_known_ones():
    with pytest.raises(KeyError, match="token-mean"):
        aggregation_norm(MASK, "mean")


# --- sharding invariance: 1 rank x 4 micro-batches == 2 x 2 == 4 x 1 ---
LENGTHS = torch.tensor([5, 2, 7, 3, 1, 6, 4, 2])
MAX_NEW_TOKENS = 8  # the configured limit, longer than any response here


REWARDS = torch.tensor([1.0, 0.0, 0.3, 1.0, 0.0, 0.0, 0.6, 0.6], dtype=torch.float64)
GROUPS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])  # group 3 has no variance: zero advantage


def step_batch():
    gen = torch.Generator().manual_seed(0)
    n, t = len(LENGTHS), int(LENGTHS.max())
    mask = torch.arange(t)[None, :] < LENGTHS[:, None]  # [8, 7]
    log_prob = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 2
    old = log_prob + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.3
    adv, var_norm = compute_advantages("grpo", REWARDS, GROUPS)
    return log_prob, old, adv, mask, var_norm


def sharded_gradient(loss_mode, mode, ranks, micro_batches, use_step_stats=True):
    """Rank r takes responses r, r + ranks, ...; each micro-batch trims padding to its own longest response.

    The gradients of every micro-batch of every rank are summed (accumulation, then an all-reduce sum).
    With step stats, ETR's bounds and the normaliser come from the whole step; without, from each micro-batch.
    """
    log_prob, old, adv, mask, var_norm = step_batch()
    leaf = log_prob.clone().requires_grad_()
    config = {"loss_agg_mode": mode}
    step_bounds = elastic_bounds(REWARDS, GROUPS, LENGTHS, config)
    step_norm = aggregation_norm(mask, mode, max_response_len=MAX_NEW_TOKENS)
    total = 0.0
    for rank in range(ranks):
        shard = torch.arange(rank, len(adv), ranks)
        for rows in shard.chunk(micro_batches):
            t = int(LENGTHS[rows].max())
            if use_step_stats:
                clip_bounds, norm = (step_bounds.eps_low[rows], step_bounds.eps_high[rows]), step_norm
            else:
                local = elastic_bounds(REWARDS[rows], GROUPS[rows], LENGTHS[rows], config)
                clip_bounds, norm = (local.eps_low, local.eps_high), None
            loss, _ = compute_policy_loss(
                loss_mode, leaf[rows, :t], old[rows, :t], adv[rows], mask[rows, :t], var_norm[rows], config,
                clip_bounds=clip_bounds, global_norm=norm,
            )  # fmt: skip
            loss.backward()
            total += loss.item()
    return total, leaf.grad


@pytest.mark.parametrize("loss_mode", POLICY_LOSSES.names())
@pytest.mark.parametrize("mode", AGGREGATIONS.names())
def test_gradient_does_not_depend_on_sharding(loss_mode, mode):
    whole_loss, whole_grad = sharded_gradient(loss_mode, mode, ranks=1, micro_batches=1)
    assert whole_grad.abs().sum() > 0
    for ranks, micro_batches in [(1, 4), (2, 2), (4, 1)]:
        loss, grad = sharded_gradient(loss_mode, mode, ranks, micro_batches)
        assert loss == pytest.approx(whole_loss, rel=1e-12)
        torch.testing.assert_close(grad, whole_grad, rtol=1e-12, atol=1e-15)


def test_local_normalisers_would_depend_on_sharding():
    # the check above is sensitive: with each micro-batch's own normaliser and bounds the gradients differ
    _, whole_grad = sharded_gradient("etr", "token-mean", ranks=1, micro_batches=1)
    _, local_grad = sharded_gradient("etr", "token-mean", ranks=2, micro_batches=2, use_step_stats=False)
    assert not torch.allclose(local_grad, whole_grad)
