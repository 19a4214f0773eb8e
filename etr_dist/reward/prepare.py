"""Turn an extracted answer into math-verify's input, doing only what the library does not do itself.

math-verify reads LaTeX variants, `\\left`/`\\right`, units and `\\text{}` after a value, relations, sets,
intervals and matrices. It does not read some Unicode symbols, digits grouped by spaces or thin spaces
(`1 000`, `1\\,000`: it multiplies them), decimal commas (`3,5`: a set to it), nor a value inside words
(`\\text{6 hours}`). Every rule here is a linear-time rewrite.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from etr_dist.reward.extract import has_prose

# Only symbols math-verify misreads (it already reads the minus sign, pi, times and the relations).
_UNICODE_TO_LATEX = str.maketrans(
    {
        "\u2013": "-",  # en dash
        "\u00b7": r"\cdot ",
        "\u221e": r"\infty ",
        "\u221a": r"\sqrt ",
        "\u00b0": r"^\circ ",
        "\u222a": r"\cup ",
        "\u00b2": "^2",
        "\u00b3": "^3",
        "\u00bd": "1/2",
        "\u2044": "/",  # fraction slash
    }
)
# Math delimiters, and the dollar signs math-verify would drop itself (a currency `\$` as well).
_DELIMITER = re.compile(r"\\?\$|\\[()\[\]]")
_WHOLE_TEXT = re.compile(r"\\(?:text(?:bf|it|rm|sf|tt|normal)?|mbox)\s*\{([^{}]*)\}")
_GROUPED = re.compile(r"-?[1-9]\d{0,2}(?:(,|\{,\}|\\,|\\ |\\;|~| )\d{3})(?:\1\d{3})*(?:\.\d+)?")
_GROUP_SEPARATOR = re.compile(r"\{,\}|\\,|\\ |\\;|[,~ ]")
_DECIMAL_COMMA = re.compile(r"(-?\d+)(?:,|\{,\})(\d+)")
PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Prepared:
    """An answer ready for math-verify: `math` is LaTeX for `$...$`; `prose`, when words surround the value,
    is the text math-verify should find the value in first (`12 apples`)."""

    math: str
    prose: str | None = None


def _fold_unicode(text: str) -> str:
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text.translate(_UNICODE_TO_LATEX))
    return "".join(char for char in text if unicodedata.category(char) != "Cf")  # zero-width, bidi marks


def _strip_trailing(text: str) -> str:
    """Drop sentence punctuation and LaTeX line breaks (`\\\\`) at the end, in linear time."""
    while True:
        stripped = text.rstrip(" .,;:!?")
        stripped = stripped[:-2] if stripped.endswith("\\\\") else stripped
        if stripped == text:
            return text
        text = stripped


def _ungroup(text: str, decimal_comma: bool) -> str:
    """`1 000`, `1\\,000`, `1{,}000`, `1,000` -> `1000`; with decimal_comma, `3,5` and `0,125` -> `3.5` and
    `0.125` (`3,500` stays a thousands grouping)."""
    if _GROUPED.fullmatch(text):
        return _GROUP_SEPARATOR.sub("", text)
    comma = _DECIMAL_COMMA.fullmatch(text) if decimal_comma else None
    return f"{comma.group(1)}.{comma.group(2)}" if comma else text


def prepare(text: str, *, decimal_comma: bool = False) -> Prepared:
    """math-verify's input for an answer; decimal_comma reads `3,5` as 3.5 (when the other side is a single
    number, so `3,5` against `3, 5` stays a list)."""
    text = " ".join(_fold_unicode(text).split())
    whole_text = _WHOLE_TEXT.fullmatch(text)
    words = whole_text.group(1).strip() if whole_text else text
    prose = words if has_prose(words) else None
    math = _ungroup(_strip_trailing(" ".join(_DELIMITER.sub(" ", text).split())), decimal_comma)
    if prose is None and whole_text:
        math = _ungroup(words, decimal_comma)  # `\text{1,000}`: a number wrapped in text
    return Prepared(math, prose)


def is_plain_number(answer: Prepared) -> bool:
    """An integer or decimal and nothing else: the numeric fast path's domain (numeric.py)."""
    return answer.prose is None and PLAIN_NUMBER.fullmatch(answer.math) is not None
