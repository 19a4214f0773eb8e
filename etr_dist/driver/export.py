"""Turn a run's ZeRO-3 checkpoint into a plain Hugging Face model folder, offline and without ranks."""

from __future__ import annotations

from pathlib import Path

from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from etr_dist.driver.checkpoint import find_checkpoint
from etr_dist.models import resolve_model_path


def export_hf(path: str | Path, out_dir: str | Path) -> Path:
    run_dir, checkpoint = find_checkpoint(Path(path))
    cfg = OmegaConf.load(run_dir / "config.yaml")
    base = resolve_model_path(cfg.model)
    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint / "learner"))
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit {base}: missing {missing}, unexpected {unexpected}"
        )
    out = Path(out_dir)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out
