"""Find the final answer in a model response: last boxed, GSM8K `####`, "the answer is", last number.

Every function here runs in time linear in the input, whatever its braces or length, so no input can stall a
worker in extraction; only the symbolic comparison needs the pool's hard timeout.
"""

from __future__ import annotations

import re
from collections import deque

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)")
_BRACE = re.compile(r"\\[{}]|[{}]")  # escaped braces (\{ \}) are set delimiters, not groups
_BARE_BOX_ARGUMENT = re.compile(r"\s+([^\s$]+)")  # `\boxed 5`
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
# The anchor only: "Final Answer: The final answer is x" holds two anchors, and the answer follows the last.
_ANSWER_IS = re.compile(r"(?i)\banswer(?:\s+is|\s*:|\*+\s*:)[\s*:]*")
_LINE_END = re.compile(r"\n|$")
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")


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


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` whose braces close (nested braces allowed)."""
    commands = list(_BOX_COMMAND.finditer(text))
    if not commands:
        return None
    closing = _closing_braces(text, commands[0].end())
    for command in reversed(commands):
        brace = command.end()
        if brace < len(text) and text[brace] == "{":
            if brace in closing:
                return text[brace + 1 : closing[brace]].strip()
            continue
        bare = _BARE_BOX_ARGUMENT.match(text, brace)
        if bare:
            return bare.group(1)
    return None


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    last = deque(pattern.finditer(text), maxlen=1)
    return last[0] if last else None


def after_hashes(text: str) -> str | None:
    """GSM8K style: what follows the last `####` on its line."""
    found = _last_match(_GSM8K, text)
    answer = found.group(1).strip() if found else ""
    return answer or None


def after_answer_is(text: str) -> str | None:
    """What follows the last "the (final) answer is" / "Answer:", up to the end of its sentence."""
    found = _last_match(_ANSWER_IS, text)
    if not found:
        return None
    answer = text[found.end() : _LINE_END.search(text, found.end()).start()]
    end = _SENTENCE_END.search(answer)
    answer = (answer[: end.start()] if end else answer).strip().strip("*$").strip()
    return answer or None


def last_number(text: str) -> str | None:
    found = _last_match(_NUMBER, text)
    return found.group() if found else None


def extract_answer(response: str, *, last_number_fallback: bool = True) -> str | None:
    """The final answer a response commits to, or None; boxed beats `####` beats "answer is" beats numbers."""
    for extractor in (last_boxed, after_hashes, after_answer_is):
        answer = extractor(response)
        if answer is not None:
            return answer
    return last_number(response) if last_number_fallback else None


def extract_reference(reference: str) -> str:
    """A reference may be a whole MATH solution (boxed) or GSM8K solution (`####`): keep only its answer."""
    return last_boxed(reference) or after_hashes(reference) or reference.strip()
