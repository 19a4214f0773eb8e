"""The shared-prefix forward (Prefix Grouper, arXiv 2506.05433): a group's prompt runs once for all its responses.

The rows of a micro-batch that share a prompt become one packed sequence [prompt | r_1 | ... | r_m], prompts
left-padded to the micro-batch's longest prompt P so every prompt ends at column P - 1. One forward per
micro-batch: a 4D block mask lets each response attend to its prompt and causally to itself only, and each
response's position ids continue from its prompt's length, so every response sees exactly what it sees in its
own row. Token 0 of every response is predicted by the prompt's last position; token t > 0 by the response's own
position t - 1. One call of the model (no prompt KV cache, no second call): gradient checkpointing and ZeRO-3's
gather/release hooks behave as in the plain forward. The values are the plain path's up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from etr_dist.learner.batch import TrainBatch

PAD_ID = 0  # any id: padding is masked out of attention and out of the loss
PROMPT, PADDING = 0, -1  # segment ids; response slot j of a packed row is segment j + 1
MASKED_ATTENTION = ("sdpa", "eager")  # attention implementations that take a 4D mask as is


@dataclass(frozen=True)
class PackedRows:
    """One packed sequence per distinct prompt of a micro-batch, and where each row's logits come from."""

    input_ids: Tensor  # [K, S]
    position_ids: Tensor  # [K, S]
    segments: Tensor  # [K, S] PROMPT, PADDING or response slot + 1
    prompt_width: int  # P: every prompt ends at column P - 1
    logit_rows: Tensor  # [n, T] the packed row of micro-batch row i
    logit_columns: Tensor  # [n, T] column, counted from P - 1, of the logit that predicts response token t
    labels: Tensor  # [n, T] response token ids, PAD_ID past each response's end
    in_response: Tensor  # [n, T] bool: t < the response's length

    def allowed(self) -> Tensor:
        """[K, 1, S, S] bool: a query sees earlier keys of the prompt and of its own response (padding: itself)."""
        query, key = self.segments[:, :, None], self.segments[:, None, :]
        width = self.segments.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=query.device).tril()
        same_block = (key == PROMPT) | (key == query)
        visible = causal & same_block & (query != PADDING) & (key != PADDING)
        return (visible | torch.eye(width, dtype=torch.bool, device=query.device))[:, None]


def pack_rows(batch: TrainBatch) -> PackedRows | None:
    """The micro-batch's rows packed by prompt; None when no two rows share a prompt (nothing to save)."""
    input_ids = batch.input_ids.cpu()
    prompt_lens = batch.prompt_lens.tolist()
    response_lens = batch.response_mask.sum(-1).long().tolist()
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for row, prompt_len in enumerate(prompt_lens):
        by_prompt.setdefault(tuple(input_ids[row, :prompt_len].tolist()), []).append(row)
    if len(by_prompt) == batch.num_rows:
        return None
    prompt_width, response_width = max(prompt_lens), batch.response_mask.shape[1]
    width = prompt_width + max(sum(response_lens[row] for row in rows) for rows in by_prompt.values())
    packed_ids = torch.full((len(by_prompt), width), PAD_ID, dtype=torch.long)
    positions = torch.zeros((len(by_prompt), width), dtype=torch.long)
    segments = torch.full((len(by_prompt), width), PADDING, dtype=torch.long)
    logit_rows = torch.zeros((batch.num_rows, response_width), dtype=torch.long)
    logit_columns = torch.zeros((batch.num_rows, response_width), dtype=torch.long)
    labels = torch.full((batch.num_rows, response_width), PAD_ID, dtype=torch.long)
    in_response = torch.arange(response_width)[None, :] < torch.tensor(response_lens)[:, None]
    for packed, (prompt, rows) in enumerate(by_prompt.items()):
        prompt_columns = slice(prompt_width - len(prompt), prompt_width)
        packed_ids[packed, prompt_columns] = torch.tensor(prompt, dtype=torch.long)
        positions[packed, prompt_columns] = torch.arange(len(prompt))
        segments[packed, prompt_columns] = PROMPT
        column = prompt_width
        for slot, row in enumerate(rows):
            length, prompt_len = response_lens[row], prompt_lens[row]
            response = input_ids[row, prompt_len : prompt_len + length]
            packed_ids[packed, column : column + length] = response
            positions[packed, column : column + length] = torch.arange(prompt_len, prompt_len + length)
            segments[packed, column : column + length] = slot + 1
            logit_rows[row] = packed
            # token t > 0 is predicted at the response's own column t - 1; token 0 (and padding) at the prompt's end
            logit_columns[row, 1:length] = torch.arange(column, column + length - 1) - (prompt_width - 1)
            labels[row, :length] = response
            column += length
    device = batch.input_ids.device
    return PackedRows(
        input_ids=packed_ids.to(device),
        position_ids=positions.to(device),
        segments=segments.to(device),
        prompt_width=prompt_width,
        logit_rows=logit_rows.to(device),
        logit_columns=logit_columns.to(device),
        labels=labels.to(device),
        in_response=in_response.to(device),
    )


def takes_block_mask(model: Any, width: int) -> bool:
    """The model applies a 4D mask as given: sdpa or eager attention and no sliding window shorter than the row."""
    config = getattr(model, "module", model).config  # model: a DeepSpeed engine or the model itself
    if config._attn_implementation not in MASKED_ATTENTION:
        return False
    window, layer_types = getattr(config, "sliding_window", None), getattr(config, "layer_types", None)
    sliding = window is not None and (layer_types is None or "sliding_attention" in layer_types)
    return not sliding or width <= window


def shared_prefix_logits(
    model: Callable[..., Any], batch: TrainBatch
) -> tuple[Tensor, Tensor, Tensor] | None:
    """From one packed forward: ([1, M, V] logits that predict the M response tokens, [1, M] those tokens,
    [n, T] bool where they sit in the micro-batch); None: no packing."""
    packed = pack_rows(batch)
    if packed is None or not takes_block_mask(model, packed.input_ids.shape[1]):
        return None
    hf_model = getattr(model, "module", model)
    mask = allowed = packed.allowed()
    if hf_model.config._attn_implementation == "eager":  # eager adds the mask to the attention scores
        dtype = hf_model.get_input_embeddings().weight.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    keep = packed.input_ids.shape[1] - packed.prompt_width + 1  # columns P - 1 .. S - 1
    logits = model(
        input_ids=packed.input_ids,
        attention_mask=mask,
        position_ids=packed.position_ids,
        use_cache=False,
        logits_to_keep=keep,
    ).logits
    # [K, keep, V] -> [M, V]: one row per real response token (token 0 of a group's responses share a column)
    flat_columns = (packed.logit_rows * keep + packed.logit_columns)[packed.in_response]  # [M]
    picked = logits.reshape(-1, logits.shape[-1]).index_select(0, flat_columns)
    return picked[None], packed.labels[packed.in_response][None], packed.in_response
