import pickle

import pytest

from etr_dist.reward import GRADER_VERSION, Grade, grade, grader_version
from etr_dist.reward.compare import compare_answers


@pytest.mark.parametrize(
    ("prediction", "reference", "reason"),
    [
        # identical text and plain numbers: the fast paths
        ("\\frac{1}{2}", "\\frac{1}{2}", "match_string"),
        ("$\\frac{1}{2}$", "\\frac{1}{2}", "match_string"),
        ("-4", "-4.0", "match_numeric"),
        ("1,200", "1200", "match_string"),
        ("1 200", "1200", "match_string"),
        ("72", "27", "mismatch"),
        ("3.14", "3.1415", "mismatch"),
        ("3,5", "3.5", "match_string"),  # a decimal comma against a single number
        ("1.22", "1,22", "match_string"),
        # math-verify
        ("0.5", "\\frac{1}{2}", "match_string"),  # math-verify normalises 0.5 to \\frac{1}{2}
        ("\\dfrac{14}{24}", "\\frac{7}{12}", "match_symbolic"),
        ("\\frac13", "\\tfrac{1}{3}", "match_string"),  # equal after math-verify's normalisation
        ("1.0000001", "1", "mismatch"),  # close to the rounding edge: math-verify's own verdict
        ("0.333333", "\\frac{1}{3}", "match_symbolic"),  # math-verify rounds floats to 6 places
        ("0.3333", "\\frac{1}{3}", "mismatch"),
        ("(x+1)^2", "x^2+2x+1", "match_symbolic"),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}", "mismatch"),
        ("k = \\frac{1}{3}", "\\frac13", "match_symbolic"),
        ("5 \\leq x", "x \\geq 5", "match_symbolic"),
        ("x \\geq 5", "[5, \\infty)", "match_symbolic"),
        ("x > 5", "[5, \\infty)", "mismatch"),
        ("12\\text{ cm}^2", "12", "match_string"),
        ("\\text{6 hours}", "6", "match_symbolic"),
        ("12 apples", "12", "match_symbolic"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", "match_symbolic"),
        ("(-1,3)", "(3,-1)", "mismatch"),
        ("[0.5, 2)", "(0.5,2)", "mismatch"),
        (
            "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}",
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
            "match_symbolic",
        ),
        (
            "\\left[\\begin{array}{cc}1&2\\\\3&4\\end{array}\\right]",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            "match_symbolic",
        ),
        ("\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "mismatch"),
        ("x=3 \\text{ or } x=-2", "-2, 3", "match_symbolic"),
        ("\\text{Tuesday}", "\\text{Thursday}", "mismatch"),
        # nothing to compare
        ("\\text{}", "5", "no_answer"),
        ("", "5", "no_answer"),
        ("5", "$ $", "parse_error"),
        ("x" * 2000, "y", "mismatch"),  # too long for sympy: text only
    ],
)
def test_compare_answers(prediction, reference, reason):
    assert compare_answers(prediction, reference) == reason


def test_grade_reports_score_reason_and_extracted():
    assert grade("so $\\boxed{\\dfrac{1}{2}}$.", "0.5") == Grade(1.0, "match_string", "\\dfrac{1}{2}")
    assert grade("48 + 24 = 72\n#### 96", "72") == Grade(0.0, "mismatch", "96")
    assert grade("I do not know.", "4") == Grade(0.0, "no_answer", None)
    assert grade("\\boxed{}", "4") == Grade(0.0, "no_answer", "")
    assert grade("it is 5 apples", "5") == Grade(0.0, "no_answer", None)
    assert grade("it is 5.0 apples", "5", last_number_fallback=True) == Grade(1.0, "match_numeric", "5.0")
    assert grade("So the answer is $x = \\frac{1}{3}$.", "$\\frac{1}{3}$").score == 1.0


def test_grade_is_a_small_picklable_value():
    result = grade("\\boxed{3}", "3")
    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(AttributeError):
        result.score = 0.0


def test_grader_version_names_the_engine():
    assert grader_version().startswith(f"{GRADER_VERSION} (math-verify 0.9.0, latex2sympy2_extended 1.11.0")
