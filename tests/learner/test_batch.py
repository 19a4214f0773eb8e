import math

import pytest
import torch

from etr_dist.algos import elastic_bounds
from etr_dist.config.schema import AlgorithmConfig
from etr_dist.learner.batch import (
    build_train_batch,
    micro_batches,
    mini_batch_rows,
    shard_batch,
    split_mini_batches,
    split_rows,
)

from .helpers import make_group, random_groups

PAD = 0


def two_groups():
    return [
        make_group(
            "a", [5, 6, 7], [[8, 9], [10], [11, 12, 13], [14]], [1.0, 0.0, 0.0, 1.0], policy_version=3
        ),
        make_group("b", [20], [[21, 22, 23, 24], [25], [26, 27]], [1.0, 1.0, 0.0], policy_version=4),
    ]


def test_rows_are_prompt_then_response_then_padding():
    batch = build_train_batch(two_groups(), PAD, AlgorithmConfig())
    assert batch.input_ids.shape == (7, 6)  # widest row: 3 prompt + 3 response tokens
    assert batch.input_ids[0].tolist() == [5, 6, 7, 8, 9, PAD]
    assert batch.input_ids[4].tolist() == [20, 21, 22, 23, 24, PAD]
    assert batch.attention_mask[0].tolist() == [1, 1, 1, 1, 1, 0]
    assert batch.prompt_lens.tolist() == [3, 3, 3, 3, 1, 1, 1]
    assert batch.response_mask.shape == (7, 4)
    assert batch.response_mask[2].tolist() == [1, 1, 1, 0]
    assert batch.response_mask[4].tolist() == [1, 1, 1, 1]
    assert batch.policy_version.tolist() == [3, 3, 3, 3, 4, 4, 4]
    completion = two_groups()[0].completions[0]
    assert batch.rollout_logprobs[0, :2].tolist() == pytest.approx(completion.logprobs)
    assert batch.rollout_logprobs[0, 2:].tolist() == [0.0, 0.0]
    assert batch.max_response_len == 4


def test_grpo_advantages_and_group_variance_by_hand():
    batch = build_train_batch(two_groups(), PAD, AlgorithmConfig(adv_estimator="grpo"))
    # group a: mean 0.5, population std 0.5 -> A = +-1; v = 0.25 / 0.25 = 1
    # group b: mean 2/3, std sqrt(2)/3 -> A = (1/3)/(sqrt(2)/3) = 1/sqrt(2), (-2/3)/(sqrt(2)/3) = -sqrt(2)
    expected = [1, -1, -1, 1, 1 / math.sqrt(2), 1 / math.sqrt(2), -math.sqrt(2)]
    assert batch.advantages.tolist() == pytest.approx(expected, rel=1e-5)
    assert batch.group_var_norm.tolist() == pytest.approx([1, 1, 1, 1, 8 / 9, 8 / 9, 8 / 9], rel=1e-6)


def test_etr_bounds_are_computed_once_on_the_step_batch():
    groups = two_groups()
    batch = build_train_batch(groups, PAD, AlgorithmConfig())  # ETR by default
    rewards = torch.tensor([r for g in groups for r in g.rewards])
    lengths = batch.response_mask.sum(-1).long()
    bounds = elastic_bounds(rewards, batch.group_index, lengths, AlgorithmConfig())
    assert batch.group_index.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert torch.equal(batch.eps_high, bounds.eps_high) and torch.equal(batch.eps_low, bounds.eps_low)
    assert batch.metrics == bounds.metrics
    assert batch.metrics["etr/eps_high_active_mean"] == pytest.approx(0.28, rel=1e-6)
    static = build_train_batch(groups, PAD, AlgorithmConfig(name="clip_higher"))
    assert static.metrics == {}


def test_unbiased_std_and_dr_grpo_come_from_the_config():
    unbiased = build_train_batch(two_groups(), PAD, AlgorithmConfig(unbiased_std=True))
    # group a: sample std sqrt(1/3) -> A = 0.5 / 0.57735
    assert unbiased.advantages[0].item() == pytest.approx(0.5 / math.sqrt(1 / 3), rel=1e-5)
    dr = build_train_batch(two_groups(), PAD, AlgorithmConfig(adv_estimator="dr_grpo"))
    assert dr.advantages.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 1 / 3, 1 / 3, -2 / 3], rel=1e-6)


