"""The learner's train batch: graded groups -> padded tensors, sharded over ranks and cut into micro-batches.

Everything that must be the same for the whole step (ETR's bounds, each PPO mini-batch's loss normaliser, the
micro-batch count per mini-batch) is computed here on the whole batch before sharding and travels with each
shard, so the loss and its gradient do not depend on the number of ranks or micro-batches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from etr_dist.algos import aggregation_norm, compute_advantages, elastic_bounds
from etr_dist.config.schema import AlgorithmConfig
from etr_dist.data.records import Group

ROW_FIELDS = (
    "input_ids",
    "attention_mask",
    "prompt_lens",
    "response_mask",
    "rollout_logprobs",
    "advantages",
    "group_var_norm",
    "eps_low",
    "eps_high",
    "group_index",
    "policy_version",
)


@dataclass(frozen=True)
class MiniBatchInfo:
    """One PPO mini-batch as a shard sees it; the last two fields are the same on every rank."""

    rows: int  # this shard's rows of the mini-batch
    max_rows: int  # the most rows any rank holds of it: fixes the micro-batch count on every rank
    loss_norm: float  # the aggregation's denominator over the whole mini-batch (all ranks)


@dataclass(frozen=True)
class TrainBatch:
    """Row i = prompt tokens, then response tokens, then padding (right-padded)."""

    input_ids: Tensor  # [N, L] long
    attention_mask: Tensor  # [N, L] long, 1 on prompt and response tokens
    prompt_lens: Tensor  # [N] long: response token t of row i is input_ids[i, prompt_lens[i] + t]
    response_mask: Tensor  # [N, T] float 0/1, a prefix of ones per row
    rollout_logprobs: Tensor  # [N, T] float, the engine's log-prob of each sampled token
    advantages: Tensor  # [N]
    group_var_norm: Tensor  # [N] v_q of each response's group
    eps_low: Tensor  # [N] ETR's elastic lower bound of each response (zeros for static-clip losses)
    eps_high: Tensor  # [N] ETR's elastic upper bound
    group_index: Tensor  # [N] long: which group of the step the response belongs to
    policy_version: Tensor  # [N] long, the policy that generated the response
    loss_agg_mode: str
    max_response_len: int  # Dr.GRPO's constant length
    mini_batches: tuple[MiniBatchInfo, ...]
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # step-batch metrics (etr/*)

    @property
    def num_rows(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_response_tokens(self) -> int:
        return int(self.response_mask.sum())

    def rows(self, index: slice | Tensor, mini_batches: tuple[MiniBatchInfo, ...] = ()) -> TrainBatch:
        """A subset of rows with the step-wide fields kept."""
        picked = {name: getattr(self, name)[index] for name in ROW_FIELDS}
        return dataclasses.replace(self, **picked, mini_batches=mini_batches)

    def to(self, device: torch.device | str) -> TrainBatch:
        return dataclasses.replace(self, **{name: getattr(self, name).to(device) for name in ROW_FIELDS})

    def trimmed(self) -> TrainBatch:
        """Drop the padding columns no row of this (micro-)batch uses."""
        response_lens = self.response_mask.sum(-1).long()
        width = int((self.prompt_lens + response_lens).max())
        response_width = max(int(response_lens.max()), 1)
        return dataclasses.replace(
            self,
            input_ids=self.input_ids[:, :width],
            attention_mask=self.attention_mask[:, :width],
            response_mask=self.response_mask[:, :response_width],
            rollout_logprobs=self.rollout_logprobs[:, :response_width],
        )


class MicroBatch(NamedTuple):
    batch: TrainBatch
    loss_weight: float  # 0.0 for a padding micro-batch that only keeps this rank in step with the others


def split_rows(num_rows: int, parts: int) -> list[slice]:
    """Contiguous, balanced slices: sizes differ by at most one, the larger ones first."""
    base, extra = divmod(num_rows, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:], strict=False)]


def _check_group(group: Group) -> None:
    prompt_id = group.prompt.id
    if not group.prompt.prompt_token_ids:
        raise ValueError(f"prompt '{prompt_id}' has no prompt_token_ids; tokenise prompts before training")
    if len(group.rewards) != len(group.completions):
        raise ValueError(
            f"group of prompt '{prompt_id}' has {len(group.completions)} completions "
            f"but {len(group.rewards)} rewards"
        )
    for completion in group.completions:
        if len(completion.token_ids) != len(completion.logprobs):
            raise ValueError(
                f"completion {completion.sample_idx} of prompt '{prompt_id}' has "
                f"{len(completion.token_ids)} tokens but {len(completion.logprobs)} logprobs"
            )


def build_train_batch(
    groups: list[Group], pad_token_id: int, algorithm: AlgorithmConfig, max_response_len: int | None = None
) -> TrainBatch:
    """Pad the groups' prompt+response rows; advantages, v_q, ETR's bounds and the normaliser of the step.

    max_response_len: the generation budget (rollout.max_new_tokens) for Dr.GRPO's normaliser; default the
    longest response.
    """
    if not groups:
        raise ValueError("no groups to build a train batch from")
    for group in groups:
        _check_group(group)
    rows = [(g.prompt.prompt_token_ids, c) for g in groups for c in g.completions]
    response_width = max(len(c.token_ids) for _, c in rows)
    max_response_len = max_response_len or max(response_width, 1)
    if response_width > max_response_len:
        raise ValueError(
            f"a response has {response_width} tokens, more than max_response_len={max_response_len}"
        )
    width = max(len(p) + len(c.token_ids) for p, c in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    response_mask = torch.zeros((n, response_width))
    rollout_logprobs = torch.zeros((n, response_width))
    for i, (prompt_ids, completion) in enumerate(rows):
        tokens = list(prompt_ids) + list(completion.token_ids)
        input_ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[i, : len(tokens)] = 1
        response_mask[i, : len(completion.token_ids)] = 1.0
        rollout_logprobs[i, : len(completion.logprobs)] = torch.tensor(completion.logprobs)
    rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float32)
    group_ids = torch.tensor([gi for gi, g in enumerate(groups) for _ in g.completions], dtype=torch.long)
    reward_range = tuple(algorithm.reward_range)
    advantages, group_var_norm = compute_advantages(
        algorithm.adv_estimator, rewards, group_ids, reward_range, algorithm.unbiased_std
    )
    eps_low = eps_high = torch.zeros(n)
    metrics: dict[str, float] = {}
    if algorithm.name == "etr":
        lengths = response_mask.sum(-1).long()
        bounds = elastic_bounds(rewards, group_ids, lengths, algorithm, reward_range)
        eps_low, eps_high, metrics = bounds.eps_low, bounds.eps_high, bounds.metrics
    loss_norm = _loss_norm(response_mask, algorithm.loss_agg_mode, max_response_len)
    return TrainBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        prompt_lens=torch.tensor([len(p) for p, _ in rows], dtype=torch.long),
        response_mask=response_mask,
        rollout_logprobs=rollout_logprobs,
        advantages=advantages,
        group_var_norm=group_var_norm,
        eps_low=eps_low,
        eps_high=eps_high,
        group_index=group_ids,
        policy_version=torch.tensor([c.policy_version for _, c in rows], dtype=torch.long),
        loss_agg_mode=algorithm.loss_agg_mode,
        max_response_len=max_response_len,
        mini_batches=(MiniBatchInfo(rows=n, max_rows=n, loss_norm=loss_norm),),
        metrics=metrics,
    )


def _loss_norm(response_mask: Tensor, mode: str, max_response_len: int) -> float:
    """At least 1, like aggregate_loss's own normaliser, so a batch without response tokens gives loss 0."""
    return max(aggregation_norm(response_mask, mode, max_response_len), 1.0)


