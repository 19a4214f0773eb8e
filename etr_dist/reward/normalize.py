"""Rewrite an answer so that equal answers written differently become equal strings (regex only, no sympy).

Most correct answers match here, so most items never reach the slow symbolic stage. Every rule is a
linear-time substitution that drops only notation a reader would not count as part of the answer's value
(delimiters, spacing, units, `x =`).
"""

from __future__ import annotations

import re
import unicodedata

_UNICODE_TO_LATEX = str.maketrans(
    {
        "\u2212": "-",  # minus sign
        "\u2013": "-",
        "\u00d7": r"\times ",
        "\u00f7": r"\div ",
        "\u22c5": r"\cdot ",
        "\u00b7": r"\cdot ",
        "\u03c0": r"\pi ",
        "\u221e": r"\infty ",
        "\u221a": r"\sqrt ",
        "\u00b0": r"^\circ ",
        "\u2264": r"\le ",
        "\u2265": r"\ge ",
        "\u2260": r"\ne ",
        "\u222a": r"\cup ",
        "\u00b2": "^2",
        "\u00b3": "^3",
        "\u00bd": "1/2",
        "\u2044": "/",  # fraction slash
    }
)
_MATH_DELIMITERS = (("\\(", "\\)"), ("\\[", "\\]"))
_SPACING = re.compile(
    r"\\(?:left|right)\.|\\(?:left|right|[bB]igg?[lr]?|displaystyle|textstyle|quad|qquad)(?![a-zA-Z])"
    r"|(?<!\\)\\[!,;: ]|~"
)
_FRAC_VARIANT = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")
_FRAC_DIGIT_DENOMINATOR = re.compile(r"\\frac(\{[^{}]*\})(\d)")
_FRAC_DIGIT_NUMERATOR = re.compile(r"\\frac(\d)\{")
_SQRT_DIGIT = re.compile(r"\\sqrt(\d)")
_RELATION_SPELLING = re.compile(r"\\(le|ge|ne)q(?![a-zA-Z])")
_SINGLE_CHARACTER_GROUP = re.compile(r"([\^_])\{(\w)\}")  # x^{2} -> x^2
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\degree(?![a-zA-Z])|\\circ(?![a-zA-Z])")
_PERCENT_AND_CURRENCY = re.compile(r"\\?[%$]")
_TEXT_COMMAND = r"\\(?:text(?:bf|it|rm|sf|tt|normal)?|math(?:rm|bf|it|sf)|mbox|boxed|fbox)"
_TRAILING_TEXT_UNIT = re.compile(_TEXT_COMMAND + r"\s*\{[^{}]*\}(?:\^\{?\d\}?)?\s*$")
_TEXT_WRAPPER = re.compile(_TEXT_COMMAND + r"\s*\{([^{}]*)\}")
_NUMBER_THEN_WORDS = re.compile(r"(-?[\d.,/]+)\s+[a-zA-Z][a-zA-Z .]*(?:\^\d)?")
_FILLER_THEN_NUMBER = re.compile(  # only words that leave the value alone: `not 7`, `at least 7` stay
    r"(?:(?:clearly|therefore|thus|hence|so|just|simply|exactly|then|obviously|indeed|about|approximately|roughly"
    r"|around|equal to|equals) )+(-?[\d.,/]+)"
)
_AND_OR = re.compile(r"\s+(?:and|or)\s+|,\s*(?:and|or)\s+")
_SPACE_NOT_BETWEEN_LETTERS = re.compile(r"(?<![a-zA-Z]) | (?![a-zA-Z])")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_LATEX_THOUSANDS = re.compile(r"(?<=\d)\{,\}(?=\d)")
_CHOICE_LETTER = re.compile(r"\(([A-Za-z])\)")
_ASSIGNMENT = re.compile(
    r"(?:(?:[a-zA-Z]{1,3}|\\[a-zA-Z]+)(?:_\{?\w+\}?)?(?:\([a-z]\))?)?(?:=|\\(?:in|approx)(?![a-zA-Z]))(.+)"
)


