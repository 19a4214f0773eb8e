"""Exact numbers from normalised answers: integers, decimals, a/b, \\frac{a}{b}, mixed numbers, a\\times10^b.

Values are exact rationals; a float tolerance applies only when the reference itself is written as a decimal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

FLOAT_RELATIVE_TOLERANCE = 1e-6
MAX_EXPONENT = 400  # a\times10^{b} with larger |b| is left to sympy (and the pool's timeout)

_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_SLASH = re.compile(r"(-?\d+)/(\d+)")
_FRAC = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")
_MIXED = re.compile(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")
_SCIENTIFIC = re.compile(r"(-?\d+(?:\.\d+)?)(?:\\times|\\cdot)10\^\{?(-?\d+)\}?")


@dataclass(frozen=True)
class Number:
    value: Fraction
    is_decimal: bool


def _fraction(numerator: str, denominator: str, negative: bool = False) -> Fraction | None:
    if int(denominator) == 0:
        return None
    value = Fraction(int(numerator), int(denominator))
    return -value if negative else value


def _parse(text: str) -> Number | None:
    if _DECIMAL.fullmatch(text):
        return Number(Fraction(text), "." in text)
    if match := _SLASH.fullmatch(text):
        value = _fraction(match.group(1), match.group(2))
        return Number(value, False) if value is not None else None
    if match := _FRAC.fullmatch(text):
        value = _fraction(match.group(2), match.group(3), negative=match.group(1) == "-")
        return Number(value, False) if value is not None else None
    if match := _MIXED.fullmatch(text):
        part = _fraction(match.group(3), match.group(4))
        if part is None:
            return None
        value = int(match.group(2)) + part
        return Number(-value if match.group(1) else value, False)
    if (match := _SCIENTIFIC.fullmatch(text)) and abs(int(match.group(2))) <= MAX_EXPONENT:
        return Number(Fraction(match.group(1)) * Fraction(10) ** int(match.group(2)), "." in match.group(1))
    return None


def parse_number(text: str) -> Number | None:
    """The exact value of a plain numeric answer, or None when it is anything else."""
    try:
        return _parse(text)
    except ValueError:  # e.g. an integer longer than Python's int-string conversion limit
        return None


def numbers_equal(prediction: Number, reference: Number) -> bool:
    if not reference.is_decimal or reference.value == 0:
        return prediction.value == reference.value
    return abs(prediction.value - reference.value) <= FLOAT_RELATIVE_TOLERANCE * abs(reference.value)
