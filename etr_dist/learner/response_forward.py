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
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from etr_dist.algos import entropy_from_logits, logprobs_from_logits
from etr_dist.learner.batch import TrainBatch
from etr_dist.learner.objective import response_logits_and_labels
from etr_dist.learner.shared_prefix import PAD_ID, shared_prefix_logits


@dataclass(frozen=True)
class ResponseLogits:
    """The logits that predict a micro-batch's response tokens, and those tokens.

    Either one slot per response position, padding included (logits [n, T, V], labels [n, T]), or only the M
    real response tokens (logits [1, M, V], labels [1, M]) with `positions` [n, T] saying where they go: the
    packed forward's layout, where padding would cost a [V] row of log-softmax and entropy each.
    """

    logits: Tensor
    labels: Tensor
    positions: Tensor | None = None  # [n, T] bool, M true (row-major order of the M tokens)

    def log_probs(self, chunk_size: int, temperature: float, top_p: float) -> Tensor:
        """log p(response tokens) [n, T] under the sampling distribution (0 at padding when packed)."""
        values = logprobs_from_logits(self.logits, self.labels, chunk_size, temperature, top_p)
        return self.spread(values)

    def entropy(self, chunk_size: int, temperature: float, top_p: float) -> Tensor:
        """Entropy of the sampling distribution at each response position [n, T] (0 at padding when packed)."""
        return self.spread(entropy_from_logits(self.logits, chunk_size, temperature, top_p))

    def spread(self, values: Tensor) -> Tensor:
        """[1, M] -> [n, T] with zeros at padding (differentiable); [n, T] values are returned as they are."""
        if self.positions is None:
            return values
        return values.new_zeros(self.positions.shape).masked_scatter(self.positions, values)


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
) -> ResponseLogits:
    """The logits that predict a micro-batch's response tokens.

    shared_prefix: one packed forward per distinct prompt where rows share one and the model takes a block mask
    (logits at the real response tokens only); otherwise the aligned (at_response_only) or the plain forward.
    """
    if shared_prefix and (packed := shared_prefix_logits(model, batch)) is not None:
        logits, labels, positions = packed
        return ResponseLogits(logits, labels, positions)
    response_width = batch.response_mask.shape[1]
    if not at_response_only:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        return ResponseLogits(
            *response_logits_and_labels(logits, batch.input_ids, batch.prompt_lens, response_width)
        )
    inputs = aligned_inputs(batch)
    prompt_width = inputs["input_ids"].shape[1] - response_width
    keep = torch.arange(prompt_width - 1, prompt_width - 1 + response_width, device=batch.input_ids.device)
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    return ResponseLogits(logits, inputs["input_ids"][:, prompt_width:])
