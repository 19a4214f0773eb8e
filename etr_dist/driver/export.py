"""Turn a run's ZeRO-3 checkpoint into a plain Hugging Face model folder, offline and without ranks."""

from __future__ import annotations

from pathlib import Path

from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from etr_dist.driver.checkpoint import find_checkpoint
from etr_dist.models import resolve_model_path


def export_hf(path: str | Path, out_dir: str | Path) -> Path:
    """The checkpoint at `path` (a run folder's latest, or a step_<N> folder) as an HF model folder at out_dir."""
    try:
        run_dir, checkpoint = find_checkpoint(Path(path))
    except FileNotFoundError as err:
        raise FileNotFoundError(why_no_checkpoint(Path(path)) or str(err)) from None
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


def why_no_checkpoint(run_dir: Path) -> str | None:
    """For a run folder without a checkpoint, what its own config.yaml says about why (None: not a run folder)."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    every = OmegaConf.load(config).trainer.save_every
    if every == 0:
        return (
            f"{run_dir} has no checkpoint to export: it was trained with trainer.save_every=0, which saves none "
            "(the laptop demo's setting). Train with trainer.save_every=N (a checkpoint every N steps and at the "
            "end), e.g. `make demo DEMO_ARGS=trainer.save_every=5`, then export that run"
        )
    return (
        f"{run_dir} has no checkpoint yet: it saves one every trainer.save_every={every} steps and at its end; "
        "export it once it has saved one"
    )
