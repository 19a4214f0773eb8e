"""The one protocol every generation engine speaks, its sampling settings and the engine registry."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.registry import Registry


@dataclass(frozen=True)
class SamplingSpec:
    n: int  # completions per prompt
    temperature: float  # 0 = greedy (evaluation); logprobs are then those of the raw logits
    top_p: float
    max_new_tokens: int
    seed: int | None = None  # None: unseeded; the caller varies it per step for fresh samples

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingSpec.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingSpec.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise ValueError(f"SamplingSpec.n={self.n} with temperature 0: greedy decoding gives one answer")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingSpec.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingSpec.max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @classmethod
    def from_config(cls, cfg: RolloutConfig) -> SamplingSpec:
        return cls(
            n=cfg.group_size,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
        )


class GenerationEngine(Protocol):
    """Generates from token ids; logprobs are of the sampled tokens under the sampling distribution
    (logits / temperature, after top_p), the behaviour policy the learner's importance ratios divide by."""

    device: torch.device

    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, policy_version: int
    ) -> list[Completion]:
        """`sampling.n` completions per prompt, prompt-major, sample_idx 0..n-1."""
        ...

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Overwrite the named parameters (HF names); any subset, so a sync can send buckets."""
        ...

    def get_weights(self) -> dict[str, torch.Tensor]:
        """The engine's current parameters under HF names, read back from the engine itself."""
        ...


EngineFactory = Callable[[str, RolloutConfig, str], GenerationEngine]
ENGINES: Registry[EngineFactory] = Registry("generation engine", config_key="rollout.engine")


def register_engine(name: str) -> Callable[[EngineFactory], EngineFactory]:
    return ENGINES.register(name)


def prompt_ids(prompt: Prompt, tokenizer) -> list[int]:
    """The data layer's ids when present, else the prompt through the tokenizer's chat template."""
    if prompt.prompt_token_ids is not None:
        ids = list(prompt.prompt_token_ids)
    else:
        messages = prompt.messages or [{"role": "user", "content": prompt.text}]
        ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False))
    if not ids:
        raise ValueError(f"prompt '{prompt.id}' has no tokens")
    return ids