def mini_batch_rows(batch: TrainBatch, num_ranks: int, num_mini_batches: int, seed: int) -> list[Tensor]:
    """Row indices of each PPO mini-batch: whole groups, in an order drawn by a seeded permutation.

    Fewer mini-batches than asked when the step has too few groups or rows to give every rank a row of each.
    """
    groups = torch.unique(batch.group_index)  # [Q]
    order = groups[torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed))]
    for count in range(min(num_mini_batches, len(groups)), 0, -1):
        minis = [order[part] for part in split_rows(len(order), count)]
        rows = [torch.nonzero(torch.isin(batch.group_index, mini)).squeeze(-1) for mini in minis]
        if all(len(r) >= num_ranks for r in rows):
            return rows
    raise ValueError(f"a batch of {batch.num_rows} rows cannot give each of {num_ranks} ranks a row")


def trained_rows(batch: TrainBatch, mini: Tensor, num_ranks: int) -> Tensor:
    """The mini-batch's rows with a non-zero advantage, topped up with A = 0 rows until every rank has one.

    Exact when no term but the policy loss is on: a row with A = 0 adds 0 to its loss and gradient, and the
    normaliser stays the whole mini-batch's.
    """
    zero = batch.advantages[mini] == 0
    return torch.cat([mini[~zero], mini[zero][: max(num_ranks - int((~zero).sum()), 0)]])


