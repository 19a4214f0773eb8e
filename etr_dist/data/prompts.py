"""What every prompt source shares: its registry, skip counters and how a question becomes a Prompt."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from etr_dist.config.schema import DataConfig
from etr_dist.data.records import Prompt
from etr_dist.registry import Registry


@dataclass
class DataStats:
    """Rows and prompts dropped while loading and tokenising, by reason, so the driver can log them."""

    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    too_long_prompts: int = 0

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped_by_reason.values())


Splits = tuple[list[Prompt], list[Prompt]]
SourceLoader = Callable[[DataConfig, DataStats], Splits]

# name -> loader(cfg, stats) returning disjoint (train, eval) prompts.
DATA_SOURCES: Registry[SourceLoader] = Registry("data source", config_key="data.source")


def make_prompt(cfg: DataConfig, split: str, index: int, question: str, answer: str) -> Prompt:
    """A Prompt with a stable id, the templated text and its chat messages (system prompt first, if any)."""
    text = cfg.prompt_template.format(question=question)
    messages = [{"role": "user", "content": text}]
    if cfg.system_prompt:
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    return Prompt(
        id=f"{cfg.source}-{split}-{index}",
        text=text,
        answer=answer,
        source=cfg.source,
        messages=messages,
    )
