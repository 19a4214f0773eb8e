"""Grader benchmark: our GraderPool against math-verify at equal worker counts, on realistic traffic and on the
project's answer sets.

    python benchmarks/grader_bench.py [--workers 2] [--repeats 3] [--write-docs]

Traffic (benchmarks/grader_traffic.py): the demo's real completions (benchmarks/data/demo_completions.jsonl)
and MATH-style responses built from MATH-500 (read in place from ../shared/data), every pair distinct.
Throughput is answers/second per worker, the median of --repeats passes, a fresh pool or process pool per
pass, start-up excluded; both graders run in the same invocation, so compare their ratio, not absolute rates
on a shared machine. math-verify runs as its README shows: the gold wrapped in `$...$` unless boxed, `parse`
then `verify` with their default (signal.alarm) timeouts, in worker processes (concurrent.futures, spawned
clean: a process forked from our forkserver would inherit our two-stage LaTeX parsing), each warmed on the
answers our forkserver warms on. The fast-path share is the items graded without parsing (no answer, identical or
normalised-identical text, plain numbers). Adversarial set: our pool's seconds per item, one item per call,
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
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from grader_traffic import Item, demo_traffic, math_traffic

from etr_dist.config.schema import RewardConfig
from etr_dist.reward import GraderPool, grader_version
from etr_dist.reward.answer_sets import AdversarialCase, load_adversarial, load_labelled
from etr_dist.reward.compare import fast_reason
from etr_dist.reward.extract import extract_answer, extract_reference
from etr_dist.reward.worker import WARMUP_ANSWERS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Grader"
DOCS_INTRO = (
    "# Benchmarks\n\nMeasured results of the project's benchmark scripts, one section per benchmark.\n"
)
TARGET_RATIO = 2.0


def math_verify_grade(pair: tuple[str, str]) -> float:
    """math-verify as documented: parse the gold (in math mode unless boxed) and the answer, then verify."""
    from math_verify import parse, verify

    response, reference = pair
    gold = parse(reference if "\\boxed" in reference else f"${reference}$")
    return float(verify(gold, parse(response)))


def _quiet_math_verify() -> None:
    """Warm a math-verify process on the answers our forkserver warms on: imports, and the parser's caches."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    for index, answer in enumerate(WARMUP_ANSWERS):
        math_verify_grade((f"so \\boxed{{{answer}}}", WARMUP_ANSWERS[index - 1]))
        math_verify_grade((f"The answer is ${answer}$.", answer))


def _ours_pass(
    requests: list[tuple[str, str, bool]], workers: int, timeout_s: float
) -> tuple[list[float], float]:
    with GraderPool(workers, timeout_s) as pool:
        started = time.perf_counter()
        scores = [grade.score for grade in pool.grade_batch(requests)]
        return scores, len(requests) / (time.perf_counter() - started)


def _math_verify_pass(pairs: list[tuple[str, str]], workers: int) -> tuple[list[float], float]:
    context = multiprocessing.get_context("spawn")  # not our forkserver, whose parser is two-stage
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet_math_verify) as executor:
        list(executor.map(math_verify_grade, pairs[:workers]))  # start and warm every process first
        started = time.perf_counter()
        scores = list(executor.map(math_verify_grade, pairs, chunksize=4))
        return scores, len(pairs) / (time.perf_counter() - started)


def bench(
    items: list[Item], workers: int, timeout_s: float, repeats: int
) -> dict[str, tuple[list[float], float]]:
    """Scores and answers/second (median over passes) of ours and math-verify, a fresh pool per pass; the
    passes alternate, so a change in the shared machine's load hits both graders alike."""
    requests = [(response, reference, fallback) for response, reference, fallback, _ in items]
    passes: dict[str, list[tuple[list[float], float]]] = {"ours": [], "mv": []}
    for _ in range(repeats):
        passes["ours"].append(_ours_pass(requests, workers, timeout_s))
        passes["mv"].append(_math_verify_pass([request[:2] for request in requests], workers))
    return {who: (runs[-1][0], statistics.median(rate for _, rate in runs)) for who, runs in passes.items()}


