"""Every shortcut must give math-verify's own verdict wherever it gives one: the numeric fast path, equality
after math-verify's normalisation, and the clearly-unequal check that skips verify's simplify."""

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from latex2sympy2_extended.antlr_parser import PSParser
from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
from math_verify import parse, verify

from etr_dist.reward import symbolic
from etr_dist.reward.answer_sets import load_labelled
from etr_dist.reward.compare import _fast, _prepared
from etr_dist.reward.extract import extract_answer, extract_reference
from etr_dist.reward.numeric import fast_verdict
from etr_dist.reward.prepare import Prepared, prepare
from etr_dist.reward.symbolic import compare_symbolic
from etr_dist.reward.types import MATCH_NUMERIC, MATCH_REASONS, MATCH_STRING, MISMATCH, NO_ANSWER

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


def shortcuts_agree_with_verify(prediction: str, reference: str) -> bool:
    """same_normalized only where verify matches, _clearly_unequal only where it does not."""
    answer, gold = prepare(prediction), prepare(reference)
    expected, found = symbolic._parse_reference(gold), symbolic.parse_answer(answer)
    if not expected or not found:
        return True
    truth = verify(list(expected), found, allow_set_relation_comp=True, timeout_seconds=None)
    if symbolic.same_normalized(answer, gold) and not truth:
        return False
    return not (symbolic._clearly_unequal(expected, found) and truth)


def test_shortcuts_agree_with_verify_on_the_labelled_answers():
    pairs = []
    for case in load_labelled():
        answer = extract_answer(case.response, last_number_fallback=case.last_number_fallback)
        if answer:
            pairs.append((answer, extract_reference(case.reference)))
    assert len(pairs) > 450
    assert [pair for pair in pairs if not shortcuts_agree_with_verify(*pair)] == []


def test_shortcuts_decide_the_common_cases():
    assert symbolic.same_normalized(Prepared("\\dfrac{3}{4}"), Prepared("\\frac34"))
    assert symbolic.same_normalized(Prepared("\\left( 1, 2 \\right)"), Prepared("( 1, 2 )"))
    assert symbolic.same_normalized(Prepared("12\\text{ cm}"), Prepared("12"))
    assert not symbolic.same_normalized(
        Prepared("\\boxed{3}"), Prepared("\\boxed{3}")
    )  # parse reads boxes apart
    gold = symbolic._parse_reference(Prepared("\\frac{\\sqrt{3}}{2}"))
    assert symbolic._clearly_unequal(gold, symbolic.parse_answer(Prepared("\\frac{\\sqrt{2}}{2}")))
    assert not symbolic._clearly_unequal(gold, symbolic.parse_answer(Prepared("\\frac{1}{2}\\sqrt{3}")))
    floats = symbolic._parse_reference(Prepared("0.25"))  # a float: verify rounds it, so it decides
    assert not symbolic._clearly_unequal(floats, symbolic.parse_answer(Prepared("\\frac{\\sqrt{2}}{2}")))


def parse_tree(latex: str, rule) -> str:
    """latex2sympy2_extended's parse tree of `latex` as text, or the error it raises."""
    parser = _Latex2Sympy().create_parser(latex)
    try:
        return rule(parser).toStringTree(recog=parser)
    except Exception as err:  # noqa: BLE001 - the listener raises a bare Exception on a syntax error
        return f"error: {err}"


def two_stage_parses_as_ll(answer: str) -> bool:
    latex = symbolic._normalized(prepare(answer).math)
    return parse_tree(latex, PSParser.math) == parse_tree(latex, PSParser.math.__wrapped__)


def test_two_stage_parsing_gives_lls_trees_on_the_labelled_answers():
    answers = {extract_reference(case.reference) for case in load_labelled()}
    answers |= {extract_answer(case.response) or "" for case in load_labelled()}
    assert len(answers) > 300
    assert [answer for answer in answers if not two_stage_parses_as_ll(answer)] == []


def math_verify_reads(answer: Prepared) -> list:
    """math-verify's parse of an answer as we hand it over: prose as text, else its LaTeX in math mode."""
    text = answer.prose if answer.prose is not None else f"${answer.math}$"
    return parse(text, parsing_timeout=None)


# Replies to a numeric question (the demo's, GSM8K-style): equations, words, both.
REPLIES = [
    "5 - 9 = -4",
    "5 - 9 = 4",
    "x = 3",
    "2 + 3 = 6",
    "a = b = 6",
    "3 \\times 4 = 12",
    "12 / 4 = 3.0",
    "e = 5",
    "(-7) - 7 = -14",
    "1 + 8 = 9 = 9",
    "no, according to C",
    "the number itself",
    "Two + Three",
    "1 + 8 Is 8",
    "It is twelve.",
    "x \\leq 5",
    "5 apples and 6 pears",
    "$5$ apples",
]


def test_shortcuts_against_a_number_agree_with_math_verify():
    decided = 0
    for reply, gold_text in itertools.product(REPLIES, ["-4", "3", "6", "12", "5", "-14", "9", "0.5"]):
        answer, gold = _prepared(reply, gold_text)
        reason = _fast(answer, gold)
        if reason is None or reason in (MATCH_STRING, NO_ANSWER):
            continue
        decided += 1
        found = math_verify_reads(answer)
        truth = bool(found) and verify(
            math_verify_reads(gold), found, allow_set_relation_comp=True, timeout_seconds=None
        )
        assert (reason in MATCH_REASONS) == truth, (reply, gold_text, reason)
    assert decided > 80
