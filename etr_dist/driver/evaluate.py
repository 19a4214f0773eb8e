"""Held-out evaluation on the rollout workers: pass@1 and pass@k per eval set, and per-item rows for statistics."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from etr_dist.config.schema import TimeoutsConfig
from etr_dist.data.records import Prompt
from etr_dist.evaluation.passk import mean_pass_at_k
from etr_dist.remote_calls import get_all, get_one
from etr_dist.reward.types import GradeRequest


@dataclass
class EvalResult:
    """A set's metrics (eval/<name>/pass@1, pass@n) and one row per item: id, n samples, c correct."""

    metrics: dict[str, float]
    items: list[dict[str, str | int]]


def evaluate(
    workers: list,
    grader,
    prompts: list[Prompt],
    sampling,
    samples: int,
    temperature: float,
    name: str,
    prompts_per_request: int = 16,
    timeouts: TimeoutsConfig | None = None,
) -> EvalResult:
    """Score one set: pass@k is the unbiased estimator of evaluation/passk.py with k = samples."""
    if samples > 1 and temperature <= 0:
        raise ValueError(
            f"trainer.eval_samples={samples} needs trainer.eval_temperature > 0 (greedy repeats itself)"
        )
    if not prompts:
        return EvalResult({}, [])
    timeouts = timeouts or TimeoutsConfig()
    spec = replace(sampling, n=samples, temperature=temperature, seed=sampling.seed)
    chunks = [prompts[i : i + prompts_per_request] for i in range(0, len(prompts), prompts_per_request)]
    generated = [workers[i % len(workers)].generate.remote(chunk, spec) for i, chunk in enumerate(chunks)]
    names = [f"rollout worker {i % len(workers)}" for i in range(len(chunks))]
    batches = get_all(
        generated, names, f"evaluating {name}", timeouts.generate_s, "cluster.timeouts.generate_s"
    )
    completions = [c for batch in batches for c in batch]
    by_id = {p.id: p for p in prompts}
    requests = [
        GradeRequest(c.text, by_id[c.prompt_id].answer, by_id[c.prompt_id].last_number_fallback)
        for c in completions
    ]
    grades = get_one(
        grader.grade_batch.remote(requests),
        "the grader",
        f"grading {name}",
        timeouts.grade_s,
        "cluster.timeouts.grade_s",
    )
    correct = {p.id: [0, 0] for p in prompts}  # id -> [n, c]
    for completion, grade in zip(completions, grades, strict=True):
        correct[completion.prompt_id][0] += 1
        correct[completion.prompt_id][1] += int(grade.score >= 1.0)
    return summarize(name, samples, correct)


def summarize(name: str, samples: int, correct: dict[str, list[int]]) -> EvalResult:
    """The set's metrics from each item's [n, c]; pass@k only when k = samples > 1."""
    counts = [(n, c) for n, c in correct.values()]
    metrics = {f"eval/{name}/pass@1": mean_pass_at_k(counts, 1)}
    if samples > 1:
        metrics[f"eval/{name}/pass@{samples}"] = mean_pass_at_k(counts, samples)
    items = [{"id": item, "n": n, "correct": c} for item, (n, c) in correct.items()]
    return EvalResult(metrics, items)


def evaluate_sets(
    workers: list,
    grader,
    sets: dict[str, list[Prompt]],
    sampling,
    samples: int,
    temperature: float,
    out_dir: Path,
    timeouts: TimeoutsConfig | None = None,
) -> dict[str, float]:
    """Every eval set, each with its own curves; per-item rows go to out_dir/<set>.jsonl (paired statistics)."""
    metrics: dict[str, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, prompts in sets.items():
        result = evaluate(workers, grader, prompts, sampling, samples, temperature, name, timeouts=timeouts)
        metrics.update(result.metrics)
        with open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in result.items)
    return metrics
