"""Grader benchmark: our GraderPool against math-verify on the project's answer sets, at equal worker counts.

    python benchmarks/grader_bench.py [--workers 2] [--repeats 3] [--write-docs]

Labelled set: agreement with the labels and answers/second (median of --repeats passes, a fresh pool or
process pool per pass, start-up excluded). math-verify runs as its README shows: the gold wrapped in `$...$`
unless already boxed, `parse` then `verify` with their default (signal.alarm) timeouts, in worker processes
(concurrent.futures, forkserver, like ours). Adversarial set: our pool's seconds per item, one item per call,
against its bound timeout_s + 1 s; math-verify's worst case is measured with a hard cap (--mv-cap-s) because
its alarm cannot interrupt a long C-level computation such as a huge integer power.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import re
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from etr_dist.config.schema import RewardConfig
from etr_dist.reward import GraderPool
from etr_dist.reward.answer_sets import AdversarialCase, LabelledCase, load_adversarial, load_labelled

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Grader"
DOCS_INTRO = (
    "# Benchmarks\n\nMeasured results of the project's benchmark scripts, one section per benchmark.\n"
)


def math_verify_grade(pair: tuple[str, str]) -> float:
    """math-verify as documented: parse the gold (in math mode unless boxed) and the answer, then verify."""
    from math_verify import parse, verify

    response, reference = pair
    gold = parse(reference if "\\boxed" in reference else f"${reference}$")
    return float(verify(gold, parse(response)))


def _quiet_math_verify() -> None:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    math_verify_grade(("$\\boxed{(x+1)^2}$", "x^2+2x+1"))  # warm: imports and parser tables, like our workers


def _disagreements(scores: list[float], cases: list[LabelledCase]) -> list[str]:
    return [case.id for score, case in zip(scores, cases, strict=True) if score != case.label]


def bench_ours(
    cases: list[LabelledCase], workers: int, timeout_s: float, repeats: int
) -> tuple[list[str], float]:
    pairs = [(case.response, case.reference) for case in cases]
    rates, scores = [], []
    for _ in range(repeats):
        with GraderPool(workers, timeout_s) as pool:
            started = time.perf_counter()
            scores = [grade.score for grade in pool.grade_batch(pairs)]
            rates.append(len(pairs) / (time.perf_counter() - started))
    return _disagreements(scores, cases), statistics.median(rates)


def bench_math_verify(cases: list[LabelledCase], workers: int, repeats: int) -> tuple[list[str], float]:
    pairs = [(case.response, case.reference) for case in cases]
    context = multiprocessing.get_context("forkserver")
    rates, scores = [], []
    for _ in range(repeats):
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_math_verify) as executor:
            list(executor.map(math_verify_grade, pairs[:workers]))  # start and warm every process first
            started = time.perf_counter()
            scores = list(executor.map(math_verify_grade, pairs, chunksize=4))
            rates.append(len(pairs) / (time.perf_counter() - started))
    return _disagreements(scores, cases), statistics.median(rates)


def adversarial_ours(
    cases: list[AdversarialCase], workers: int, timeout_s: float
) -> tuple[float, str, int, bool]:
    """Worst seconds per item (one item per call), its id, the timeouts, and whether the pool still grades."""
    worst, worst_id = 0.0, ""
    with GraderPool(workers, timeout_s) as pool:
        for case in cases:
            started = time.perf_counter()
            pool.grade_batch([(case.response, case.reference)])
            elapsed = time.perf_counter() - started
            if elapsed > worst:
                worst, worst_id = elapsed, case.id
        survived = pool.grade_batch([("so \\boxed{\\frac12}", "0.5")])[0].score == 1.0
        timeouts = int(pool.metrics()["reward/grader_timeouts"])
    return worst, worst_id, timeouts, survived


def adversarial_math_verify(cases: list[AdversarialCase], cap_s: float) -> tuple[float, str, int]:
    """Worst seconds per item for math-verify in a process of its own, killed at cap_s; and how many hit it."""
    context = multiprocessing.get_context("forkserver")
    worst, worst_id, capped = 0.0, "", 0
    for case in cases:
        process = context.Process(
            target=math_verify_grade, args=((case.response, case.reference),), daemon=True
        )
        started = time.perf_counter()
        process.start()
        process.join(cap_s)
        if process.is_alive():
            process.kill()
            process.join()
            capped += 1
        elapsed = time.perf_counter() - started
        if elapsed > worst:
            worst, worst_id = elapsed, case.id
    return worst, worst_id, capped


def _machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()}-core CPU ({model.group(1).strip() if model else platform.processor()}), "
        f"Python {platform.python_version()}, load average {load:.1f} at the start (shared machine)"
    )


def run(args: argparse.Namespace) -> str:
    labelled, adversarial = load_labelled(), load_adversarial()
    machine = _machine()
    ours_wrong, ours_rate = bench_ours(labelled, args.workers, args.timeout_s, args.repeats)
    mv_wrong, mv_rate = bench_math_verify(labelled, args.workers, args.repeats)
    worst, worst_id, timeouts, survived = adversarial_ours(adversarial, args.workers, args.timeout_s)
    mv_worst, mv_worst_id, mv_capped = adversarial_math_verify(adversarial, args.mv_cap_s)
    n, w = len(labelled), args.workers
    ours_agreement, mv_agreement = 1 - len(ours_wrong) / n, 1 - len(mv_wrong) / n
    ratio = (ours_rate / w) / (mv_rate / w)
    bound = args.timeout_s + 1.0
    return "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/grader_bench.py --workers {w} --repeats {args.repeats}` on {machine}.",
            f"Labelled set: {n} cases (tests/data/grader_labelled.jsonl); throughput is the median of "
            f"{args.repeats} passes, pool start excluded; other jobs shared the cores, so absolute rates vary "
            "between runs: compare the two rows of one run. Adversarial set: "
            f"{len(adversarial)} cases (tests/data/grader_adversarial.jsonl), one item per call.",
            "",
            "| grader | workers | agreement with labels | answers/s | answers/s per worker |",
            "|---|---|---|---|---|",
            f"| etr_dist GraderPool (timeout_s={args.timeout_s:g}) | {w} | {ours_agreement:.1%} "
            f"({round(ours_agreement * n)}/{n}) | {ours_rate:.0f} | {ours_rate / w:.0f} |",
            f"| math-verify 0.9.0 parse+verify, process pool | {w} | {mv_agreement:.1%} "
            f"({round(mv_agreement * n)}/{n}) | {mv_rate:.0f} | {mv_rate / w:.0f} |",
            "",
            "| adversarial set | worst seconds per item | worst item | timeouts | still grading after |",
            "|---|---|---|---|---|",
            f"| etr_dist GraderPool (bound {bound:g} s) | {worst:.2f} | {worst_id} | {timeouts} | "
            f"{'yes' if survived else 'NO'} |",
            f"| math-verify in its own process, killed at {args.mv_cap_s:g} s | {mv_worst:.2f} | {mv_worst_id} | "
            f"{mv_capped} hit the cap | - |",
            "",
            f"Disagreements with the labels (case ids): etr_dist {', '.join(ours_wrong) or 'none'}; "
            f"math-verify {', '.join(mv_wrong) or 'none'}. The labelled set was written by this project "
            "together with the grader (labels decided by hand, before grading), so agreement on it is a "
            "regression check and a comparison, not an independent accuracy estimate.",
            "",
            f"Targets: agreement at least math-verify's: {'met' if ours_agreement >= mv_agreement else 'MISSED'}; "
            f"throughput per worker at least 3x math-verify's: {ratio:.1f}x, "
            f"{'met' if ratio >= 3 else 'MISSED'}; every adversarial item within timeout_s + 1 s: "
            f"{'met' if worst <= bound and survived else 'MISSED'}.",
            "",
        ]
    )


def write_section(section: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md, leaving other sections alone."""
    text = DOCS.read_text() if DOCS.exists() else DOCS_INTRO
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    text = (
        pattern.sub(lambda _: section + "\n", text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section
    )
    DOCS.write_text(text.rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=RewardConfig().timeout_s)
    parser.add_argument("--mv-cap-s", type=float, default=15.0)
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS}")
    args = parser.parse_args()
    section = run(args)
    print(section)
    if args.write_docs:
        write_section(section)


if __name__ == "__main__":
    main()
