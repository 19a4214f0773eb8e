"""The numeric fast path must give math-verify's own verdict wherever it gives one (numeric.py's claim)."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from etr_dist.reward.numeric import fast_verdict
from etr_dist.reward.prepare import Prepared
from etr_dist.reward.symbolic import compare_symbolic
from etr_dist.reward.types import MATCH_NUMERIC, MISMATCH

# Hand-picked neighbours of math-verify's rounding edge and its 15-digit floats.
EDGES = [
    "0",
    "-0",
    "0.0",
    "-0.0",
    "7",
    "007",
    "-7",
    "72",
    "72.0",
    "72.000001",
    "72.0000001",
    "1",
    "1.0000001",
    "1.000002",
    "1.000003",
    "0.5",
    "0.50",
    "0.4999995",
    "0.1",
    "0.10",
    "0.3333333",
    "0.333333",
    "3.14159265",
    "3.1415926",
    "3.14",
    "99999999.99",
    "100000000.5",
    "100000000",
    "123456789012345678",
    "123456789012345679",
    "1234567.1234567",
    "1234567.1234568",
    "0.000001",
    "0.0000014",
    "0.0000005",
]


def math_verify_says(prediction: str, reference: str) -> bool:
    return compare_symbolic(Prepared(prediction), Prepared(reference)) == "match_symbolic"


def agrees_with_math_verify(prediction: str, reference: str) -> bool:
    verdict = fast_verdict(prediction, reference)
    return verdict is None or (verdict == MATCH_NUMERIC) == math_verify_says(prediction, reference)


def test_fast_path_agrees_with_math_verify_at_the_edges():
    pairs = list(itertools.product(EDGES, EDGES))
    answered = [pair for pair in pairs if fast_verdict(*pair) is not None]
    assert len(answered) > 0.7 * len(pairs)  # the fast path decides most of them (955 of 1225)
    assert [pair for pair in answered if not agrees_with_math_verify(*pair)] == []


def test_fast_path_rules():
    assert fast_verdict("-4", "-4") == MATCH_NUMERIC
    assert fast_verdict("007", "7") == MATCH_NUMERIC
    assert fast_verdict("4", "-4") == MISMATCH
    assert fast_verdict("72.0", "72") == MATCH_NUMERIC
    assert fast_verdict("3.14", "3.1415") == MISMATCH
    assert fast_verdict("1.0000001", "1") is None  # within math-verify's rounding: its call
    assert fast_verdict("123456789012345678.5", "123456789012345678.7") is None  # past 15 digits
    assert fast_verdict("9" * 5000, "9" * 5000) is None  # past Python's int-string limit


decimals = st.builds(
    lambda whole, frac, sign: f"{sign}{whole}" + (f".{frac}" if frac else ""),
    st.integers(0, 10**9),
    st.one_of(st.just(""), st.from_regex(r"[0-9]{1,9}", fullmatch=True)),
    st.sampled_from(["", "-"]),
)


@settings(max_examples=300, deadline=None)
@given(decimals, decimals, st.integers(-3, 3))
def test_fast_path_agrees_with_math_verify_on_random_numbers(first, second, nudge):
    assert agrees_with_math_verify(first, second)
    close = f"{float(first) + nudge * 1e-6:.7f}"  # near the 6-place rounding edge
    assert agrees_with_math_verify(close, first)
