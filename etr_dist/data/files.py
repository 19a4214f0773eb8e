"""Prompt sources from local jsonl/parquet files; malformed rows are skipped, counted and logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etr_dist.config.schema import DataConfig
from etr_dist.data.prompts import DATA_SOURCES, DataStats, Splits, make_prompt

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

Row = tuple[int, str, str]  # (row index in its file, question, answer)
FILE_SOURCES = ("jsonl", "parquet")  # null data.train_size / eval_size: every usable row of their files
HELD_OUT_ROWS = 100  # eval rows held out of train_path when there is no eval_path and data.eval_size is null


def first_invalid_json_line(path: Path) -> str:
    """Where a jsonl file stops being JSON, so the error names the line rather than a parser detail."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                if line.strip():
                    return f"line {number} is not valid JSON ({err})"
    return "the file could not be parsed"


def read_table(path_str: str, kind: str) -> datasets.Dataset:
    """The file's rows through HF datasets; a missing or unreadable file raises an error naming it."""
    import datasets  # imported on use: it takes ~1.5 s and only file sources need it

    path = Path(path_str).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as err:  # datasets wraps arrow/JSON parse errors in several exception types
        detail = first_invalid_json_line(path) if kind == "json" else str(err)
        raise ValueError(f"cannot read {path} as {kind}: {detail}") from err


def row_problem(row: dict[str, Any], key: str, allow_numbers: bool) -> str | None:
    """Why row[key] is unusable (missing, wrong type, empty), or None when it is fine."""
    value = row.get(key)
    if value is None:
        return f"missing {key!r}"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (isinstance(value, str) or (allow_numbers and is_number)):
        return f"{key!r} is a {type(value).__name__}, not a string"
    if not str(value).strip():
        return f"empty {key!r}"
    return None


def valid_rows(path: str, kind: str, cfg: DataConfig, stats: DataStats) -> list[Row]:
    """The file's usable rows; each skipped one is logged with its index and reason and counted in stats."""
    table = read_table(path, kind)
    for key in (cfg.question_key, cfg.answer_key):
        if key not in table.column_names:
            raise KeyError(f"{path} has no column {key!r}; its columns are {table.column_names}")
    rows: list[Row] = []
    skipped = 0
    for index, row in enumerate(table):
        # Numeric answers are common in math data (and datasets may decode "42" as 42 in mixed columns).
        reason = row_problem(row, cfg.question_key, False) or row_problem(row, cfg.answer_key, True)
        if reason:
            skipped += 1
            stats.skipped_by_reason[reason] += 1
            logger.warning("%s row %d skipped: %s", path, index, reason)
        else:
            rows.append((index, row[cfg.question_key], str(row[cfg.answer_key])))
    if not rows:
        raise ValueError(f"{path} has no usable rows ({skipped} skipped, see the log)")
    return rows


def capped(rows: list[Row], size: int | None, what: str) -> list[Row]:
    """The first `size` rows when the user capped the split (data.<what>_size), else all of them."""
    if size is None or len(rows) <= size:
        return rows
    logger.warning(
        "data: using the first %d of %d usable %s rows (data.%s_size=%d; null uses them all)",
        size,
        len(rows),
        what,
        what,
        size,
    )
    return rows[:size]


def load_files(cfg: DataConfig, stats: DataStats, kind: str) -> Splits:
    """Train from train_path; eval from eval_path, else the last eval_size (default HELD_OUT_ROWS) rows of
    train_path held out. Every usable row is used unless data.train_size / eval_size cap it."""
    if cfg.train_path is None:
        raise ValueError(f"data.source={cfg.source} needs data.train_path")
    train_rows = valid_rows(cfg.train_path, kind, cfg, stats)
    if cfg.eval_path is not None:
        eval_rows = valid_rows(cfg.eval_path, kind, cfg, stats)
    else:
        held_out = HELD_OUT_ROWS if cfg.eval_size is None else cfg.eval_size
        if len(train_rows) <= held_out:
            raise ValueError(
                f"{cfg.train_path} has {len(train_rows)} usable rows, too few to hold out {held_out} for eval "
                f"(data.eval_size, null = {HELD_OUT_ROWS}) and train on the rest; set data.eval_path or lower "
                "data.eval_size"
            )
        split = len(train_rows) - held_out
        train_rows, eval_rows = train_rows[:split], train_rows[split:]
        logger.warning(
            "data: no data.eval_path: the last %d of %d usable rows of %s are held out for eval",
            held_out,
            len(train_rows) + held_out,
            cfg.train_path,
        )
    eval_questions = {question for _, question, _ in eval_rows}
    disjoint_rows = []
    for index, question, answer in train_rows:
        if question in eval_questions:
            stats.skipped_by_reason["question also in the eval split"] += 1
            logger.warning("%s row %d skipped: its question is also in the eval split", cfg.train_path, index)
        else:
            disjoint_rows.append((index, question, answer))
    train = [make_prompt(cfg, "train", i, q, a) for i, q, a in capped(disjoint_rows, cfg.train_size, "train")]
    evals = [make_prompt(cfg, "eval", i, q, a) for i, q, a in capped(eval_rows, cfg.eval_size, "eval")]
    return train, evals


@DATA_SOURCES.register("jsonl")
def load_jsonl(cfg: DataConfig, stats: DataStats) -> Splits:
    return load_files(cfg, stats, "json")


@DATA_SOURCES.register("parquet")
def load_parquet(cfg: DataConfig, stats: DataStats) -> Splits:
    return load_files(cfg, stats, "parquet")
