import pytest

from etr_dist.reward.extract import (
    after_answer_is,
    after_hashes,
    extract_answer,
    extract_reference,
    last_boxed,
    last_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}.", "5"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\fbox{7}", "7"),
        ("\\boxed 9 is it", "9"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{3} and then \\boxed{4", "3"),  # the last box never closes: the one before it counts
        ("no box here", None),
        ("\\boxed{" + "{" * 5000 + "5", None),
        ("}" * 5000 + "\\boxed{5}", "5"),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_hashes_take_the_last_line_marker():
    assert after_hashes("48 + 24 = 72\n#### 72") == "72"
    assert after_hashes("#### 1\nmore\n####  1,200 \n") == "1,200"
    assert after_hashes("#### \n") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("the final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
        ("Final Answer: The final answer is $3.5$. I hope it is correct.", "3.5"),
        ("**Answer:** $7$", "7"),
        ("**Final Answer**: 12 apples", "12 apples"),
        ("The answer is\n\n42", "42"),
        ("answers are hard", None),
    ],
)
def test_answer_is(text, expected):
    assert after_answer_is(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 red and 4 blue, 7 in all", "7"),
        ("She earns $1,080 a week.", "1,080"),
        ("it dropped to -3.5 degrees", "-3.5"),
        ("a ratio of 3/4", "3/4"),
        ("no digits", None),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_extractors_in_priority_order():
    text = "The answer is 3.\n#### 4\nso \\boxed{5} and 6"
    assert extract_answer(text) == "5"
    assert extract_answer("The answer is 3.\n#### 4\n and 6") == "4"
    assert extract_answer("The answer is 3. And 6") == "3"
    assert extract_answer("just 6 left") == "6"


def test_last_number_fallback_can_be_disabled():
    assert extract_answer("just 6 left", last_number_fallback=False) is None
    assert extract_answer("\\boxed{6}", last_number_fallback=False) == "6"


def test_reference_may_be_a_whole_solution():
    assert extract_reference("Half is 24, so 72.\n#### 72") == "72"
    assert extract_reference("Thus $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert extract_reference("  (1,2] ") == "(1,2]"


def test_long_inputs_take_linear_time():
    hostile = "answer" + " " * 200_000 + "is 7" + "." * 200_000 + "1," * 100_000
    assert extract_answer(hostile).startswith("7.")
    assert extract_answer("{" * 100_000 + "\\boxed{" * 50_000) is None
