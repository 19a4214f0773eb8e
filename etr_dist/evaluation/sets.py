"""Eval sets: the config's held-out split, named presets (configs/eval/<name>.yaml) and ad-hoc files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from etr_dist.config.schema import DataConfig
from etr_dist.data.files import valid_rows
from etr_dist.data.loading import check_prompt_template, encode_prompts, load_prompts
from etr_dist.data.prompts import DataStats, make_prompt
from etr_dist.data.records import Prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FILE_KINDS = {"jsonl": "json", "parquet": "parquet"}


@dataclass(frozen=True)
class EvalSetSpec:
    """What to read: a name and the data.* settings for it (source, file, keys, template, grading choice)."""

    name: str
    data: DataConfig


@dataclass
class EvalSet:
    """A spec's tokenised prompts and what loading dropped, which the summary reports."""

    name: str
    data: DataConfig
    prompts: list[Prompt]
    skipped_rows: int
    too_long_prompts: int


def preset_spec(name: str, config_dir: Path, base: DataConfig) -> EvalSetSpec:
    """configs/eval/<name>.yaml over the config's data.* keys; its relative eval_path is from the repo root."""
    path = config_dir / "eval" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (config_dir / "eval").glob("*.yaml"))
        raise FileNotFoundError(f"no eval set preset {name!r} ({path}); presets: {known}")
    values = OmegaConf.to_container(OmegaConf.load(path))
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{path}: {unknown} are not data.* keys")
    data = dataclasses.replace(base, **values)
    if data.eval_path and not Path(data.eval_path).expanduser().is_absolute():
        data = dataclasses.replace(data, eval_path=str((config_dir.parent / data.eval_path).resolve()))
    return EvalSetSpec(name, data)


def file_spec(option: str, config_dir: Path, base: DataConfig) -> EvalSetSpec:
    """`NAME=PATH[:QUESTION_KEY:ANSWER_KEY]`: a preset NAME keeps its settings but reads PATH."""
    name, sep, rest = option.partition("=")
    parts = rest.split(":")
    if not (sep and name and parts[0]) or len(parts) not in (1, 3):
        raise ValueError(f"--set {option!r}: expected NAME=PATH or NAME=PATH:QUESTION_KEY:ANSWER_KEY")
    has_preset = (config_dir / "eval" / f"{name}.yaml").is_file()
    data = preset_spec(name, config_dir, base).data if has_preset else base
    source = "parquet" if parts[0].endswith(".parquet") else "jsonl"
    data = dataclasses.replace(data, source=source, eval_path=parts[0])
    if len(parts) == 3:
        data = dataclasses.replace(data, question_key=parts[1], answer_key=parts[2])
    return EvalSetSpec(name, data)


def read_prompts(spec: EvalSetSpec, limit: int | None = None) -> tuple[list[Prompt], DataStats]:
    """A file source with eval_path: every usable row of that file (data.eval_size does not cap it, limit
    does); any other source: its held-out split, as training evaluates it."""
    data, stats = spec.data, DataStats()
    check_prompt_template(data.prompt_template)
    if data.source in FILE_KINDS and data.eval_path:
        rows = valid_rows(data.eval_path, FILE_KINDS[data.source], data, stats)
        prompts = [
            dataclasses.replace(
                make_prompt(data, "eval", index, question, answer),
                last_number_fallback=bool(data.last_number_fallback),
            )
            for index, question, answer in rows[:limit]
        ]
        return prompts, stats
    return load_prompts(data, stats)[1][:limit], stats


def load_eval_set(spec: EvalSetSpec, tokenizer: PreTrainedTokenizerBase, limit: int | None = None) -> EvalSet:
    """The spec's prompts, tokenised; prompts over data.max_prompt_tokens are dropped and counted."""
    prompts, stats = read_prompts(spec, limit)
    encoded = encode_prompts(prompts, tokenizer, spec.data, stats)
    return EvalSet(spec.name, spec.data, encoded, stats.skipped_rows, stats.too_long_prompts)
