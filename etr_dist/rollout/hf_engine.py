"""transformers `generate`: slower than vLLM but runs on any device, the always-available fallback."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.rollout.engine import SamplingSpec, prompt_ids, register_engine


@register_engine("hf")
class HFEngine:
    def __init__(self, model_path: str, cfg: RolloutConfig, model_dtype: str) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = getattr(torch, model_dtype) if self.device.type == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.eos_ids = _eos_ids(self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        # A bare generation config: a checkpoint's defaults (top_k, repetition penalty) would change the
        # distribution sampled from away from the logits / temperature + top_p the learner assumes.
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=pad_id)
        self.batch_size = cfg.generate_batch_size

    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, policy_version: int
    ) -> list[Completion]:
        rows = [
            (prompt, prompt_ids(prompt, self.tokenizer), k) for prompt in prompts for k in range(sampling.n)
        ]
        completions: list[Completion] = []
        # A private RNG stream per call: one seed gives the same samples, and the caller's RNG is untouched.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            for start in range(0, len(rows), self.batch_size):
                completions += self._generate_batch(
                    rows[start : start + self.batch_size], sampling, policy_version
                )
        return completions

    @torch.no_grad()
    def _generate_batch(
        self, rows: list[tuple[Prompt, list[int], int]], sampling: SamplingSpec, policy_version: int
    ) -> list[Completion]:
        batch = self.tokenizer.pad({"input_ids": [ids for _, ids, _ in rows]}, return_tensors="pt").to(
            self.device
        )
        sample = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0}
        out = self.model.generate(
            **batch,
            **(sample if sampling.temperature > 0 else {"do_sample": False}),
            max_new_tokens=sampling.max_new_tokens,
            output_scores=True,  # the processed scores: logits / temperature with top_p's -inf mask
            return_dict_in_generate=True,
        )
        new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
        logprobs = torch.stack(
            [
                torch.log_softmax(step.float(), dim=-1).gather(1, new_tokens[:, t : t + 1]).squeeze(1)
                for t, step in enumerate(out.scores)
            ],
            dim=1,
        )
        completions = []
        for row, (prompt, _, sample_idx) in enumerate(rows):
            tokens = new_tokens[row].tolist()
            stop = next((i for i, token in enumerate(tokens) if token in self.eos_ids), None)
            length = len(tokens) if stop is None else stop + 1  # eos stays: the learner trains on it
            completions.append(
                Completion(
                    prompt_id=prompt.id,
                    sample_idx=sample_idx,
                    token_ids=tokens[:length],
                    logprobs=logprobs[row, :length].tolist(),
                    text=self.tokenizer.decode(tokens[:length], skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    policy_version=policy_version,
                )
            )
        return completions

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