@pytest.mark.parametrize(
    ("mode", "max_len", "norm"),
    [
        ("token-mean", None, 2 + 1 + 3 + 1 + 4 + 1 + 2),
        ("seq-mean-token-mean", None, 7),
        ("seq-mean-token-sum-norm", None, 7 * 4),
        ("seq-mean-token-sum-norm", 16, 7 * 16),
    ],
)
def test_step_loss_normaliser(mode, max_len, norm):
    batch = build_train_batch(
        two_groups(), PAD, AlgorithmConfig(loss_agg_mode=mode), max_response_len=max_len
    )
    assert [info.loss_norm for info in batch.mini_batches] == [norm]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: g.rewards.pop(), "has 4 completions but 3 rewards"),
        (lambda g: g.completions[1].logprobs.append(-1.0), "has 1 tokens but 2 logprobs"),
    ],
)
def test_inconsistent_groups_are_rejected_by_name(mutate, message):
    groups = two_groups()
    mutate(groups[0])
    with pytest.raises(ValueError, match=message):
        build_train_batch(groups, PAD, AlgorithmConfig())


def test_untokenised_prompt_and_overlong_response_are_rejected():
    with pytest.raises(ValueError, match="prompt 'x' has no prompt_token_ids"):
        build_train_batch([make_group("x", [], [[1], [2]], [1.0, 0.0])], PAD, AlgorithmConfig())
    with pytest.raises(ValueError, match="more than max_response_len=3"):
        build_train_batch(two_groups(), PAD, AlgorithmConfig(), max_response_len=3)
    with pytest.raises(ValueError, match="no groups"):
        build_train_batch([], PAD, AlgorithmConfig())


def test_split_rows_is_balanced_and_contiguous():
    assert split_rows(7, 3) == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert split_rows(2, 4) == [slice(0, 1), slice(1, 2), slice(2, 2), slice(2, 2)]


def test_mini_batches_are_whole_groups_in_a_seeded_order():
    batch = build_train_batch(random_groups(6, 4, 50), PAD, AlgorithmConfig())  # 24 rows, groups of 4
    minis = mini_batch_rows(batch, num_ranks=2, num_mini_batches=3, seed=7)
    assert [len(rows) for rows in minis] == [8, 8, 8]
    assert sorted(torch.cat(minis).tolist()) == list(range(24))
    for rows in minis:  # each mini-batch holds two whole groups
        groups = batch.group_index[rows].unique()
        assert (
            len(groups) == 2
            and sorted(rows.tolist())
            == torch.nonzero(torch.isin(batch.group_index, groups)).squeeze(-1).tolist()
        )
    same = mini_batch_rows(batch, num_ranks=2, num_mini_batches=3, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(minis, same, strict=True))
    orders = {tuple(torch.cat(mini_batch_rows(batch, 2, 3, seed)).tolist()) for seed in range(5)}
    assert len(orders) > 1  # the seed changes which groups share a mini-batch
    assert torch.cat(minis).tolist() != list(range(24))  # not contiguous slices


def test_shards_hold_each_rank_s_part_of_every_mini_batch():
    batch = build_train_batch(random_groups(3, 4, 50), PAD, AlgorithmConfig())  # 12 rows
    minis = mini_batch_rows(batch, num_ranks=2, num_mini_batches=3, seed=1)  # one group of 4 each
    shards = shard_batch(batch, num_ranks=2, num_mini_batches=3, seed=1)
    assert [s.num_rows for s in shards] == [6, 6]
    first_halves = torch.cat([rows[:2] for rows in minis])
    assert torch.equal(shards[0].input_ids, batch.input_ids[first_halves])
    assert torch.equal(shards[1].eps_high, batch.eps_high[torch.cat([rows[2:] for rows in minis])])
    norms = [batch.response_mask[rows].sum().item() for rows in minis]
    for shard in shards:
        assert [(i.rows, i.max_rows, i.loss_norm) for i in shard.mini_batches] == [(2, 2, n) for n in norms]
    one_rank = shard_batch(batch, num_ranks=1, num_mini_batches=3, seed=1)[0]
    assert torch.equal(one_rank.input_ids, batch.input_ids[torch.cat(minis)])  # same mini-batches, 1 rank
    odd = shard_batch(build_train_batch(two_groups(), PAD, AlgorithmConfig()), num_ranks=2)
    assert sorted(s.num_rows for s in odd) == [3, 4]
    assert [s.mini_batches[0].max_rows for s in odd] == [4, 4]


