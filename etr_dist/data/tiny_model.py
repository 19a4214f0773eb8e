"""A 2-layer Qwen2 model with its own small byte-level BPE, built locally in seconds for tests/demos."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from etr_dist.data.atomic_dir import build_once

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
MAX_VOCAB_SIZE = 8192
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ENGLISH = (
    "What is the answer? Put the final answer in \\boxed{}. Let's think step by step. "
    "The answer is the sum of the two numbers. First we add, then we subtract. "
    "She has apples and he has oranges; how many do they have in total? "
    "Therefore, the result is shown below."
)


def training_corpus(num_lines: int = 2000) -> list[str]:
    """Arithmetic sentences, digits, \\boxed{} answers and some English, the same on every call."""
    rng = random.Random(0)
    lines = [ENGLISH, "0 1 2 3 4 5 6 7 8 9 " * 4]
    for _ in range(num_lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice("+-")
        result = a + b if op == "+" else a - b
        lines.append(f"What is {a} {op} {b}? {a} {op} {b} = {result}. The answer is \\boxed{{{result}}}.")
    return lines


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on training_corpus(), with eos/pad tokens and a ChatML-style chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, IM_START, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, chat_template=CHAT_TEMPLATE
    )


def build_tiny_model(out_dir: Path, vocab_size: int, seed: int) -> None:
    """Write the tokenizer and a seeded float32 Qwen2 model (safetensors) into out_dir.

    Two heads of 32 dims rather than four of 16: vLLM's CPU attention supports head sizes from 32 up.
    """
    tokenizer = build_tokenizer(vocab_size)
    config = Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=vocab_size,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def ensure_tiny_model(cache_dir: str | Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    """The tiny model's HF folder in cache_dir, built on first use; identical (vocab_size, seed) reuse it."""
    if not 300 <= vocab_size <= MAX_VOCAB_SIZE:
        raise ValueError(f"tiny model vocab_size must be in [300, {MAX_VOCAB_SIZE}], got {vocab_size}")
    final_dir = Path(cache_dir).expanduser() / f"tiny-qwen2-v{vocab_size}-s{seed}"
    return build_once(final_dir, lambda tmp_dir: build_tiny_model(tmp_dir, vocab_size, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=ensure_tiny_model.__doc__)
    parser.add_argument("--out", required=True, help="cache folder; the model is built in a subfolder of it")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(ensure_tiny_model(args.out, args.vocab_size, args.seed))


if __name__ == "__main__":
    main()
