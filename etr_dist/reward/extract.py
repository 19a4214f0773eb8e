"""Find the final answer in a model response or a reference: boxed, GSM8K `####`, "the answer is", the last
math span, a bare answer, and (per dataset) the last number.

Every function here runs in time linear in the input, whatever its braces, dollars or length, so no input can
stall a worker in extraction; only parsing and verification need the pool's hard timeout.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)")
_BRACE = re.compile(r"\\[{}]|[{}]")  # escaped braces (\{ \}) are set delimiters, not groups
_BARE_BOX_ARGUMENT = re.compile(r"\s+([^\s$]+)")  # `\boxed 5`
# What may stand between the boxes of one answer: punctuation, spacing, math delimiters, "and", "or".
_CONNECTIVES = re.compile(
    r"(?:\s|[,;&~]|\\?\$|\\[()\[\],;]|\\q?quad|and|or|\\text\s*\{\s*(?:and|or|,)?\s*\})*"
)
_VALUE_START = re.compile(r"[-+(\[$\\\d.]")
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
# The anchor only: "Final Answer: The final answer is x" holds two anchors, and the answer follows the last.
_ANSWER_IS = re.compile(r"(?i)\banswer(?:\s+is|\s*:|\*+\s*:)[\s*:]*")
# Math delimiters and sentence ends; an escaped dollar (`\$`) is a currency sign, never a delimiter.
_TOKEN = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]|\n|\.(?=\s|$)")
_CLOSES = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
# A number that starts a word: nothing glued before it ("AZYUK2A", "H2O", "v1.2" hold none), a unit may
# follow ("5km", "100m²").
_NUMBER = re.compile(
    r"(?<![\w.])-?(?:[1-9]\d{0,2}(?:,\d{3})+|[1-9]\d{0,2}(?: \d{3})+|\d+)(?:\.\d+)?(?:/\d+)?(?!\d|\.\d)"
)
MAX_BARE_CHARS = 200
# LaTeX groups whose letters are not prose: `\text{ cm}`, `\begin{pmatrix}`, `\operatorname{lcm}`.
_LETTER_GROUP = re.compile(
    r"\\(?:text(?:bf|it|rm|sf|tt|normal)?|math(?:rm|bf|it|sf)|mbox|operatorname|end)\s*\{[^{}]*\}"
    r"|\\begin\s*\{[^{}]*\}(?:\s*\{[^{}]*\})?"  # `\begin{array}{cc}`
)
# A word standing alone between spaces or punctuation: `apples` in `12 apples`, not `xy` in `2xy` nor `AB` in
# `AB=4`; "and"/"or" join a list (`3 and 5`).
_PROSE_WORD = re.compile(
    r"(?<![^\s(])(?!(?:and|or)\b)(?:[A-Za-z]{3,}|(?i:is|of|in|so|to|be|it|at|on|by|we|as|an|if))(?=[\s.,;:!?)]|$)"
)


def _closing_braces(text: str, start: int) -> dict[int, int]:
    """Map each `{` at or after `start` to its matching `}` in one pass (unmatched ones are absent)."""
    matches: dict[int, int] = {}
    stack: list[int] = []
    for token in _BRACE.finditer(text, start):
        if token.group() == "{":
            stack.append(token.start())
        elif token.group() == "}" and stack:
            matches[stack.pop()] = token.start()
    return matches


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every `\\boxed{...}` / `\\fbox{...}` whose braces close, and `\\boxed 5`."""
    commands = list(_BOX_COMMAND.finditer(text))
    closing = _closing_braces(text, commands[0].end()) if commands else {}
    boxes = []
    for command in commands:
        brace = command.end()
        if brace < len(text) and text[brace] == "{":
            if brace in closing:
                boxes.append((command.start(), closing[brace] + 1, text[brace + 1 : closing[brace]].strip()))
            continue
        bare = _BARE_BOX_ARGUMENT.match(text, brace)
        if bare:
            boxes.append((command.start(), bare.end(), bare.group(1)))
    return boxes


def boxed(text: str) -> tuple[int, str] | None:
    """(start, content) of the last box, joined with the boxes before it that only connectives separate
    (`\\boxed{1} and \\boxed{2}` -> `1, 2`): one answer in several boxes."""
    boxes = _boxes(text)
    if not boxes:
        return None
    start, _, content = boxes[-1]
    parts = [content]
    for previous_start, previous_end, previous in reversed(boxes[:-1]):
        if previous_end > start or not _CONNECTIVES.fullmatch(text, previous_end, start):
            break
        if previous != parts[0]:
            parts.insert(0, previous)
        start = previous_start
    return start, ", ".join(parts)


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def hashes(text: str) -> tuple[int, str] | None:
    """GSM8K style: (start, what follows) for the last `####` on its line."""
    found = _last_match(_GSM8K, text)
    answer = found.group(1).strip() if found else ""
    return (found.start(), answer) if found and answer else None


def _is_price(text: str, dollar: re.Match[str], spaced_span: bool) -> bool:
    """A `$` that cannot close an inline span, as in Pandoc: one before a digit (`$5 and $6`), or one after a
    space when the span did not open with one (`$400 + $60 = $460`); it opens a span again instead."""
    after = text[dollar.end() : dollar.end() + 1]
    before = text[dollar.start() - 1 : dollar.start()]
    return after.isdigit() or (before.isspace() and not spaced_span)


