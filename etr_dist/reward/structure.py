"""Split composite answers into their parts: tuples and intervals, sets and lists, unions, matrices.

Tuples and intervals keep their order and their open/closed ends; sets, bare comma lists and unions of
intervals are unordered; matrices keep their shape. The parts are compared by the scalar comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORDERED = "ordered"  # (a, b), [a, b), \langle a, b \rangle: ends and order matter
UNORDERED = "unordered"  # \{a, b\} and the bare list `a, b`
UNION = "union"  # I_1 \cup I_2
MATRIX = "matrix"

_MATRIX = re.compile(r"\\begin\{([pbvBV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}", re.DOTALL)
_ROW_BREAK = re.compile(r"\\\\")
_SPLIT_TOKEN = re.compile(r"\\[{}]|\\cup(?![a-zA-Z])|[()\[\]{},]")


@dataclass(frozen=True)
class Composite:
    kind: str
    ends: str  # the opening and closing bracket for ORDERED, else ""
    parts: tuple[str, ...]
    shape: tuple[int, int] = (0, 0)  # rows, columns for MATRIX


def split_top_level(text: str, separator: str) -> list[str]:
    """Split at `separator` (`,` or `\\cup`) outside any bracket; `[1, 2)` counts as one bracket pair."""
    parts, depth, start = [], 0, 0
    for token in _SPLIT_TOKEN.finditer(text):
        symbol = token.group()
        if symbol in ("(", "[", "{", "\\{"):
            depth += 1
        elif symbol in (")", "]", "}", "\\}"):
            depth -= 1
        elif symbol == separator and depth == 0:
            parts.append(text[start : token.start()])
            start = token.end()
    parts.append(text[start:])
    return parts


def _wraps_whole(text: str, opening_length: int) -> bool:
    """The bracket at the start closes at the very end (so `(1)+(2)` is not one bracketed group)."""
    depth = 0
    for token in _SPLIT_TOKEN.finditer(text, opening_length, len(text) - opening_length):
        symbol = token.group()
        depth += 1 if symbol in ("(", "[", "{", "\\{") else -1 if symbol in (")", "]", "}", "\\}") else 0
        if depth < 0:
            return False
    return depth == 0


def _matrix(text: str) -> Composite | None:
    found = _MATRIX.fullmatch(text)
    if not found:
        return None
    rows = [row for row in _ROW_BREAK.split(found.group(2)) if row.strip()]
    cells = [row.split("&") for row in rows]
    if not cells or len({len(row) for row in cells}) != 1:
        return None
    return Composite(
        MATRIX, "", tuple(cell.strip() for row in cells for cell in row), (len(cells), len(cells[0]))
    )


def parse_composite(text: str) -> Composite | None:
    """The composite structure of a normalised answer, or None for a scalar."""
    if text.startswith("\\begin"):
        return _matrix(text)
    union = split_top_level(text, "\\cup")
    if len(union) > 1:
        return Composite(UNION, "", tuple(union))
    if text.startswith("\\{") and text.endswith("\\}") and _wraps_whole(text, 2):
        return Composite(UNORDERED, "", tuple(split_top_level(text[2:-2], ",")))
    if text.startswith("\\langle") and text.endswith("\\rangle"):
        return Composite(ORDERED, "()", tuple(split_top_level(text[7:-7], ",")))
    if len(text) > 1 and text[0] in "([" and text[-1] in ")]" and _wraps_whole(text, 1):
        inner = split_top_level(text[1:-1], ",")
        if len(inner) > 1:
            return Composite(ORDERED, text[0] + text[-1], tuple(inner))
        return None
    items = split_top_level(text, ",")
    return Composite(UNORDERED, "", tuple(items)) if len(items) > 1 else None
