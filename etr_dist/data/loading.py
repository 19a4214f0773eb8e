"""The data layer's entry points: load the configured prompt source, then tokenise its prompts once."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from etr_dist.config.schema import DataConfig
from etr_dist.data import files, synthetic  # noqa: F401  (importing them registers their sources)
from etr_dist.data.prompts import DATA_SOURCES, DataStats
from etr_dist.data.records import Prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# A generated source's split sizes when data.train_size / data.eval_size are null (a file source then takes
# every row of its files instead, etr_dist.data.files).
GENERATED_SPLIT_SIZES = {"train_size": 2000, "eval_size": 100}


def check_prompt_template(template: str) -> None:
    try:
        uses_question = template.format(question="A") != template.format(question="B")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"data.prompt_template {template!r} is not a format string over {{question}}: {err}"
        ) from err
    if not uses_question:
        raise ValueError(f"data.prompt_template {template!r} does not contain {{question}}")


def load_prompts(cfg: DataConfig, stats: DataStats | None = None) -> tuple[list[Prompt], list[Prompt]]:
    """Disjoint (train, eval) prompts of data.source; rows it skips are counted in stats."""
    check_prompt_template(cfg.prompt_template)
    stats = stats if stats is not None else DataStats()
    train, evals = DATA_SOURCES.get(cfg.source)(with_split_sizes(cfg), stats)
    if stats.skipped_rows:
        logger.warning("data: skipped %d rows: %s", stats.skipped_rows, dict(stats.skipped_by_reason))
    return _graded_as_configured(train, cfg), _graded_as_configured(evals, cfg)


def with_split_sizes(cfg: DataConfig) -> DataConfig:
    """cfg, with a generated source's null split sizes set to GENERATED_SPLIT_SIZES (files keep null: all rows)."""
    missing = {key: size for key, size in GENERATED_SPLIT_SIZES.items() if getattr(cfg, key) is None}
    if cfg.source in files.FILE_SOURCES or not missing:
        return cfg
    typed = cfg if dataclasses.is_dataclass(cfg) else OmegaConf.to_object(cfg)
    return dataclasses.replace(typed, **missing)


def _graded_as_configured(prompts: list[Prompt], cfg: DataConfig) -> list[Prompt]:
    """Every source's prompts carry the dataset's grading choice to the grader (one place for all sources)."""
    fallback = bool(cfg.last_number_fallback)
    return [
        p if p.last_number_fallback == fallback else dataclasses.replace(p, last_number_fallback=fallback)
        for p in prompts
    ]


def encode_prompts(
    prompts: list[Prompt],
    tokenizer: PreTrainedTokenizerBase,
    cfg: DataConfig,
    stats: DataStats | None = None,
) -> list[Prompt]:
    """Copies with prompt_token_ids set (via the chat template if enabled and present); drops long ones."""
    if not prompts:
        return []
    use_chat = cfg.use_chat_template and bool(getattr(tokenizer, "chat_template", None))
    if use_chat:
        chats = [p.messages or [{"role": "user", "content": p.text}] for p in prompts]
        texts = [
            tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats
        ]
    else:
        texts = ["\n\n".join(m["content"] for m in p.messages) if p.messages else p.text for p in prompts]
    # A chat template writes its own special tokens; plain text gets the tokenizer's usual ones (e.g. BOS).
    token_ids = tokenizer(texts, add_special_tokens=not use_chat)["input_ids"]
    encoded, too_long = [], []
    for prompt, ids in zip(prompts, token_ids, strict=True):
        if len(ids) > cfg.max_prompt_tokens:
            too_long.append(prompt.id)
        else:
            encoded.append(dataclasses.replace(prompt, prompt_token_ids=tuple(ids)))
    if too_long:
        logger.warning(
            "data: skipped %d prompts longer than data.max_prompt_tokens=%d, e.g. %s",
            len(too_long),
            cfg.max_prompt_tokens,
            too_long[:5],
        )
    if stats is not None:
        stats.too_long_prompts += len(too_long)
    return encoded
