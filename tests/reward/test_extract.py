import pytest

from etr_dist.reward.extract import (
    answer_is,
    bare_answer,
    boxed,
    extract_answer,
    extract_reference,
    has_prose,
    hashes,
    last_math_span,
    last_number,
    unwrap_math,
)


def text_of(found: tuple[int, str] | None) -> str | None:
    return found[1] if found else None


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
        ("$\\boxed{2}$ and $\\boxed{-3}$", "2, -3"),  # one answer in two boxes
        ("\\(\\boxed{1}\\), \\(\\boxed{1}\\)", "1"),
        ("\\boxed{\\boxed{5}}", "5"),
        ("no box here", None),
        ("\\boxed{" + "{" * 5000 + "5", None),
        ("}" * 5000 + "\\boxed{5}", "5"),
    ],
)
def test_last_boxed(text, expected):
    assert text_of(boxed(text)) == expected


def test_hashes_take_the_last_line_marker():
    assert hashes("48 + 24 = 72\n#### 72") == (13, "72")
    assert text_of(hashes("#### 1\nmore\n####  1,200 \n")) == "1,200"
    assert hashes("#### \n") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("the final answer is $\\frac{1}{2}$. I hope it is correct.", "\\frac{1}{2}"),
        ("Final Answer: The final answer is $3.5$. I hope it is correct.", "3.5"),
        ("**Answer:** $7$", "7"),
        ("**Final Answer**: 12 apples", "12 apples"),
        ("The answer is\n\n42", "42"),
        ("So the answer is $x = \\frac{1}{3}$.", "x = \\frac{1}{3}"),
        ("The answer is $3$ or $5$.", "$3$ or $5$"),  # two spans: both stay for the comparison
        ("The answer is \\(k = 2\\). Check: 2 + 2 = 4.", "k = 2"),
        (
            "The answer is:\n\\[\n\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}.\n\\]\nDone.",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}.",
        ),
        ("answers are hard", None),
        ("The answer is.", None),
    ],
)
def test_answer_is_reads_to_the_end_of_its_sentence_outside_math(text, expected):
    assert text_of(answer_is(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We get $x = 2$, so the slope is $\\frac{1}{3}$.", "\\frac{1}{3}"),
        ("Thus \\( k = \\tfrac13 \\) works.", "k = \\tfrac13"),
        ("Display:\n\\[\n x \\geq 5\n\\]\n", "x \\geq 5"),
        ("$$\\begin{bmatrix} 1 & 2 \\end{bmatrix}$$", "\\begin{bmatrix} 1 & 2 \\end{bmatrix}"),
        ("It costs \\$5 and \\$6, so $11$ in all.", "11"),  # escaped dollars are currency, not math
        ("It costs $5 in May\nand $6 in June", None),  # an inline span never crosses a line
        ("It costs $5 and $6, or $400 + $60 = $460 in all", None),  # prices, not math (as in Pandoc)
        ("Take $ \\frac{1}{2} $ of it", "\\frac{1}{2}"),  # a span opened with a space may close after one
        ("$x$ and then $", "x"),  # an unclosed span is no answer
        ("no math", None),
        ("$" * 100_000, None),
    ],
)
def test_last_math_span(text, expected):
    assert last_math_span(text) == expected


def test_unwrap_math_only_a_single_whole_span():
    assert unwrap_math("$\\frac{1}{2}$") == "\\frac{1}{2}"
    assert unwrap_math("\\(x\\)") == "x"
    assert unwrap_math("$3$ or $5$") == "$3$ or $5$"
    assert unwrap_math("$3$ apples") == "$3$ apples"


@pytest.mark.parametrize(
    ("text", "prose"),
    [
        ("12 apples", True),
        ("x is 5", True),
        ("5\\text{ cm}^2", False),
        ("\\frac{3}{4}\\text{ inches}", False),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False),
        ("\\sin x + \\operatorname{lcm}(a, b)", False),
        ("x = 3 \\text{ or } x = -2", False),
        ("(3, \\pi)", False),
    ],
)
def test_prose_is_words_outside_latex(text, prose):
    assert has_prose(text) is prose


def test_bare_answers_are_one_short_line_of_math():
    assert bare_answer("  -4\n") == "-4"
    assert bare_answer("\\left( 3, \\frac{\\pi}{2} \\right).") == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert bare_answer("\\text{Evelyn}") == "\\text{Evelyn}"
    assert bare_answer("The result is 4") is None
    assert bare_answer("4\n\nbecause 2 + 2 = 4") is None
    assert bare_answer("9" * 201) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 red and 4 blue, 7 in all", "7"),
        ("She earns $1,080 a week.", "1,080"),
        ("The house sold for $118 000 in all.", "118 000"),
        ("it dropped to -3.5 degrees", "-3.5"),
        ("a ratio of 3/4", "3/4"),
        ("5 - 9 = -4.", "-4"),
        ("the code AZYUK2A", None),  # digits inside a word are no number
        ("ran 5km, model X7", "5"),  # a unit may follow a number, nothing may precede it
        ("so 1,000.99m\u00b2 of H2O", "1,000.99"),
        ("v1.2.3", None),
        ("no digits", None),
    ],
)
def test_last_number_stands_alone(text, expected):
    assert last_number(text) == expected


def test_extractors_in_priority_order():
    assert extract_answer("The answer is 3.\n#### 4\nso \\boxed{5} and $6$") == "5"
    assert extract_answer("The answer is 3.\n#### 4\n and $6$") == "4"
    assert extract_answer("The answer is 3. And $6$") == "3"
    assert extract_answer("First $x = 2$, then $y = 6$ and 7") == "y = 6"
    assert extract_answer("\\frac{1}{2}") == "\\frac{1}{2}"
    assert extract_answer("just 6 left", last_number_fallback=True) == "6"


def test_a_conclusion_after_a_box_overrides_it_but_prose_does_not():
    assert extract_answer("\\boxed{5}. Final Answer: The final answer is $6$. I hope it is correct.") == "6"
    assert extract_answer("\\boxed{5}. The answer is correct because $5 \\cdot 2 = 10$.") == "5"
    assert extract_answer("The answer is $\\boxed{7}$.") == "7"


def test_last_number_fallback_is_the_datasets_choice():
    assert extract_answer("just 6 left") is None  # off by default: MATH-style data
    assert extract_answer("just 6 left", last_number_fallback=False) is None
    assert extract_answer("\\boxed{6}", last_number_fallback=False) == "6"
    assert extract_answer("The code is AZYUK2A", last_number_fallback=True) is None


def test_reference_may_be_a_whole_solution_or_a_math_span():
    assert extract_reference("Half is 24, so 72.\n#### 72") == "72"
    assert extract_reference("Thus $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert extract_reference("  (1,2] ") == "(1,2]"
    assert extract_reference("$\\frac{1}{3}$") == "\\frac{1}{3}"
    assert extract_reference("\\$18.90") == "\\$18.90"  # currency, not a math delimiter


def test_long_inputs_take_linear_time():
    hostile = "answer" + " " * 200_000 + "is 7" + "." * 200_000 + "1," * 100_000
    assert extract_answer(hostile).startswith("7.")
    assert extract_answer("{" * 100_000 + "\\boxed{" * 50_000) is None
    assert extract_answer("\\(" + "$\\[" * 100_000) is None
    assert extract_answer("a1" * 200_000, last_number_fallback=True) is None
