"""Load the project's answer sets (tests/data): labelled cases for agreement, adversarial ones for limits.

Adversarial inputs are stored compactly: a field is either a string or {"repeat", "times", "prefix",
"suffix"}, expanded here, so a megabyte input costs a line of JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data"
LABELLED_PATH = DATA_DIR / "grader_labelled.jsonl"
ADVERSARIAL_PATH = DATA_DIR / "grader_adversarial.jsonl"


@dataclass(frozen=True)
class LabelledCase:
    id: str
    source: str  # math | gsm8k | extraction | arithmetic
    response: str
    reference: str
    label: int  # 1: the response's final answer is the reference's
    note: str
    last_number_fallback: bool = False  # the dataset's choice: on for GSM8K-style and arithmetic cases


@dataclass(frozen=True)
class AdversarialCase:
    id: str
    note: str
    response: str
    reference: str


def _expand(field: Any) -> str:
    if isinstance(field, str):
        return field
    return field.get("prefix", "") + field["repeat"] * field["times"] + field.get("suffix", "")


def _rows(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def load_labelled(path: Path = LABELLED_PATH) -> list[LabelledCase]:
    return [LabelledCase(**row) for row in _rows(path)]


def load_adversarial(path: Path = ADVERSARIAL_PATH) -> list[AdversarialCase]:
    return [
        AdversarialCase(row["id"], row["note"], _expand(row["response"]), _expand(row["reference"]))
        for row in _rows(path)
    ]
