"""The hf engine's decode loop: each prompt prefilled once for its n samples, finished rows dropped, no cache copies.

transformers' `generate` prefills every sample's copy of a prompt, keeps decoding rows that hit eos, and grows its
KV cache by concatenation (a copy of the whole cache per layer per step). Here a batch of distinct prompts is
prefilled once (lm_head on the last position only), its cache repeated n times, and each step writes its keys and
values in place into a buffer sized for the whole generation; once an eighth of the active rows have finished they
are dropped from the batch, cache included. Tokens, finish reasons and log-probs are those `generate` gives: the
sampling distribution is logits / temperature then transformers' own top-p warper, greedy is the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, TopPLogitsWarper
from transformers.cache_utils import DynamicLayer

from etr_dist.rollout.engine import SamplingSpec

COMPACT_FRACTION = (
    8  # drop finished rows once 1/8 of the active batch has finished (each drop copies the cache)
)


class BufferLayer(DynamicLayer):
    """A full-attention cache layer whose keys/values are views of a buffer preallocated for the generation."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions in place (transformers' DynamicLayer concatenates: a full copy per step)."""
        if not self.is_initialized:
            self.dtype, self.device, self.is_initialized = key_states.dtype, key_states.device, True
            batch, heads, _, _ = key_states.shape
            self._keys = key_states.new_empty((batch, heads, self.capacity, key_states.shape[-1]))
            self._values = value_states.new_empty((batch, heads, self.capacity, value_states.shape[-1]))
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV buffer of {self.capacity} positions is full (asked for {end})")
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def _view(self) -> None:
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keys = self._keys.repeat_interleave(repeats, dim=0)
        self._values = self._values.repeat_interleave(repeats, dim=0)
        self._view()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._view()


def buffered_cache(model: PreTrainedModel, capacity: int) -> DynamicCache:
    """The model's own cache layout with every full-attention layer preallocated (sliding layers stay as they are)."""
    cache = DynamicCache(config=model.config)
    if not cache.layers:  # no layer types in the config: all full attention
        cache = DynamicCache()
        cache.layers = [DynamicLayer() for _ in range(model.config.get_text_config().num_hidden_layers)]
    cache.layers = [BufferLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@dataclass
class Decoded:
    """Per row (prompt-major, n rows per prompt): the new tokens up to and including eos, and their log-probs."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    stopped: list[bool]


def pick(logits: torch.Tensor, sampling: SamplingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(token [A], its log-prob [A]) from float32 logits [A, V]: generate's processing, then an exponential race."""
    if sampling.temperature == 0:
        token = logits.argmax(-1)
        return token, torch.log_softmax(logits, -1).gather(1, token[:, None])[:, 0]
    scores = logits / sampling.temperature
    if sampling.top_p < 1.0:
        scores = TopPLogitsWarper(sampling.top_p)(None, scores)
    logprobs = torch.log_softmax(scores, -1)
    # argmax p / E with E ~ Exp(1) draws from p (the Gumbel-max trick), several times cheaper than multinomial
    race = torch.empty_like(logprobs).exponential_().clamp_(min=torch.finfo(logprobs.dtype).tiny)
    token = (logprobs.exp() / race).argmax(-1)
    return token, logprobs.gather(1, token[:, None])[:, 0]


@torch.no_grad()
def decode(
    model: PreTrainedModel, prompts: list[list[int]], sampling: SamplingSpec, eos_ids: list[int], pad_id: int
) -> Decoded:
    """sampling.n continuations of each prompt, decoded together."""
    device, n, budget = model.device, sampling.n, sampling.max_new_tokens
    width = max(len(ids) for ids in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width + budget), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding: every prompt ends at column width - 1
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) : width] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, :width].cumsum(-1) - 1).masked_fill(mask[:, :width] == 0, 1)
    cache = buffered_cache(model, width + budget)
    out = model(
        input_ids=ids,
        attention_mask=mask[:, :width],
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1].float().repeat_interleave(n, 0)
    cache.batch_repeat_interleave(n)
    mask, next_position = mask.repeat_interleave(n, 0), positions[:, -1].repeat_interleave(n, 0) + 1
    rows = torch.arange(len(prompts) * n, device=device)  # the original row of each active row
    tokens = torch.full((rows.numel(), budget), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((rows.numel(), budget), dtype=torch.float32, device=device)
    lengths = torch.full((rows.numel(),), budget, dtype=torch.long, device=device)
    stopped = torch.zeros(rows.numel(), dtype=torch.bool, device=device)
    eos = torch.tensor(eos_ids, device=device)
    finished = torch.zeros(rows.numel(), dtype=torch.bool, device=device)
    for step in range(budget):
        token, logprob = pick(logits, sampling)
        tokens[rows, step], logprobs[rows, step] = token, logprob
        stops = torch.isin(token, eos) & ~finished
        lengths[rows[stops]], stopped[rows[stops]] = step + 1, True
        finished |= stops
        done = int(finished.sum())
        if step == budget - 1 or done == rows.numel():
            break
        if done * COMPACT_FRACTION >= rows.numel():
            keep = (~finished).nonzero()[:, 0]
            cache.batch_select_indices(keep)
            rows, token, finished = rows[keep], token[keep], finished[keep]
            mask, next_position = mask[keep], next_position[keep]
        mask[:, width + step] = 1
        logits = (
            model(
                input_ids=token[:, None],
                attention_mask=mask[:, : width + step + 1],
                position_ids=(next_position + step)[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            .logits[:, -1]
            .float()
        )
    lengths_list = lengths.tolist()
    return Decoded(
        tokens=[row[:length] for row, length in zip(tokens.tolist(), lengths_list, strict=True)],
        logprobs=[row[:length] for row, length in zip(logprobs.tolist(), lengths_list, strict=True)],
        stopped=stopped.tolist(),
    )
