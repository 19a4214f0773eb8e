import pytest

from etr_dist.learner.metrics import RankMetrics, StepMetrics, combine_ranks


def test_shares_add_up_per_step_and_means_are_token_weighted():
    metrics = StepMetrics(world_size=2)
    metrics.add_micro_batch({"actor/pg_loss": 0.25, "actor/pg_clipfrac": 0.5}, loss_weight=1.0, num_tokens=3)
    metrics.add_micro_batch({"actor/pg_loss": 0.5, "actor/pg_clipfrac": 0.0}, loss_weight=1.0, num_tokens=1)
    metrics.add_micro_batch({"actor/pg_loss": 9.0, "actor/pg_clipfrac": 9.0}, loss_weight=0.0, num_tokens=5)
    metrics.add_optimizer_step(grad_norm=2.0, lr=1e-3)
    metrics.add_micro_batch({"actor/pg_loss": 0.125, "actor/pg_clipfrac": 1.0}, loss_weight=1.0, num_tokens=4)
    metrics.add_optimizer_step(grad_norm=4.0, lr=5e-4)
    result = combine_ranks([metrics.result()])
    # pg_loss: steps (0.25 + 0.5) * 2 = 1.5 and 0.125 * 2 = 0.25 -> mean 0.875; the padding micro-batch adds 0
    assert result["actor/pg_loss"] == pytest.approx(0.875)
    assert result["actor/pg_clipfrac"] == pytest.approx((0.5 * 3 + 0.0 * 1 + 1.0 * 4) / 8)
    assert result["actor/grad_norm"] == pytest.approx(3.0)
    assert result["actor/lr"] == pytest.approx(5e-4)


def test_ranks_combine_by_token_weight_not_by_plain_mean():
    # rank 0 saw 30 tokens at clipfrac 0.1, rank 1 saw 10 at 0.5: (3 + 5) / 40 = 0.2, not the rank mean 0.3
    ranks = [
        RankMetrics({"actor/pg_loss": 1.0, "actor/grad_norm": 2.0}, {"actor/pg_clipfrac": (3.0, 30.0)}),
        RankMetrics({"actor/pg_loss": 3.0, "actor/grad_norm": 2.0}, {"actor/pg_clipfrac": (5.0, 10.0)}),
    ]
    combined = combine_ranks(ranks)
    assert combined["actor/pg_clipfrac"] == pytest.approx(0.2)
    assert combined["actor/pg_loss"] == pytest.approx(2.0)  # each rank's share x world size: their mean
    assert combined["actor/grad_norm"] == 2.0
