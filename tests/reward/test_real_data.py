"""Real answers at scale: every MATH-500 answer graded against itself as its own response, boxed in a sentence,
reformatted (`\\dfrac`, `$...$`), and against the whole solution as the reference; GSM8K's golds too.

The data sets are read in place from the `shared` folder beside the repository (never copied into it); a
missing folder skips here but fails under CI, which has it.
"""

import json
from pathlib import Path

from etr_dist.reward import grade

from .test_fast_paths import shortcuts_agree_with_verify, two_stage_parses_as_ll

REASONING = "Working through the cases one at a time and simplifying at each step, we reach the result."


def rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def misgraded(cases: list[tuple[str, str, bool]], expected: float = 1.0) -> list[tuple[str, str, str]]:
    """The cases whose score is not `expected`, with the grade's reason."""
    graded = [
        (response, reference, grade(response, reference, last_number_fallback=fallback))
        for response, reference, fallback in cases
    ]
    return [
        (response, reference, result.reason)
        for response, reference, result in graded
        if result.score != expected
    ]


def test_math500_answers_are_correct_in_every_form(shared_eval_file):
    answers = [(row["answer"], row["solution"]) for row in rows(shared_eval_file("math500"))]
    assert len(answers) == 500
    cases = []
    for answer, solution in answers:
        reformatted = answer.replace("\\dfrac", "\\frac").replace("\\frac", "\\dfrac")
        cases += [
            (answer, answer, False),  # the answer as the whole response
            (f"{REASONING} So the final answer is $\\boxed{{{answer}}}$.", answer, False),
            (f"{REASONING} Therefore, the answer is ${reformatted}$.", answer, False),
            (
                f"{REASONING} This gives ${reformatted}$.",
                f"${answer}$",
                False,
            ),  # the last span; gold in $...$
            (
                f"{REASONING} So the final answer is $\\boxed{{{answer}}}$.",
                solution,
                False,
            ),  # gold: a solution
        ]
    assert misgraded(cases) == []


def test_math500_answers_do_not_match_other_problems_answers(shared_eval_file):
    answers = [row["answer"] for row in rows(shared_eval_file("math500"))]
    distinct = [
        (a, b) for a, b in zip(answers, answers[1:] + answers[:1], strict=True) if a.strip() != b.strip()
    ]
    cases = [(f"{REASONING} So the final answer is $\\boxed{{{a}}}$.", b, False) for a, b in distinct]
    assert (
        len(misgraded(cases, expected=0.0)) <= len(cases) // 100
    )  # neighbours may share a value (e.g. 2 vs 2.0)


def test_gsm8k_golds_are_read_from_their_solutions(shared_eval_file):
    data = rows(shared_eval_file("gsm8k"))
    cases = []
    for row in data:
        number = row["answer"].rsplit("####", 1)[1].strip()
        cases += [
            (f"So she has {number} left.\n#### {number}", row["answer"], False),
            (f"So the answer is {number}.", row["answer"], False),
            (
                f"Each costs $4 and the bag $2, so ${number} in all.",
                row["answer"],
                True,
            ),  # prices are not math
        ]
    assert misgraded(cases) == []


def test_shortcuts_agree_with_verify_on_math500_answers(shared_eval_file):
    answers = [row["answer"] for row in rows(shared_eval_file("math500"))]
    pairs = []
    for index, answer in enumerate(answers):
        near_miss = answer.replace("1", "7", 1) if "1" in answer else answer + "+1"
        reformatted = answer.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)")
        pairs += [(near_miss, answer), (reformatted, answer), (answers[(index + 1) % len(answers)], answer)]
    assert [pair for pair in pairs if not shortcuts_agree_with_verify(*pair)] == []
    assert [answer for answer, _ in pairs if not two_stage_parses_as_ll(answer)] == []
