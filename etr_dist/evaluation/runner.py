"""Score one model on eval sets in-process (no Ray): one RolloutWorker generates, a GraderPool grades the
previous chunk meanwhile; per-item rows go to items.jsonl, per-set pass@1 / pass@k to summary.json."""

from __future__ import annotations

import json
import math
import platform
import tempfile
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from etr_dist.config import to_dataclass
from etr_dist.data.records import Completion, Prompt
from etr_dist.evaluation.model import resolve_model
from etr_dist.evaluation.passk import mean_pass_at_k
from etr_dist.evaluation.sets import EvalSet, EvalSetSpec, load_eval_set
from etr_dist.reward import Grade, GradeRequest, GraderPool, grader_version
from etr_dist.rollout.engine import SamplingSpec
from etr_dist.rollout.worker import RolloutWorker


@dataclass(frozen=True)
class EvalPlan:
    samples: int  # n completions per item
    ks: tuple[int, ...]  # pass@k reported besides pass@1, each <= samples
    temperature: float
    limit: int | None = None  # the first `limit` rows of each set
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError(
                f"trainer.eval_samples={self.samples} needs trainer.eval_temperature > 0 (greedy repeats itself)"
            )
        bad = [k for k in self.ks if not 1 <= k <= self.samples]
        if bad:
            raise ValueError(f"pass@k needs 1 <= k <= n = trainer.eval_samples={self.samples}, got k={bad}")


def item_row(name: str, prompt: Prompt, completions: list[Completion], grades: list[Grade]) -> dict[str, Any]:
    return {
        "set": name,
        "id": prompt.id,
        "prompt": prompt.text,
        "gold": prompt.answer,
        "completions": [c.text for c in completions],
        "finish_reasons": [c.finish_reason for c in completions],
        "rewards": [g.score for g in grades],
        "reasons": [g.reason for g in grades],
        "extracted": [g.extracted for g in grades],
        "correct": sum(g.score >= 1.0 for g in grades),
        "n": len(grades),
    }


def set_summary(eval_set: EvalSet, rows: list[dict[str, Any]], plan: EvalPlan) -> dict[str, Any]:
    """pass@1 (mean over items of correct / n), pass@k (unbiased estimator), its standard error over items."""
    counts = [(row["n"], row["correct"]) for row in rows]
    per_item = [c / n for n, c in counts]
    mean = sum(per_item) / len(per_item)
    spread = sum((p - mean) ** 2 for p in per_item) / max(len(per_item) - 1, 1)
    summary: dict[str, Any] = {"pass@1": mean_pass_at_k(counts, 1)}
    summary.update({f"pass@{k}": mean_pass_at_k(counts, k) for k in plan.ks if k > 1})
    reasons = Counter(reason for row in rows for reason in row["reasons"])
    finish = [reason for row in rows for reason in row["finish_reasons"]]
    return {
        **summary,
        "pass@1_stderr": math.sqrt(spread / len(per_item)) if len(per_item) > 1 else None,  # JSON has no NaN
        "n": plan.samples,
        "k": sorted({1, *plan.ks}),
        "items": len(rows),
        "skipped_rows": eval_set.skipped_rows,
        "too_long_prompts": eval_set.too_long_prompts,
        "truncated_fraction": finish.count("length") / len(finish),
        "grade_reasons": dict(sorted(reasons.items())),
        "source": eval_set.data.source,
        "path": eval_set.data.eval_path,
        "question_key": eval_set.data.question_key,
        "answer_key": eval_set.data.answer_key,
        "last_number_fallback": eval_set.data.last_number_fallback,
    }


def score_set(
    eval_set: EvalSet,
    worker: RolloutWorker,
    pool: GraderPool,
    sampling: SamplingSpec,
    chunk_size: int,
    items: IO[str],
    advance: Any,
) -> list[dict[str, Any]]:
    """Generate chunk i+1 while chunk i is graded; each item's row is written as soon as it is graded."""
    rows: list[dict[str, Any]] = []
    prompts = eval_set.prompts
    chunks = [prompts[i : i + chunk_size] for i in range(0, len(prompts), chunk_size)]

    def grade(chunk: list[Prompt], completions: list[Completion]) -> None:
        by_id = {p.id: p for p in chunk}
        requests = [
            GradeRequest(c.text, by_id[c.prompt_id].answer, by_id[c.prompt_id].last_number_fallback)
            for c in completions
        ]
        grades = pool.grade_batch(requests)
        for index, prompt in enumerate(chunk):
            start = index * sampling.n  # completions come prompt-major, n per prompt
            row = item_row(
                eval_set.name,
                prompt,
                completions[start : start + sampling.n],
                grades[start : start + sampling.n],
            )
            items.write(json.dumps(row) + "\n")
            rows.append(row)
        items.flush()
        advance(len(chunk))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="etr-eval-grade") as grading:
        pending: Future | None = None
        for chunk in chunks:
            completions = worker.generate(chunk, sampling)
            if pending is not None:
                pending.result()
            pending = grading.submit(grade, chunk, completions)
        if pending is not None:
            pending.result()
    return rows


def versions(engine: str) -> dict[str, str]:
    names = ("etr-dist", "torch", "transformers") + (("vllm",) if engine == "vllm" else ())
    return {"python": platform.python_version(), **{n: version(n) for n in names}, "grader": grader_version()}


def run_eval(
    cfg: DictConfig, model: str | Path, specs: list[EvalSetSpec], out_dir: Path, plan: EvalPlan
) -> dict[str, Any]:
    """Score `model` on every spec; write out_dir/items.jsonl and out_dir/summary.json; return the summary."""
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    if (out_dir / "summary.json").exists():
        raise FileExistsError(f"{out_dir} already holds an evaluation (summary.json); choose another --out")
    typed = to_dataclass(cfg)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="etr-eval-model-") as export_dir:
        model_path = resolve_model(model, Path(export_dir))
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        sets = [load_eval_set(spec, tokenizer, plan.limit) for spec in specs]
        empty = [s.name for s in sets if not s.prompts]
        if empty:
            raise ValueError(f"eval sets {empty} have no usable prompt (see the log for skipped rows)")
        sampling = replace(
            SamplingSpec.from_config(typed.rollout), n=plan.samples, temperature=plan.temperature
        )
        chunk_size = max(1, typed.rollout.generate_batch_size // plan.samples)
        worker = RolloutWorker(str(model_path), typed.rollout, typed.model.dtype)
        out_dir.mkdir(parents=True, exist_ok=True)
        results: dict[str, Any] = {}
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            disable=not plan.progress,
        )
        with (
            GraderPool.from_config(typed.reward, tuple(typed.algorithm.reward_range)) as pool,
            progress,
            open(out_dir / "items.jsonl", "w") as items,
        ):
            for eval_set in sets:
                task = progress.add_task(eval_set.name, total=len(eval_set.prompts))
                rows = score_set(
                    eval_set,
                    worker,
                    pool,
                    sampling,
                    chunk_size,
                    items,
                    lambda done, task=task: progress.advance(task, done),
                )
                results[eval_set.name] = set_summary(eval_set, rows, plan)
    summary = {
        "model": str(model),
        "sets": results,
        "sampling": {
            "n": plan.samples,
            "temperature": plan.temperature,
            "top_p": sampling.top_p,
            "max_new_tokens": sampling.max_new_tokens,
            "seed": sampling.seed,
        },
        "engine": typed.rollout.engine,
        "limit": plan.limit,
        "seconds": round(time.time() - started, 1),
        "versions": versions(typed.rollout.engine),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