def fast_path_share(items: list[Item]) -> float:
    """The share of items graded without parsing: no answer, or a fast path decides (compare.fast_reason)."""
    fast = 0
    for response, reference, fallback, _ in items:
        answer = extract_answer(response, last_number_fallback=fallback)
        fast += not answer or fast_reason(answer, extract_reference(reference)) is not None
    return fast / len(items)


def agreement(scores: list[float], items: list[Item]) -> tuple[float, list[int]]:
    """Share of labelled items scored as labelled, and the indices of the others."""
    labelled = [(index, item[3]) for index, item in enumerate(items) if item[3] is not None]
    wrong = [index for index, label in labelled if scores[index] != label]
    return 1 - len(wrong) / len(labelled), wrong


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


def _math_verify_once(connection: Connection) -> None:
    """A math-verify process for one adversarial item: warm first, then grade the pair it is sent."""
    _quiet_math_verify()
    connection.send("ready")
    connection.send(math_verify_grade(connection.recv()))


def adversarial_math_verify(cases: list[AdversarialCase], cap_s: float) -> tuple[float, str, int]:
    """Worst seconds per item for math-verify in a warm process of its own, killed at cap_s; and how many
    hit the cap (process start and warm-up excluded)."""
    context = multiprocessing.get_context("spawn")
    worst, worst_id, capped = 0.0, "", 0
    for case in cases:
        parent, child = context.Pipe()
        process = context.Process(target=_math_verify_once, args=(child,), daemon=True)
        process.start()
        parent.recv()
        started = time.perf_counter()
        parent.send((case.response, case.reference))
        if not parent.poll(cap_s):
            capped += 1
        elapsed = time.perf_counter() - started
        process.kill()
        process.join()
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


