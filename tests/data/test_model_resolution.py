import json

import pytest
from transformers import AutoConfig, AutoTokenizer

from etr_dist.config.schema import ModelConfig
from etr_dist.models import resolve_model_path


def test_tiny_source_builds_in_the_cache_dir(tmp_path):
    path = resolve_model_path(ModelConfig(source="tiny", cache_dir=str(tmp_path)))
    assert path == tmp_path / "tiny-qwen2-v1024-s0"
    assert json.loads((path / "config.json").read_text())["model_type"] == "qwen2"


def test_hf_source_needs_a_folder_with_config_json(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_path(ModelConfig(source="hf", path=str(tmp_path))) == tmp_path
    missing = tmp_path / "x"
    with pytest.raises(FileNotFoundError, match=f"model.path {missing} is not a Hugging Face model folder"):
        resolve_model_path(ModelConfig(source="hf", path=str(tmp_path / "x")))
    with pytest.raises(ValueError, match="model.source=hf needs model.path"):
        resolve_model_path(ModelConfig(source="hf"))
    with pytest.raises(KeyError, match="known: \\['hf', 'smollm2', 'tiny'\\]"):
        resolve_model_path(ModelConfig(source="llama"))


@pytest.mark.slow
def test_smollm2_is_converted_once_to_float32_safetensors(tmp_path):
    cfg = ModelConfig(source="smollm2", cache_dir=str(tmp_path))
    path = resolve_model_path(cfg)
    assert path == tmp_path / "smollm2-135m-instruct"
    config = AutoConfig.from_pretrained(path)
    assert (config.model_type, config.vocab_size, config.num_hidden_layers) == ("llama", 49152, 30)
    assert getattr(config, "quantization_config", None) is None
    assert (path / "model.safetensors").stat().st_size > 500_000_000  # 134.5M float32 parameters
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_path(cfg) == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