def _math_tokens(text: str, start: int = 0) -> Iterator[tuple[str, re.Match[str]]]:
    """(kind, match) for each delimiter or sentence end, with kind "open", "close", "end" (a sentence end or
    line break outside math) or "" (a token inside math or a stray closer, to skip)."""
    opened: str | None = None
    spaced = False  # the open `$` span began with a space (`$ x $`): it may end with one
    for token in _TOKEN.finditer(text, start):
        symbol = token.group()
        if opened is None or (symbol == "$" == opened and _is_price(text, token, spaced)):
            kind = "open" if symbol in _CLOSES else "end" if symbol in ("\n", ".") else ""
            opened = symbol if kind == "open" else None
            spaced = text[token.end() : token.end() + 1].isspace()
        elif symbol == _CLOSES[opened]:
            kind, opened = "close", None
        elif symbol == "\n" and opened in ("$", "\\("):  # an inline span never crosses a line
            kind, opened = "end", None
        else:
            kind = ""
        yield kind, token


def answer_is(text: str) -> tuple[int, str] | None:
    """(start, answer) after the last "the (final) answer is" / "Answer:", to the end of its sentence (a
    period or line break outside math, so `$3.5$` and a multi-line `\\[...\\]` stay whole)."""
    found = _last_match(_ANSWER_IS, text)
    if not found:
        return None
    end = next((token.start() for kind, token in _math_tokens(text, found.end()) if kind == "end"), len(text))
    answer = unwrap_math(text[found.end() : end].replace('\\"', '"').strip().strip("*\"'").strip())
    return (found.start(), answer) if answer else None


def _is_value(answer: str) -> bool:
    """Math, or prose that starts with a value (`12 apples`), not "correct because ...": only a value may
    override a box."""
    return not has_prose(answer) or _VALUE_START.match(answer) is not None


def marked_answer(text: str) -> str | None:
    """The latest of the last box, the last `####` and the last "answer is" value: a conclusion written
    after a box ("... Final Answer: The final answer is $10$") overrides it."""
    found = [boxed(text), hashes(text)]
    stated = answer_is(text)
    if stated and (_is_value(stated[1]) or not any(found)):
        found.append(stated)
    latest = max((item for item in found if item), default=None)
    return latest[1] if latest else None


def last_math_span(text: str) -> str | None:
    """Content of the last closed `$...$`, `$$...$$`, `\\(...\\)` or `\\[...\\]`, joined with the spans before
    it that only connectives separate (`$1$ and $2$` -> `1, 2`). An inline span ends at a line break, so a
    lone currency sign cannot swallow the rest of a response."""
    spans: list[tuple[int, int, str]] = []  # (start, end, content) of the closed spans
    opening: re.Match[str] | None = None
    for kind, token in _math_tokens(text):
        if kind == "open":
            opening = token
        elif kind == "close" and opening is not None:
            spans.append((opening.start(), token.end(), text[opening.end() : token.start()].strip()))
    if not spans:
        return None
    start, _, content = spans[-1]
    parts = [content]
    for previous_start, previous_end, previous in reversed(spans[:-1]):
        if not _CONNECTIVES.fullmatch(text, previous_end, start):
            break
        parts.insert(0, previous)
        start = previous_start
    return ", ".join(part for part in parts if part) or None


def unwrap_math(text: str) -> str:
    """`$x$` -> `x` when one math span is the whole text; `$3$ or $5$` stays as it is."""
    tokens = [(kind, token) for kind, token in _math_tokens(text) if kind in ("open", "close")]
    if len(tokens) == 2 and tokens[0][1].start() == 0 and tokens[1][1].end() == len(text):
        return text[tokens[0][1].end() : tokens[1][1].start()].strip()
    return text


def has_prose(text: str) -> bool:
    """Words outside LaTeX commands and `\\text{}`-like groups: `12 apples`, `x is 5` (not `5\\text{ cm}`)."""
    return bool(_PROSE_WORD.search(_LETTER_GROUP.sub(" ", text)))


def bare_answer(text: str) -> str | None:
    """A response that is nothing but an answer (`-4`, `\\frac{1}{2}`, `(3, \\pi)`): one short line, no prose."""
    answer = text.strip().rstrip(".").strip()
    if not answer or len(answer) > MAX_BARE_CHARS or "\n" in answer or has_prose(answer):
        return None
    return answer


def last_number(text: str) -> str | None:
    """The last number that stands alone (`so 7 in all` -> 7); digits inside a word (`AZYUK2A`) are not one."""
    found = _last_match(_NUMBER, text)
    return found.group() if found else None


def extract_answer(response: str, *, last_number_fallback: bool = False) -> str | None:
    """The final answer a response commits to, or None: a marked answer (box, `####`, "answer is") beats the
    last math span beats a bare answer; the last number only where the dataset allows it."""
    for extractor in (marked_answer, last_math_span, bare_answer):
        answer = extractor(response)
        if answer is not None:
            return answer
    return last_number(response) if last_number_fallback else None


def extract_reference(reference: str) -> str:
    """A reference may be a bare answer (MATH), a whole solution (boxed, `####`) or an answer in `$...$`."""
    for extractor in (marked_answer, last_math_span):
        answer = extractor(reference)
        if answer is not None:
            return answer
    return reference.strip()