def shard_batch(
    batch: TrainBatch,
    num_ranks: int,
    num_mini_batches: int = 1,
    seed: int = 0,
    skip_zero_advantage: bool = False,
) -> list[TrainBatch]:
    """Cut the step batch into PPO mini-batches (mini_batch_rows), each into one contiguous part per rank.

    Rank r's shard holds its part of every mini-batch, so a mini-batch is the same rows whatever num_ranks.
    skip_zero_advantage: leave out the rows with A = 0 (trained_rows; the caller checks that no KL or entropy
    term needs them); their tokens still count in the loss normaliser.
    """
    if len(batch.mini_batches) != 1:
        raise ValueError("shard_batch takes a whole step batch (from build_train_batch), not a shard of one")
    if num_ranks < 1 or num_mini_batches < 1:
        raise ValueError(f"num_ranks ({num_ranks}) and num_mini_batches ({num_mini_batches}) must be >= 1")
    rank_rows: list[list[Tensor]] = [[] for _ in range(num_ranks)]
    rank_infos: list[list[MiniBatchInfo]] = [[] for _ in range(num_ranks)]
    for mini in mini_batch_rows(batch, num_ranks, num_mini_batches, seed):
        norm = _loss_norm(batch.response_mask[mini], batch.loss_agg_mode, batch.max_response_len)
        if skip_zero_advantage:
            mini = trained_rows(batch, mini, num_ranks)
        parts = split_rows(len(mini), num_ranks)
        max_rows = max(part.stop - part.start for part in parts)
        for rank, part in enumerate(parts):
            rank_rows[rank].append(mini[part])
            rank_infos[rank].append(MiniBatchInfo(part.stop - part.start, max_rows, norm))
    return [
        batch.rows(torch.cat(rows), tuple(infos)) for rows, infos in zip(rank_rows, rank_infos, strict=True)
    ]


def split_mini_batches(shard: TrainBatch) -> list[tuple[TrainBatch, MiniBatchInfo]]:
    """This shard's part of each PPO mini-batch, with the mini-batch's step-wide facts."""
    if sum(info.rows for info in shard.mini_batches) != shard.num_rows:
        raise ValueError("the shard's mini_batches do not add up to its rows; build shards with shard_batch")
    parts, start = [], 0
    for info in shard.mini_batches:
        parts.append((shard.rows(slice(start, start + info.rows)), info))
        start += info.rows
    return parts


def micro_batches(
    batch: TrainBatch,
    micro_batch_size: int,
    max_rows: int | None = None,
    by_length: bool = False,
    by_group: bool = False,
) -> list[MicroBatch]:
    """ceil(max_rows / micro_batch_size) balanced micro-batches, trimmed of unused padding.

    max_rows is the largest rank's row count: every rank then runs the same number of forward/backward
    passes (ZeRO-3 gathers parameters collectively); a rank short of rows repeats its first row with
    loss weight 0. by_length: rows sorted by length first, so each micro-batch pads to similar rows.
    by_group: then a group's rows next to each other (by length within it), so the shared-prefix forward
    runs its prompt once for as many of them as a micro-batch holds.
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    if batch.num_rows == 0:
        raise ValueError("cannot cut an empty batch into micro-batches")
    if by_length:
        lengths = batch.prompt_lens + batch.response_mask.sum(-1).long()
        batch = batch.rows(torch.sort(lengths, stable=True).indices, batch.mini_batches)
    if by_group:
        batch = batch.rows(torch.sort(batch.group_index, stable=True).indices, batch.mini_batches)
    count = math.ceil((max_rows or batch.num_rows) / micro_batch_size)
    micros = []
    for part in split_rows(batch.num_rows, count):
        if part.stop > part.start:
            micros.append(MicroBatch(batch.rows(part).trimmed(), 1.0))
        else:
            micros.append(MicroBatch(batch.rows(slice(0, 1)).trimmed(), 0.0))
    return micros
