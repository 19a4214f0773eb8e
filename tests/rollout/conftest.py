"""Rollout test fixtures: the tiny Qwen2 checkpoint and prompts tokenised as the data layer does."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt
from etr_dist.data.tiny_model import ensure_tiny_model

QUESTIONS = ["What is 3 + 4?", "What is 12 + 30? Let's think step by step.", "What is 7 - 7?"]


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(ensure_tiny_model(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="session")
def tiny_prompts(tiny_model_path: str) -> list[Prompt]:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    prompts = []
    for i, question in enumerate(QUESTIONS):
        messages = [{"role": "user", "content": question}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
        prompts.append(
            Prompt(id=f"p{i}", text=question, answer="", source="test", messages=messages, prompt_token_ids=tuple(ids))
        )
    return prompts


@pytest.fixture(scope="session")
def rollout_config() -> RolloutConfig:
    return RolloutConfig(group_size=4, max_new_tokens=12, generate_batch_size=5, seed=0)
