"""ANTLR's two-stage parsing for latex2sympy2_extended, which math-verify parses LaTeX with: SLL prediction
first, then LL (the library's default) only if SLL reports a syntax error.

The ANTLR runtime guarantees (antlr4.atn.PredictionMode.SLL) that SLL returns the parse tree LL would, or
reports a syntax error, so every parse, and so every verdict, is unchanged; SLL skips LL's full-context
prediction, most of the time spent parsing an answer. tests/reward/test_fast_paths.py compares the trees.
Importing this module installs it on the parser's entry rule, once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended.antlr_parser import PSParser


def two_stage(parse_rule: Callable[[PSParser], Any]) -> Callable[[PSParser], Any]:
    """The parser rule `parse_rule`, parsed with SLL first and with LL after an SLL syntax error."""

    @functools.wraps(parse_rule)
    def parse_in_two_stages(parser: PSParser) -> Any:
        parser._interp.predictionMode = PredictionMode.SLL
        try:
            return parse_rule(parser)
        except Exception:  # noqa: BLE001 - latex2sympy's error listener raises a bare Exception: retry with LL
            parser.reset()
            parser._interp.predictionMode = PredictionMode.LL
            return parse_rule(parser)

    return parse_in_two_stages


if not hasattr(PSParser.math, "__wrapped__"):
    PSParser.math = two_stage(PSParser.math)
