"""Held-out evaluation on the rollout workers: pass@1 (mean correctness) and pass@k (any of k correct)."""

from __future__ import annotations

from dataclasses import replace

import ray

from etr_dist.data.records import Prompt
from etr_dist.reward.types import GradeRequest


def pass_at_k(correct_per_prompt: list[list[bool]]) -> tuple[float, float]:
    """(pass@1, pass@k) with k = the number of samples per prompt."""
    if not correct_per_prompt:
        return 0.0, 0.0
    pass1 = sum(sum(c) / len(c) for c in correct_per_prompt) / len(correct_per_prompt)
    passk = sum(any(c) for c in correct_per_prompt) / len(correct_per_prompt)
    return pass1, passk


def evaluate(
    workers: list,
    grader,
    prompts: list[Prompt],
    sampling,
    samples: int,
    temperature: float,
    name: str,
    prompts_per_request: int = 16,
) -> dict[str, float]:
    if samples > 1 and temperature <= 0:
        raise ValueError(
            f"trainer.eval_samples={samples} needs trainer.eval_temperature > 0 (greedy repeats itself)"
        )
    spec = replace(sampling, n=samples, temperature=temperature, seed=sampling.seed)
    chunks = [prompts[i : i + prompts_per_request] for i in range(0, len(prompts), prompts_per_request)]
    generated = [workers[i % len(workers)].generate.remote(chunk, spec) for i, chunk in enumerate(chunks)]
    completions = [c for batch in ray.get(generated) for c in batch]
    by_id = {p.id: p for p in prompts}
    requests = [
        GradeRequest(c.text, by_id[c.prompt_id].answer, by_id[c.prompt_id].last_number_fallback)
        for c in completions
    ]
    grades = ray.get(grader.grade_batch.remote(requests))
    correct: dict[str, list[bool]] = {p.id: [] for p in prompts}
    for completion, grade in zip(completions, grades, strict=True):
        correct[completion.prompt_id].append(grade.score >= 1.0)
    pass1, passk = pass_at_k(list(correct.values()))
    metrics = {f"eval/{name}/pass@1": pass1}
    if samples > 1:
        metrics[f"eval/{name}/pass@{samples}"] = passk
    return metrics