def _rate_over(parts: list[tuple[list[Item], float]]) -> float:
    """Answers/s over several parts graded one after another: items over the sum of their times."""
    return sum(len(items) for items, _ in parts) / sum(len(items) / rate for items, rate in parts)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every number of the docs section."""
    labelled = [(c.response, c.reference, c.last_number_fallback, c.label) for c in load_labelled()]
    parts = {"demo": demo_traffic(), "math": math_traffic(seed=args.seed), "labelled": labelled}
    results = {
        name: bench(items, args.workers, args.timeout_s, args.repeats) for name, items in parts.items()
    }
    rows = {
        name: (len(items), results[name]["ours"][1], results[name]["mv"][1], fast_path_share(items))
        for name, items in parts.items()
    }
    ours, baseline = (
        [(parts[name], results[name][who][1]) for name in ("demo", "math")] for who in ("ours", "mv")
    )
    shares = sum(rows[n][0] * rows[n][3] for n in ("demo", "math")) / (rows["demo"][0] + rows["math"][0])
    rows["traffic"] = (rows["demo"][0] + rows["math"][0], _rate_over(ours), _rate_over(baseline), shares)
    agreement_of = {
        (name, who): agreement(results[name][who][0], parts[name])
        for name in ("math", "labelled")
        for who in ("ours", "mv")
    }
    ids = [case.id for case in load_labelled()]
    return {
        "rows": rows,
        "agreement": {key: value[0] for key, value in agreement_of.items()},
        "missed": {who: [ids[i] for i in agreement_of["labelled", who][1]] for who in ("ours", "mv")},
        "adversarial": adversarial_ours(load_adversarial(), args.workers, args.timeout_s),
        "adversarial_mv": adversarial_math_verify(load_adversarial(), args.mv_cap_s),
        "labelled_size": len(labelled),
    }


def section(args: argparse.Namespace, m: dict[str, Any]) -> str:
    """The docs section (markdown) for the measurements m."""
    w, rows, agree = args.workers, m["rows"], m["agreement"]
    titles = {
        "demo": "demo completions",
        "math": "MATH-style responses",
        "traffic": "**both (the traffic)**",
        "labelled": "labelled set",
    }
    table = [
        f"| {titles[name]} | {n} | {ours / w:.0f} | {theirs / w:.0f} | {ours / theirs:.1f}x | {share:.0%} |"
        for name, (n, ours, theirs, share) in ((name, rows[name]) for name in titles)
    ]
    ratio = rows["traffic"][1] / rows["traffic"][2]
    worst, worst_id, timeouts, survived = m["adversarial"]
    mv_worst, mv_worst_id, mv_capped = m["adversarial_mv"]
    bound = args.timeout_s + 1.0
    return "\n".join(
        [
            SECTION,
            "",
            f"`python benchmarks/grader_bench.py --workers {w} --repeats {args.repeats}` on {_machine()}; "
            f"grader {grader_version()}.",
            "",
            "Traffic: the demo's completions are real SmolLM2-135M-Instruct samples at the start of `make demo` "
            "(benchmarks/demo_completions.py: the demo's prompts through the project's HF engine, temperature 1, "
            "32 new tokens; last-number fallback on, as `data=arithmetic` sets it); the MATH-style responses are, "
            "for each MATH-500 problem, its own solution (boxed, right), its reasoning then `So the answer is "
            "$...$.` with the answer reformatted (`\\dfrac`, `\\left(`; right), its reasoning then a boxed answer "
            "with one digit changed (wrong), and its reasoning then a Minerva-style final-answer line with another "
            "problem's answer (wrong). Every (response, reference) pair is distinct; references repeat as in "
            "training, where a group's completions share one. Throughput is answers/s per worker, the median of "
            f"{args.repeats} passes; the passes of the two graders alternate, and other jobs shared the cores, "
            "so compare their ratio rather than absolute rates.",
            "",
            "| traffic | items | etr_dist GraderPool /s per worker | math-verify /s per worker | ratio | fast-path share |",
            "|---|---|---|---|---|---|",
            *table,
            "",
            "| agreement | etr_dist | math-verify 0.9.0 as documented |",
            "|---|---|---|",
            f"| labelled set ({m['labelled_size']} cases, tests/data/grader_labelled.jsonl) "
            f"| {agree['labelled', 'ours']:.1%} | {agree['labelled', 'mv']:.1%} |",
            f"| MATH-style responses (labels by construction) | {agree['math', 'ours']:.1%} "
            f"| {agree['math', 'mv']:.1%} |",
            "",
            "| adversarial set | worst seconds per item | worst item | timeouts | still grading after |",
            "|---|---|---|---|---|",
            f"| etr_dist GraderPool (timeout_s={args.timeout_s:g}, bound {bound:g} s) | {worst:.2f} | {worst_id} "
            f"| {timeouts} | {'yes' if survived else 'NO'} |",
            f"| math-verify in its own process, killed at {args.mv_cap_s:g} s | {mv_worst:.2f} | {mv_worst_id} | "
            f"{mv_capped} hit the cap | - |",
            "",
            f"Labelled-set disagreements (case ids): etr_dist {', '.join(m['missed']['ours']) or 'none'}; "
            f"math-verify {', '.join(m['missed']['mv']) or 'none'}. The labelled set was written by this project "
            "together with the grader (labels decided by hand, before grading), so agreement on it is a "
            "regression check and a comparison, not an independent accuracy estimate.",
            "",
            "Where the speed comes from, and where it went: the fast paths (identical or normalised-identical "
            "text, plain numbers, an equation's right-hand side against a number; docs/grading.md) give "
            "math-verify's verdict without parsing, which is most of the traffic; the rest pays math-verify's own "
            "LaTeX parse, made cheaper by ANTLR's two-stage (SLL, then LL) prediction, and a clearly unequal pair "
            "skips verify's `simplify`. Grader v1 measured 4.0x math-verify on the labelled set with its own "
            "tuple, interval and matrix comparison; v2 hands those to math-verify, so its labelled-set ratio "
            "fell to about 2x while its agreement on answer formats it had never seen rose (docs/grading.md).",
            "",
            f"Targets: agreement on the labelled set at least 99%: "
            f"{'met' if agree['labelled', 'ours'] >= 0.99 else 'MISSED'}; throughput per worker at least "
            f"{TARGET_RATIO:g}x math-verify's on the traffic: {ratio:.1f}x, "
            f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}; every adversarial item within timeout_s + 1 s: "
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
    parser.add_argument("--seed", type=int, default=0, help="for the MATH-style near misses")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS}")
    args = parser.parse_args()
    text = section(args, measure(args))
    print(text)
    if args.write_docs:
        write_section(text)


if __name__ == "__main__":
    main()