def test_too_few_rows_give_fewer_mini_batches_and_resharding_is_refused():
    batch = build_train_batch(two_groups(), PAD, AlgorithmConfig())  # groups of 4 and 3 rows
    # 2 mini-batches would leave one with 3 rows for 4 ranks: one mini-batch of 7 instead
    assert [len(s.mini_batches) for s in shard_batch(batch, 4, 2)] == [1] * 4
    assert [len(s.mini_batches) for s in shard_batch(batch, 2, 4)] == [2, 2]  # only 2 groups
    with pytest.raises(ValueError, match="7 rows cannot give each of 8 ranks a row"):
        shard_batch(batch, 8, 1)
    with pytest.raises(ValueError, match="not a shard"):
        shard_batch(shard_batch(batch, 2, num_mini_batches=2)[0], 2)


def test_micro_batches_are_trimmed_and_padded_to_the_common_count():
    batch = build_train_batch(two_groups(), PAD, AlgorithmConfig())
    shard = shard_batch(batch, 2, seed=0)[1]  # rows 4..6: prompt 1 + responses of 4, 1, 2 tokens
    ((mini, info),) = split_mini_batches(shard)
    micros = micro_batches(mini, micro_batch_size=1, max_rows=info.max_rows)
    assert [m.loss_weight for m in micros] == [1.0, 1.0, 1.0, 0.0]
    assert micros[0].batch.input_ids.shape == (1, 5) and micros[0].batch.response_mask.shape == (1, 4)
    assert micros[1].batch.input_ids.tolist() == [[20, 25]] and micros[1].batch.response_mask.shape == (1, 1)
    assert torch.equal(micros[3].batch.input_ids, micros[0].batch.input_ids)
    pairs = micro_batches(mini, micro_batch_size=2, max_rows=info.max_rows)
    assert [m.batch.num_rows for m in pairs] == [2, 1]
    with pytest.raises(ValueError, match="micro_batch_size must be >= 1"):
        micro_batches(mini, 0)


def test_micro_batches_by_length_keep_every_row_once_and_pad_less():
    batch = build_train_batch(random_groups(4, 5, 100, seed=4, max_response=12), PAD, AlgorithmConfig())
    plain = micro_batches(batch, micro_batch_size=5)
    by_length = micro_batches(batch, micro_batch_size=5, by_length=True)
    assert len(by_length) == len(plain) == 4 and all(m.loss_weight == 1.0 for m in by_length)

    def rows(batches):
        return sorted(tuple(x for x in row.tolist() if x) for b in batches for row in b.rollout_logprobs)

    assert rows(m.batch for m in by_length) == rows([batch])
    lengths = [m.batch.attention_mask.sum(-1).tolist() for m in by_length]
    assert [x for part in lengths for x in part] == sorted(x for part in lengths for x in part)
    assert sum(m.batch.input_ids.numel() for m in by_length) < sum(m.batch.input_ids.numel() for m in plain)


def test_zero_advantage_rows_are_left_out_of_the_shards_but_not_of_the_normaliser():
    groups = [*two_groups(), make_group("c", [30, 31], [[32], [33, 34], [35]], [1.0, 1.0, 1.0])]
    batch = build_train_batch(groups, PAD, AlgorithmConfig())  # group c is all-equal: A = 0
    zero = int((batch.advantages == 0).sum())
    assert zero == 3
    full = shard_batch(batch, 2, seed=0)
    skipped = shard_batch(batch, 2, seed=0, skip_zero_advantage=True)
    assert sum(s.num_rows for s in skipped) == batch.num_rows - zero
    assert all(bool((s.advantages != 0).all()) for s in skipped)
    assert [s.mini_batches[0].loss_norm for s in skipped] == [s.mini_batches[0].loss_norm for s in full]
    assert skipped[0].mini_batches[0].max_rows == 4 == max(s.num_rows for s in skipped)
    # a mini-batch of only A = 0 rows keeps one row per rank (every rank runs the same passes)
    lone = build_train_batch([groups[2]], PAD, AlgorithmConfig())
    assert [s.num_rows for s in shard_batch(lone, 2, skip_zero_advantage=True)] == [1, 1]
