import pytest

from etr_dist.reward.normalize import is_text_answer, normalize_answer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("\\(x+1\\)", "x+1"),
        ("\\left( 3, -1 \\right)", "(3,-1)"),
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("\\tfrac34", "\\frac{3}{4}"),
        ("\\frac{1}2", "\\frac{1}{2}"),
        ("2\\sqrt5", "2\\sqrt{5}"),
        ("5\\text{ cm}^2", "5"),
        ("\\text{Monday}", "Monday"),
        ("\\textbf{(C)}", "C"),
        ("30^\\circ", "30"),
        ("30^{\\circ}", "30"),
        ("\\$42.50", "42.50"),
        ("25\\%", "25"),
        ("1,234,567", "1234567"),
        ("10{,}080", "10080"),
        ("1\\,000", "1000"),
        ("(1,234)", "(1,234)"),  # a pair stays a pair
        ("7.", "7"),
        ("x = 3", "3"),
        ("f(x)=x^2", "x^2"),
        ("x \\in [2, 5]", "[2,5]"),
        ("\\approx 3.14", "3.14"),
        ("18 dollars", "18"),
        ("clearly 7", "7"),
        ("not 7", "not7"),  # not a filler word: the value is not 7
        ("at least 7", "at least7"),
        ("3 \\text{ and } 5", "3,5"),
        ("e^{2}", "e^2"),
        ("x \\leq 3", "x\\le3"),
        ("2\\pi r", "2\\pi r"),
        ("{{5}}", "5"),
        ("{1}{2}", "{1}{2}"),
        ("\u2212\uff14", "-4"),
        ("\u03c0", "\\pi"),
        ("\u00bd", "1/2"),
        ("\u200b5", "5"),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_text_answers_are_words():
    assert is_text_answer("Monday")
    assert is_text_answer("north east")
    assert not is_text_answer("x")
    assert not is_text_answer("2x")
    assert not is_text_answer("\\pi")
