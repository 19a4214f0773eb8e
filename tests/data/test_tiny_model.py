import os
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from etr_dist.data import tiny_model
from etr_dist.data.atomic_dir import build_once
from etr_dist.data.tiny_model import ensure_tiny_model

FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return ensure_tiny_model(tmp_path_factory.mktemp("cache"))


def test_two_builds_are_byte_identical(model_dir, tmp_path):
    again = ensure_tiny_model(tmp_path)
    assert again == tmp_path / "tiny-qwen2-v1024-s0" and model_dir.name == again.name
    for name in FILES:
        assert (model_dir / name).read_bytes() == (again / name).read_bytes(), name
    other_seed = ensure_tiny_model(tmp_path, seed=1)
    assert (other_seed / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_reload_gives_the_configured_float32_qwen2(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.intermediate_size) == ("qwen2", 64, 128)
    assert cfg.num_hidden_layers == 2
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size) == (2, 1, 1024)
    assert cfg.max_position_embeddings >= 1024 and cfg.tie_word_embeddings
    assert model.dtype == torch.float32 and sum(p.numel() for p in model.parameters()) == 139_840
    assert len(tokenizer) <= 1024
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert cfg.eos_token_id == tokenizer.eos_token_id == model.generation_config.eos_token_id
    text = "What is 66 + 24? \\boxed{90}"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    ids = torch.tensor([tokenizer(text).input_ids])
    first = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert first.shape == (1, ids.shape[1] + 5) and torch.equal(first, model.generate(ids, max_new_tokens=5))


def test_a_built_folder_is_reused(model_dir):
    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(model_dir.parent) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="vocab_size must be in"):
        ensure_tiny_model(model_dir.parent, vocab_size=50_000)


def test_build_once_leaves_nothing_behind_on_failure_and_accepts_a_concurrent_winner(tmp_path):
    def failing(out_dir):
        (out_dir / "partial").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_once(tmp_path / "model", failing)
    assert os.listdir(tmp_path) == []

    def loses_the_race(out_dir):
        (out_dir / "mine").write_text("mine")
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "theirs").write_text("theirs")

    assert build_once(tmp_path / "model", loses_the_race) == tmp_path / "model"
    assert os.listdir(tmp_path) == ["model"] and os.listdir(tmp_path / "model") == ["theirs"]


def test_cli_prints_the_model_folder(model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["tiny_model", "--out", str(model_dir.parent)])
    tiny_model.main()
    assert capsys.readouterr().out.strip() == str(model_dir)


@pytest.mark.slow
def test_vllm_cpu_loads_and_samples_the_tiny_model(model_dir, monkeypatch):
    for name, value in {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}.items():
        monkeypatch.setenv(name, value)
    vllm = pytest.importorskip("vllm")
    llm = vllm.LLM(model=str(model_dir), dtype="float32", enforce_eager=True, max_model_len=1024)
    params = vllm.SamplingParams(max_tokens=8, temperature=1.0, logprobs=0, seed=0, ignore_eos=True)
    (output,) = llm.chat([{"role": "user", "content": "What is 2 + 3?"}], params)[0].outputs
    assert len(output.token_ids) == 8 and all(t < 1024 for t in output.token_ids)
    assert [next(iter(lp.values())).logprob <= 0 for lp in output.logprobs] == [True] * 8
