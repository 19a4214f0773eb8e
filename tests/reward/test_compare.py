import pickle

import pytest

from etr_dist.reward import Grade, grade
from etr_dist.reward.compare import compare_answers
from etr_dist.reward.numeric import Number, numbers_equal, parse_number
from etr_dist.reward.structure import MATRIX, ORDERED, UNION, UNORDERED, parse_composite


@pytest.mark.parametrize(
    ("prediction", "reference", "reason"),
    [
        # exact string after normalisation
        ("\\dfrac{1}{2}", "\\frac{1}{2}", "match_string"),
        ("\\text{Tuesday}", "tuesday", "match_string"),
        ("(C)", "\\text{(C)}", "match_string"),
        # exact rationals
        ("0.5", "\\frac{1}{2}", "match_numeric"),
        ("\\frac{14}{24}", "\\frac{7}{12}", "match_numeric"),
        ("4\\frac{1}{2}", "\\frac{9}{2}", "match_numeric"),
        ("2.5\\times10^{3}", "2500", "match_numeric"),
        ("1.0000001", "1", "mismatch"),
        ("0.3333", "\\frac{1}{3}", "mismatch"),
        # floats only where the reference is a float
        ("3.1415926", "3.14159265", "match_numeric"),
        ("3.14", "3.1415", "mismatch"),
        ("\\frac{5}{4}", "1.25", "match_numeric"),
        # symbolic
        ("(x+1)^2", "x^2+2x+1", "match_symbolic"),
        ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", "match_symbolic"),
        ("\\sqrt{64}", "8", "match_symbolic"),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", "mismatch"),
        ("1.0472", "\\frac{\\pi}{3}", "mismatch"),
        ("\\frac{x-1}{x+1}", "\\frac{x+1}{x-1}", "mismatch"),
        # tuples and intervals: order and ends matter
        ("(3, -1)", "(3,-1)", "match_string"),
        ("(-1,3)", "(3,-1)", "mismatch"),
        ("(\\frac{1}{2}, 2]", "(0.5,2]", "match_numeric"),
        ("[0.5, 2)", "(0.5,2)", "mismatch"),
        ("(1,2)", "\\{1,2\\}", "mismatch"),
        ("[3,\\infty)\\cup(-\\infty,-3]", "(-\\infty,-3]\\cup[3,\\infty)", "match_string"),
        ("(-\\infty,-3)\\cup(3,\\infty)", "(-\\infty,-3]\\cup[3,\\infty)", "mismatch"),
        # sets and solution lists: order does not matter
        ("\\{3,2,1\\}", "\\{1,2,3\\}", "match_string"),
        ("x=3 \\text{ or } x=-2", "-2, 3", "match_string"),
        ("2, \\sqrt{4}", "2, 2", "match_symbolic"),
        ("2, 3, 4", "2, 3", "mismatch"),
        # matrices keep their shape
        (
            "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}",
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "match_string",
        ),
        ("\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "mismatch"),
        (
            "\\begin{pmatrix}0.5\\\\2\\end{pmatrix}",
            "\\begin{pmatrix}\\frac12\\\\2\\end{pmatrix}",
            "match_numeric",
        ),
        # plain text
        ("Thursday", "\\text{Tuesday}", "mismatch"),
        # nothing to compare
        ("\\text{}", "5", "no_answer"),
        ("5", "$ $", "parse_error"),
        ("\\frac{", "\\sqrt{2}", "parse_error"),
    ],
)
def test_compare_answers(prediction, reference, reason):
    assert compare_answers(prediction, reference) == reason


def test_numbers_are_exact_rationals():
    assert parse_number("-\\frac{3}{6}") == Number(parse_number("-0.5").value, False)
    assert parse_number("1/0") is None
    assert parse_number("9" * 5000) is None  # past Python's int-string limit: left to the length cap
    assert numbers_equal(parse_number("0.1"), parse_number("\\frac{1}{10}"))
    assert not numbers_equal(parse_number("0.333333"), parse_number("\\frac{1}{3}"))


def test_composites_keep_kind_order_and_ends():
    assert parse_composite("[1,2)").ends == "[)"
    assert parse_composite("(1,2)").kind == ORDERED
    assert parse_composite("\\{1,2\\}").kind == UNORDERED
    assert parse_composite("1,2").kind == UNORDERED
    assert parse_composite("(1,2)\\cup(3,4)").kind == UNION
    matrix = parse_composite("\\begin{pmatrix}1&2&3\\\\4&5&6\\end{pmatrix}")
    assert (matrix.kind, matrix.shape, matrix.parts) == (MATRIX, (2, 3), ("1", "2", "3", "4", "5", "6"))
    assert parse_composite("(1)+(2)") is None
    assert parse_composite("(x+1)") is None


def test_grade_reports_score_reason_and_extracted():
    assert grade("so $\\boxed{\\dfrac{1}{2}}$.", "0.5") == Grade(1.0, "match_numeric", "\\dfrac{1}{2}")
    assert grade("48 + 24 = 72\n#### 96", "72") == Grade(0.0, "mismatch", "96")
    assert grade("I do not know.", "4") == Grade(0.0, "no_answer", None)
    assert grade("\\boxed{}", "4") == Grade(0.0, "no_answer", "")
    assert grade("it is 5 apples", "5", last_number_fallback=False) == Grade(0.0, "no_answer", None)


def test_grade_is_a_small_picklable_value():
    result = grade("\\boxed{3}", "3")
    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(AttributeError):
        result.score = 0.0