def _strip_delimiters(text: str) -> str:
    text = text.strip()
    for opening, closing in _MATH_DELIMITERS:
        if text.startswith(opening) and text.endswith(closing):
            text = text[len(opening) : -len(closing)].strip()
    return text


def _unwrap_text_commands(text: str) -> str:
    trimmed = _TRAILING_TEXT_UNIT.sub("", text).strip()
    if trimmed and trimmed != text:
        text = trimmed  # `5\text{ cm}^2` -> `5`; a lone `\text{Monday}` stays
    for _ in range(4):  # nested wrappers unwrap from the inside, one level a pass
        unwrapped = _TEXT_WRAPPER.sub(r"\1", text)
        if unwrapped == text:
            break
        text = unwrapped
    return text


def _strip_trailing_punctuation(text: str) -> str:
    stripped = text.rstrip(".,;:!?")
    while stripped.endswith("\\\\"):  # a LaTeX line break
        stripped = stripped[:-2].rstrip(".,;:!?")
    return stripped


def _strip_outer_braces(text: str) -> str:
    """`{{5}}` -> `5` but `{1}{2}` unchanged, in one pass: peel as many layers as never close early."""
    layers = min(len(text) - len(text.lstrip("{")), len(text) - len(text.rstrip("}")))
    if layers == 0 or layers * 2 >= len(text):
        return text
    depth = 0
    for index, char in enumerate(text[: len(text) - layers]):
        depth += 1 if char == "{" else -1 if char == "}" else 0
        if index >= layers - 1:
            layers = min(layers, depth)
    return text[layers : len(text) - layers]


def _tidy(text: str) -> str:
    text = _strip_outer_braces(_strip_trailing_punctuation(text))
    choice = _CHOICE_LETTER.fullmatch(text)
    if choice:
        return choice.group(1)
    assignment = _ASSIGNMENT.fullmatch(text)
    if assignment and "=" not in assignment.group(1):
        text = assignment.group(1)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    return text


def normalize_answer(text: str) -> str:
    """Canonical string form of an extracted answer or a reference."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_UNICODE_TO_LATEX))
        text = "".join(char for char in text if unicodedata.category(char) != "Cf")  # zero-width, bidi marks
    text = " ".join(text.split())  # single spaces first: no pattern below can then backtrack on long runs
    text = _PERCENT_AND_CURRENCY.sub("", _strip_delimiters(text))
    text = _SPACING.sub(" ", text)
    text = _FRAC_VARIANT.sub(r"\\frac", text)
    text = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", text)
    text = _FRAC_DIGIT_DENOMINATOR.sub(r"\\frac\1{\2}", text)
    text = _FRAC_DIGIT_NUMERATOR.sub(r"\\frac{\1}{", text)
    text = _SQRT_DIGIT.sub(r"\\sqrt{\1}", text)
    text = _RELATION_SPELLING.sub(r"\\\1", text)
    text = _SINGLE_CHARACTER_GROUP.sub(r"\1\2", _DEGREES.sub("", text))
    text = _LATEX_THOUSANDS.sub("", _unwrap_text_commands(text))
    text = " ".join(text.split())
    number_with_words = _NUMBER_THEN_WORDS.fullmatch(text) or _FILLER_THEN_NUMBER.fullmatch(text)
    if number_with_words:
        text = number_with_words.group(1)  # `18 dollars` -> `18`, `clearly 7` -> `7`
    text = _AND_OR.sub(",", text)
    text = _SPACE_NOT_BETWEEN_LETTERS.sub("", text)
    return _tidy(_tidy(text))


def is_text_answer(text: str) -> bool:
    """Words, not math: `Monday`, `north east` (compared case-insensitively, never sent to sympy)."""
    return bool(re.fullmatch(r"[A-Za-z]+(?: [A-Za-z]+)*", text)) and any(len(w) >= 3 for w in text.split())
