"""Rollout test fixtures: the tiny Qwen2 checkpoint and prompts tokenised as the data layer does."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, TopPLogitsWarper

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt

QUESTIONS = ["What is 3 + 4?", "What is 12 + 30? Let's think step by step.", "What is 7 - 7?"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from intra-op threads, and on a shared 2-core box they cost 5-10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_prompts(tiny_model_path: str) -> list[Prompt]:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    prompts = []
    for i, question in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": question}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
        prompts.append(
            Prompt(
                id=f"p{i}",
                text=question,
                answer="",
                source="test",
                messages=messages,
                prompt_token_ids=tuple(ids),
            )
        )
    return prompts


@pytest.fixture(scope="session")
def rollout_config() -> RolloutConfig:
    return RolloutConfig(group_size=4, max_new_tokens=12, generate_batch_size=5, seed=0)


@pytest.fixture(scope="session")
def reference_model(tiny_model_path: str) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()


@torch.no_grad()
def teacher_forced_logprobs(
    model: PreTrainedModel,
    prompt_ids: list[int],
    completion_ids: list[int],
    temperature: float,
    top_p: float = 1.0,
) -> torch.Tensor:
    """Log-probs of completion_ids under logits / temperature (then top_p), from one HF forward pass."""
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    if top_p < 1.0:
        logits = TopPLogitsWarper(top_p)(ids, logits)
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion_ids)[:, None]).squeeze(1)


@pytest.fixture(scope="session")
def teacher_forced():
    """teacher_forced_logprobs(model, prompt_ids, completion_ids, temperature, top_p=1.0) for the tests."""
    return teacher_forced_logprobs


@dataclass(frozen=True)
class EosHeavyModel:
    """Weights under which every step samples eos with a known probability, whatever the context.

    All embeddings are ones (eos adds `gap` on dim 0) and o_proj/down_proj are zero, so every layer is the
    identity and the final hidden state is ones: the tied lm_head gives logit d to every token and d + gap
    to eos. Under temperature T, with log Z = log(exp(gap/T) + V - 1):
    log p(eos) = gap/T - log Z and log p(any other token) = -log Z.
    """

    weights: dict[str, torch.Tensor]
    eos_id: int
    gap: float
    vocab_size: int

    def logprob(self, token: int, temperature: float) -> float:
        log_z = math.log(math.exp(self.gap / temperature) + self.vocab_size - 1)
        return (self.gap / temperature if token == self.eos_id else 0.0) - log_z


@pytest.fixture(scope="session")
def eos_heavy(reference_model: PreTrainedModel, tiny_model_path: str) -> EosHeavyModel:
    eos_id = AutoTokenizer.from_pretrained(tiny_model_path).eos_token_id
    vocab_size = reference_model.config.vocab_size
    gap = math.log(0.25 * (vocab_size - 1))  # p(eos) = 0.2 at temperature 1
    weights = {name: p.detach().clone() for name, p in reference_model.named_parameters()}
    for name, value in weights.items():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            value.zero_()
        elif name.endswith("norm.weight"):
            value.fill_(1.0)
    embed = weights["model.embed_tokens.weight"].fill_(1.0)
    embed[eos_id, 0] += gap
    return EosHeavyModel(weights=weights, eos_id=eos_id, gap=gap, vocab_size=vocab_size)
