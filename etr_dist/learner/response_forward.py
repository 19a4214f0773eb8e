"""The policy's forward for a micro-batch: logits at the positions that predict response tokens, and only there.

The plain path runs the lm_head on every position of the right-padded rows ([n, L, V]) and gathers the response
positions. The aligned path lays each row out as its prompt left-padded to the micro-batch's longest prompt P,
then its response right-padded to the width T: the logit that predicts response token t is column P - 1 + t in
every row, so the model's lm_head runs on those n x T columns only (transformers' logits_to_keep, inside the
model's own forward, so ZeRO-3 gathers lm_head and tied embeddings as always). position_ids keep each token's
position in its own sequence and padding is masked: the values are the plain path's up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from etr_dist.learner.batch import TrainBatch
from etr_dist.learner.objective import response_logits_and_labels
from etr_dist.learner.shared_prefix import PAD_ID, shared_prefix_logits


def aligned_inputs(batch: TrainBatch) -> dict[str, Tensor]:
    """input_ids, attention_mask and position_ids [n, P + T] with prompts left- and responses right-padded."""
    input_ids, prompt_lens, response_mask = batch.input_ids, batch.prompt_lens, batch.response_mask
    width = int(prompt_lens.max())
    columns = torch.arange(width, device=input_ids.device)
    source = columns[None, :] - (width - prompt_lens)[:, None]  # [n, P]: the column in the right-padded row
    in_prompt = source >= 0
    steps = torch.arange(response_mask.shape[1], device=input_ids.device)
    response_source = (prompt_lens[:, None] + steps).clamp(max=input_ids.shape[1] - 1)  # [n, T]
    in_response = response_mask > 0
    prompt_ids = input_ids.gather(1, source.clamp(min=0))
    response_ids = input_ids.gather(1, response_source)
    return {
        "input_ids": torch.cat(
            [prompt_ids.masked_fill(~in_prompt, PAD_ID), response_ids.masked_fill(~in_response, PAD_ID)], 1
        ),
        "attention_mask": torch.cat([in_prompt, in_response], 1).long(),
        "position_ids": torch.cat([source.clamp(min=0), prompt_lens[:, None] + steps], 1),
    }


def response_logits(
    model: Callable[..., Any], batch: TrainBatch, at_response_only: bool = True, shared_prefix: bool = False
) -> tuple[Tensor, Tensor]:
    """([n, T, V] logits that predict the response tokens, [n, T] response token ids) of a micro-batch.

    shared_prefix: one packed forward per distinct prompt where rows share one and the model takes a block mask;
    otherwise the aligned (at_response_only) or the plain forward.
    """
    if shared_prefix and (packed := shared_prefix_logits(model, batch)) is not None:
        return packed
    response_width = batch.response_mask.shape[1]
    if not at_response_only:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        return response_logits_and_labels(logits, batch.input_ids, batch.prompt_lens, response_width)
    inputs = aligned_inputs(batch)
    prompt_width = inputs["input_ids"].shape[1] - response_width
    keep = torch.arange(prompt_width - 1, prompt_width - 1 + response_width, device=batch.input_ids.device)
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    return logits, inputs["input_ids"][:, prompt_width:]
