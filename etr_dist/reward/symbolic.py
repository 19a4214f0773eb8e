"""Symbolic equivalence, built on math-verify and latex2sympy2_extended, for what the cheap checks left open.

Imported lazily: sympy, latex2sympy2_extended and math-verify take about a second to import. math-verify's
own timeouts use signal.alarm, which raises outside the main thread and so cannot guard a threaded caller;
they are off here, and the pool's worker kill is the limit.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import sympy
from math_verify import parse, verify

from etr_dist.reward.types import MATCH_SYMBOLIC, MISMATCH, PARSE_ERROR

PARSE_CACHE_SIZE = 4096  # a group's G completions share one reference: parse it once
CLEARLY_DIFFERENT = 1e-6  # relative gap above which two values cannot be equal (skips simplify)
_GENERIC_POINT = tuple(sympy.Rational(p, q) for p, q in ((7, 5), (11, 7), (13, 17), (19, 23)))

# math-verify warns once per process that its timeout is disabled: here that is by design.
logging.getLogger("math_verify").setLevel(logging.ERROR)


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_latex(answer: str) -> tuple[sympy.Basic, ...]:
    """math-verify's parse of an answer in math mode, without the raw-string fallback it appends."""
    return tuple(item for item in parse(f"${answer}$", parsing_timeout=None) if not isinstance(item, str))


def _exact(expression: sympy.Basic) -> sympy.Basic:
    """Floats as the exact decimals they were written: 1.0472 is not pi/3 unless the reference is a float."""
    floats = expression.atoms(sympy.Float)
    return expression.xreplace({f: sympy.Rational(str(f)) for f in floats}) if floats else expression


def _clearly_different(gold: sympy.Basic, target: sympy.Basic) -> bool:
    """Values that differ visibly at a generic point: a cheap evalf that spares most mismatches a simplify.

    Sound: expressions equal as functions are equal at every point where both are defined, and a point where
    either is undefined (nan, zoo) decides nothing.
    """
    if not isinstance(gold, sympy.Expr) or not isinstance(target, sympy.Expr):
        return False
    symbols = sorted(gold.free_symbols | target.free_symbols, key=str)
    if len(symbols) > len(_GENERIC_POINT):
        return False
    point = dict(zip(symbols, _GENERIC_POINT[: len(symbols)], strict=True))
    try:
        difference = abs(complex(sympy.N((gold - target).subs(point), 20)))
        scale = abs(complex(sympy.N(gold.subs(point), 20)))
    except Exception:  # noqa: BLE001 - any failure only means "not clearly different": verify decides
        return False
    return difference > CLEARLY_DIFFERENT * max(scale, 1.0) and difference != float("inf")


def _expands_equal(gold: sympy.Basic, target: sympy.Basic) -> bool:
    """Polynomial-style identities ((x+1)^2 = x^2+2x+1) in a millisecond, before verify's slow simplify."""
    if not isinstance(gold, sympy.Expr) or not isinstance(target, sympy.Expr):
        return False
    if gold.atoms(sympy.Float) or target.atoms(sympy.Float):
        return False  # float rounding is verify's rule
    try:
        return sympy.expand(gold - target) == 0
    except Exception:  # noqa: BLE001 - any failure only means "not shown equal here": verify decides
        return False


def compare_symbolic(prediction: str, reference: str) -> str:
    gold, target = parse_latex(reference), parse_latex(prediction)
    if not gold or not target:
        return PARSE_ERROR
    if not any(item.atoms(sympy.Float) for item in gold if isinstance(item, sympy.Basic)):
        target = tuple(_exact(item) if isinstance(item, sympy.Basic) else item for item in target)
    if _clearly_different(gold[0], target[0]):
        return MISMATCH
    if _expands_equal(gold[0], target[0]):
        return MATCH_SYMBOLIC
    return MATCH_SYMBOLIC if verify(list(gold), list(target), timeout_seconds=None) else MISMATCH
