"""Realistic grading traffic for benchmarks/grader_bench.py: the demo's real completions and MATH-style
responses built from MATH-500, every (response, reference) pair distinct so no parse cache helps.

An item is (response, reference, last_number_fallback, label); label is None where no one decided it (the
demo's completions), else 1/0 by construction (a MATH-500 answer, reformatted or changed in one digit).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

Item = tuple[str, str, bool, int | None]

DEMO_COMPLETIONS = Path(__file__).resolve().parent / "data" / "demo_completions.jsonl"
MATH500 = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "math500" / "test.jsonl"
_DIGIT = re.compile(r"\d")


def _distinct(items: list[Item]) -> list[Item]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for item in items:
        if item[:2] not in seen:
            seen.add(item[:2])
            kept.append(item)
    return kept


def demo_traffic(path: Path = DEMO_COMPLETIONS) -> list[Item]:
    """SmolLM2's completions at the start of `make demo` (benchmarks/demo_completions.py), last-number on."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: sample it with `python benchmarks/demo_completions.py`")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return _distinct([(row["completion"], row["answer"], True, None) for row in rows])


def _reformatted(answer: str) -> str:
    """Written another way a model might: `\\dfrac`, `\\left(`...`\\right)`."""
    return answer.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)")


def _near_miss(answer: str, rng: random.Random) -> str:
    """One digit changed (a wrong answer in the reference's own form), or `+1` where there is no digit."""
    digits = [found.start() for found in _DIGIT.finditer(answer)]
    if not digits:
        return answer + "+1"
    at = rng.choice(digits)
    return answer[:at] + str((int(answer[at]) + rng.randint(1, 9)) % 10) + answer[at + 1 :]


def math_traffic(path: Path = MATH500, seed: int = 0) -> list[Item]:
    """Four responses per MATH-500 problem, its own solution as the reasoning: the solution as written
    (boxed, right); the reasoning then "So the answer is $<reformatted>$." (right, no box); a boxed near miss
    (wrong); a Minerva-style final-answer line with another problem's answer (wrong unless equal)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the shared data folder belongs beside the repository")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    items: list[Item] = []
    for index, row in enumerate(rows):
        solution, answer = row["solution"], row["answer"]
        other = rows[(index + 7) % len(rows)]["answer"]
        box = solution.rfind("\\boxed")
        reasoning = (solution[:box] if box >= 0 else solution).rstrip("$ \n") + " "
        items += [
            (solution, answer, False, 1),
            (f"{reasoning}So the answer is ${_reformatted(answer)}$.", answer, False, 1),
            (f"{reasoning}$\\boxed{{{_near_miss(answer, rng)}}}$.", answer, False, 0),
            (
                f"{reasoning}\n\nFinal Answer: The final answer is ${other}$. I hope it is correct.",
                answer,
                False,
                int(other.strip() == answer.strip()),
            ),
        ]
    return _distinct(items)
