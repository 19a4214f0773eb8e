"""The fast path for plain integers and decimals, most of the traffic: math-verify's verdict without sympy.

It answers only where math-verify's answer is certain, and leaves the rest to it:
- two integers: math-verify compares them exactly (sympy Integers), so do we;
- a decimal on either side, both with at most 15 digits (math-verify's float precision; past it, it leaves
  even equal values unequal): exactly equal values match; values below 1e8 that differ by more than 2e-6
  cannot round to the same 6 places (rounding moves each by at most 5e-7), so they do not match.
  Anything closer (1 vs 1.0000001) is math-verify's to decide. tests/reward/test_numeric.py checks this
  against math-verify itself.
"""

from __future__ import annotations

from fractions import Fraction

from etr_dist.reward.types import MATCH_NUMERIC, MISMATCH

MAX_FLOAT_DIGITS = 15  # math-verify's numeric precision
MAX_FLOAT_VALUE = 10**8  # below it, 15 significant digits keep more than 7 decimal places
CLEARLY_APART = Fraction(2, 10**6)
MAX_INTEGER_DIGITS = 4000  # below Python's default int-string conversion limit (4300)


def _digits(number: str) -> int:
    return sum(char.isdigit() for char in number)


def fast_verdict(prediction: str, reference: str) -> str | None:
    """MATCH_NUMERIC or MISMATCH for two plain numbers (`-?\\d+(\\.\\d+)?`) where math-verify's verdict is
    certain, else None."""
    if max(_digits(prediction), _digits(reference)) > MAX_INTEGER_DIGITS:
        return None
    if "." not in prediction and "." not in reference:
        return MATCH_NUMERIC if int(prediction) == int(reference) else MISMATCH
    if max(_digits(prediction), _digits(reference)) > MAX_FLOAT_DIGITS:
        return None  # math-verify's floats lose these digits (it even tells 1e9+0.1 from 1e9+0.1000000)
    predicted, expected = Fraction(prediction), Fraction(reference)
    if predicted == expected:
        return MATCH_NUMERIC
    if max(abs(predicted), abs(expected)) < MAX_FLOAT_VALUE and abs(predicted - expected) > CLEARLY_APART:
        return MISMATCH
    return None
