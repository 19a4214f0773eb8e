import pytest
import torch
from transformers import AutoModelForCausalLM

from etr_dist.config.schema import AlgorithmConfig
from etr_dist.learner.batch import build_train_batch, micro_batches, shard_batch, split_mini_batches
from etr_dist.learner.objective import Objective, response_logits_and_labels
from etr_dist.learner.policy_learner import disable_dropout

from .helpers import random_groups


def test_response_logits_are_the_positions_before_each_response_token():
    input_ids = torch.tensor([[5, 6, 7, 8, 9, 0], [20, 21, 22, 23, 24, 25]])
    prompt_lens = torch.tensor([3, 1])
    seq_len, vocab = 6, 4
    logits = torch.arange(seq_len, dtype=torch.float32)[None, :, None].expand(2, seq_len, vocab).clone()
    picked, labels = response_logits_and_labels(logits, input_ids, prompt_lens, response_width=3)
    # row 0: response tokens at 3, 4 (and padding) -> logits at 2, 3, then kept inside the row
    assert picked[0, :, 0].tolist() == [2, 3, 4]
    assert picked[1, :, 0].tolist() == [0, 1, 2]
    assert labels.tolist() == [[8, 9, 0], [21, 22, 23]]


def objective_inputs(micro):
    """Deterministic per-token stand-ins for the model's outputs, so every sharding sees the same values.

    old = 0.9 x the engine's log-probs (in [-2, -0.1]): IS weights exp(-0.1 logp_rollout) in [1.01, 1.22].
    """
    rollout = micro.rollout_logprobs
    return {
        "log_prob": rollout * 0.7,
        "old_log_prob": rollout * 0.9,
        "ref_log_prob": rollout * 1.1,
        "entropy": -rollout,
    }


def summed_shares(batch, cfg, num_ranks, num_mini_batches, micro_batch_size):
    """Each mini-batch's loss as the sum of every rank's micro-batch shares."""
    totals = [0.0] * num_mini_batches
    for shard in shard_batch(batch, num_ranks, num_mini_batches):
        for m, (mini, info) in enumerate(split_mini_batches(shard)):
            for micro, weight in micro_batches(mini, micro_batch_size, info.max_rows):
                loss, _ = Objective(cfg)(micro, info.loss_norm, **objective_inputs(micro))
                totals[m] += weight * loss.item()
    return totals


@pytest.mark.parametrize(
    "mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
)
@pytest.mark.parametrize("loss_name", ["etr", "gspo"])
def test_loss_does_not_depend_on_ranks_or_micro_batches(mode, loss_name):
    cfg = AlgorithmConfig(name=loss_name, loss_agg_mode=mode, kl_coef=0.1, entropy_coef=0.01)
    batch = build_train_batch(random_groups(4, 5, 100, seed=1), 0, cfg, max_response_len=12)  # 20 rows
    whole, _ = Objective(cfg)(batch, batch.mini_batches[0].loss_norm, **objective_inputs(batch))
    for num_ranks, micro_batch_size in [(1, 4), (2, 2), (4, 1), (4, 3)]:
        assert summed_shares(batch, cfg, num_ranks, 1, micro_batch_size) == pytest.approx(
            [whole.item()], rel=1e-5
        )
    reference = summed_shares(batch, cfg, 1, 2, 20)
    for num_ranks, micro_batch_size in [(2, 1), (3, 2), (4, 5)]:
        assert summed_shares(batch, cfg, num_ranks, 2, micro_batch_size) == pytest.approx(reference, rel=1e-5)


def test_objective_adds_kl_and_entropy_terms_with_the_global_normaliser():
    cfg = AlgorithmConfig(name="grpo", loss_agg_mode="token-mean", kl_coef=0.5, entropy_coef=0.25)
    batch = build_train_batch(random_groups(2, 3, 50, seed=2), 0, cfg)
    inputs = objective_inputs(batch)
    pg_only, metrics = Objective(cfg)(batch, 100.0, inputs["log_prob"], inputs["old_log_prob"])
    full, full_metrics = Objective(cfg)(batch, 100.0, **inputs)
    mask = batch.response_mask
    lp, ref = inputs["log_prob"], inputs["ref_log_prob"]
    k3 = ((ref - lp).exp() - (ref - lp) - 1) * mask
    entropy = inputs["entropy"] * mask
    expected = metrics["actor/pg_loss"] + 0.5 * k3.sum().item() / 100 - 0.25 * entropy.sum().item() / 100
    assert full.item() == pytest.approx(expected, rel=1e-5)
    assert full_metrics["actor/kl_loss"] == pytest.approx(k3.sum().item() / 100, rel=1e-5)
    assert full_metrics["actor/entropy"] == pytest.approx(entropy.sum().item() / mask.sum().item(), rel=1e-5)
    assert "actor/kl_loss" not in metrics and "rollout_corr/weight_mean" in full_metrics


def test_disable_dropout_keeps_train_mode_deterministic_with_gradient_checkpointing(tiny_model_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, attention_dropout=0.5, dtype=torch.float32)
    model.gradient_checkpointing_enable()
    model.train()
    input_ids = torch.arange(3, 40).reshape(1, -1)

    def logits():
        return model(input_ids=input_ids, use_cache=False).logits

    assert not torch.equal(logits(), logits())  # attention dropout acts in train mode
    disable_dropout(model)
    assert model.training and model.is_gradient_checkpointing  # checkpointing stays active (train mode)
    assert torch.equal(logits(), logits())
    assert model.config.attention_dropout == 0.0


@pytest.mark.parametrize("loss_name", ["etr", "gspo", "cispo", "sapo", "dppo_tv", "bandpo"])
def test_leaving_out_zero_advantage_rows_changes_neither_loss_nor_gradient(loss_name):
    cfg = AlgorithmConfig(name=loss_name, loss_agg_mode="seq-mean-token-mean")
    groups = random_groups(4, 5, 100, seed=6)
    groups[1].rewards = [1.0] * 5  # all-equal groups: A = 0 on 10 of the 20 rows
    groups[3].rewards = [0.0] * 5
    batch = build_train_batch(groups, 0, cfg, max_response_len=12)
    scale = torch.tensor(0.7, requires_grad=True)  # log_prob = scale x the engine's: one parameter to compare

    def loss_and_grad(skip):
        scale.grad = None
        total = 0.0
        for shard in shard_batch(batch, 2, 2, skip_zero_advantage=skip):
            for mini, info in split_mini_batches(shard):
                for micro, weight in micro_batches(mini, 3, info.max_rows):
                    inputs = {**objective_inputs(micro), "log_prob": micro.rollout_logprobs * scale}
                    loss, _ = Objective(cfg)(micro, info.loss_norm, **inputs)
                    total = total + weight * loss
        total.backward()
        return total.item(), scale.grad.item()

    (loss, grad), (skipped_loss, skipped_grad) = loss_and_grad(False), loss_and_grad(True)
    assert grad != 0.0
    assert skipped_loss == pytest.approx(loss, rel=1e-5) and skipped_grad == pytest.approx(grad, rel=1e-5)
