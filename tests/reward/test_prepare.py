import pytest

from etr_dist.reward.prepare import Prepared, is_plain_number, prepare


@pytest.mark.parametrize(
    ("raw", "math"),
    [
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("\\(x+1\\)", "x+1"),
        ("$3$ or $5$", "3 or 5"),
        ("\\$42.50", "42.50"),  # math-verify drops dollar signs itself
        ("7.", "7"),
        ("x = 3.\\\\", "x = 3"),
        ("1,234,567", "1234567"),
        ("1 234 567", "1234567"),
        ("1\\,000", "1000"),
        ("10{,}080", "10080"),
        ("1\\;000.5", "1000.5"),
        ("(1,234)", "(1,234)"),  # a pair stays a pair
        ("1,23", "1,23"),  # no decimal comma unless asked for
        ("0,125", "0,125"),
        ("\u22124", "\u22124"),  # math-verify reads the minus sign
        ("\uff14\u221e", "4\\infty"),  # full-width digit, infinity
        ("\u221a2", "\\sqrt 2"),
        ("\u00bd", "1/2"),
        ("30\u00b0", "30^\\circ"),
        ("\u200b5", "5"),
        ("\\text{1,000}", "1000"),
    ],
)
def test_math_form(raw, math):
    assert prepare(raw).math == math


def test_decimal_comma_only_when_asked():
    assert prepare("3,5", decimal_comma=True).math == "3.5"
    assert prepare("0,125", decimal_comma=True).math == "0.125"
    assert prepare("-12{,}75", decimal_comma=True).math == "-12.75"
    assert prepare("3,500", decimal_comma=True).math == "3500"  # a thousands grouping wins
    assert prepare("3, 5", decimal_comma=True).math == "3, 5"


@pytest.mark.parametrize(
    ("raw", "prose"),
    [
        ("12 apples", "12 apples"),
        ("$\\frac{3}{4}$ cups", "$\\frac{3}{4}$ cups"),
        ("\\text{6 hours}", "6 hours"),
        ("\\text{Monday}", "Monday"),
        ("5\\text{ cm}^2", None),
        ("x = 3 \\text{ or } x = -2", None),
        ("3 and 5", None),
        ("2xy + AB", None),
        ("1 + 8 Is 8", "1 + 8 Is 8"),  # two-letter words in any case
    ],
)
def test_prose_is_kept_for_math_verify_to_read(raw, prose):
    assert prepare(raw).prose == prose


def test_plain_numbers():
    assert is_plain_number(prepare("-12.5"))
    assert is_plain_number(prepare("1,200"))
    assert not is_plain_number(prepare("12 apples"))
    assert not is_plain_number(prepare("\\frac{1}{2}"))
    assert Prepared("5") == prepare(" 5. ")


def test_linear_time_on_hostile_input():
    assert prepare("." * 200_000 + "x" + "\\\\" * 100_000).math == "." * 200_000 + "x"
    assert prepare("9" * 200_000 + ",5", decimal_comma=True).math == "9" * 200_000 + ".5"
