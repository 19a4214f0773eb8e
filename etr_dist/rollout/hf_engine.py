"""A plain transformers model with the decode loop of hf_decode: slower than vLLM but runs on any device."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.precision import compute_dtype
from etr_dist.rollout.engine import SamplingSpec, prompt_ids, register_engine
from etr_dist.rollout.hf_decode import Decoded, decode


@register_engine("hf")
class HFEngine:
    def __init__(self, model_path: str, cfg: RolloutConfig, model_dtype: str) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = compute_dtype(model_dtype, self.device)  # auto: bf16 where the hardware has bf16 matmuls
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.eos_ids = _eos_ids(self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id)
        pad_id = self.tokenizer.pad_token_id
        self.pad_id = pad_id if pad_id is not None else self.eos_ids[0]
        self.batch_size = cfg.generate_batch_size

    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, policy_version: int
    ) -> list[Completion]:
        ids = [prompt_ids(prompt, self.tokenizer) for prompt in prompts]
        per_batch = max(
            1, self.batch_size // sampling.n
        )  # whole prompts: each is prefilled once for its n rows
        completions: list[Completion] = []
        # A private RNG stream per call: one seed gives the same samples, and the caller's RNG is untouched.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(prompts), per_batch):
                batch = slice(start, start + per_batch)
                decoded = decode(self.model, ids[batch], sampling, self.eos_ids, self.pad_id)
                completions += self._completions(prompts[batch], sampling.n, decoded, policy_version)
        return completions

    def _completions(
        self, prompts: list[Prompt], n: int, decoded: Decoded, policy_version: int
    ) -> list[Completion]:
        rows = [(prompt, k) for prompt in prompts for k in range(n)]
        return [
            Completion(
                prompt_id=prompt.id,
                sample_idx=sample_idx,
                token_ids=tokens,  # eos stays: the learner trains on it
                logprobs=logprobs,
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                finish_reason="stop" if stopped else "length",
                policy_version=policy_version,
            )
            for (prompt, sample_idx), tokens, logprobs, stopped in zip(
                rows, decoded.tokens, decoded.logprobs, decoded.stopped, strict=True
            )
        ]

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Checks every name and shape before copying any, so a bad bucket changes nothing."""
        params = dict(self.model.named_parameters(remove_duplicate=False))  # tied lm_head.weight included
        incoming = list(named_tensors)
        for name, tensor in incoming:
            if name not in params:
                raise KeyError(f"unknown parameter '{name}' for {type(self.model).__name__}")
            if tensor.shape != params[name].shape:
                raise ValueError(
                    f"parameter '{name}' has shape {tuple(tensor.shape)}, the engine expects "
                    f"{tuple(params[name].shape)}"
                )
        for name, tensor in incoming:
            params[name].copy_(tensor)

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().cpu().clone() for name, p in self.model.named_parameters()}


def _eos_ids(*sources: int | list[int] | None) -> list[int]:
    """Union of the tokenizer's and the generation config's eos ids (either may be one id, a list or None)."""
    ids: set[int] = set()
    for source in sources:
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    if not ids:
        raise ValueError(
            "the model defines no eos token: neither its tokenizer nor its generation config has one"
        )
    return sorted(ids)
