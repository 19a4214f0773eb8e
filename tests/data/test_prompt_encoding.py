import pytest

from etr_dist.config.schema import DataConfig
from etr_dist.data.loading import encode_prompts
from etr_dist.data.prompts import DataStats, make_prompt
from etr_dist.data.records import Prompt
from etr_dist.data.tiny_model import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(1024)


def test_chat_template_with_generation_prompt(tokenizer):
    cfg = DataConfig(system_prompt="Be brief.")
    prompt = make_prompt(cfg, "train", 0, "What is 2 + 3?", "5")
    (encoded,) = encode_prompts([prompt], tokenizer, cfg)
    assert tokenizer.decode(encoded.prompt_token_ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert encoded.prompt_token_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert encoded.prompt_token_ids.count(tokenizer.eos_token_id) == 2
    assert encoded == Prompt(**{**vars(prompt), "prompt_token_ids": encoded.prompt_token_ids})
    assert prompt.prompt_token_ids is None


def test_plain_text_without_chat_template(tokenizer):
    cfg = DataConfig(use_chat_template=False, system_prompt="Be brief.")
    prompt = make_prompt(cfg, "train", 0, "What is 2 + 3?", "5")
    (encoded,) = encode_prompts([prompt], tokenizer, cfg)
    assert list(encoded.prompt_token_ids) == tokenizer("Be brief.\n\nWhat is 2 + 3?").input_ids
    without_template = build_tokenizer(1024)
    without_template.chat_template = None
    bare = Prompt(id="x-0", text="What is 2 + 3?", answer="5", source="x")
    (plain,) = encode_prompts([bare], without_template, DataConfig())
    assert tokenizer.decode(plain.prompt_token_ids) == "What is 2 + 3?"


def test_long_prompts_are_dropped_and_counted(tokenizer):
    questions = ["10 + 20", "1 + 2 + 3 + 4 + 5", "7"]
    lengths = [len(tokenizer(q).input_ids) for q in questions]
    cfg = DataConfig(use_chat_template=False, max_prompt_tokens=lengths[0])
    assert lengths[1] > lengths[0] > lengths[2] == 1
    prompts = [make_prompt(cfg, "train", i, q, "0") for i, q in enumerate(questions)]
    stats = DataStats()
    encoded = encode_prompts(prompts, tokenizer, cfg, stats)
    assert [p.id for p in encoded] == ["arithmetic-train-0", "arithmetic-train-2"]
    assert [len(p.prompt_token_ids) for p in encoded] == [lengths[0], 1]
    assert stats.too_long_prompts == 1 and stats.skipped_rows == 0
    assert encode_prompts([], tokenizer, cfg, stats) == []
