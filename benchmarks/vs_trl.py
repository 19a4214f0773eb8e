"""etr_dist against TRL's GRPOTrainer on one configuration, back to back, from the same weights.

    pip install -e '.[bench]'           # TRL, pinned
    python benchmarks/vs_trl.py [--steps 5] [--dtypes float32,bfloat16] [--model smollm2]

Both train SmolLM2-135M-Instruct (model.source=smollm2, converted offline) with GRPO on two-digit addition and
subtraction ("What is 66 - 24? Put the final answer in \\boxed{}.", graded by etr_dist's grader): 8 prompts x 8
samples per step at temperature 1, at most 64 new tokens, HF generation, one optimizer step per batch in 4
micro-batches of 16 rows, no KL term, no dynamic sampling. Per dtype: TRL (bf16=True for bfloat16), then
etr_dist with learner.skip_zero_advantage on and off (bfloat16 means model.dtype=auto, which is bf16 only where
the CPU or GPU has native bf16 matmuls; elsewhere the bfloat16 runs are skipped). Each run is a fresh process.
Prints the per-step medians (step 1 is warm-up and left out), the ratio to TRL, each phase's share of the step,
and the learner's achieved FLOP/s: 6 x parameters x the batch's tokens (all rows, prompt + response, as a plain
step would train) per learn second, against a large matmul's FLOP/s measured here in the same dtype.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from etr_dist.precision import detect_compute_dtype

TASK = {"data.source": "arithmetic", "data.max_operand": 99, "data.seed": 0}
STEP = {"prompts": 8, "group": 8, "max_new_tokens": 64, "micro_batch": 16, "lr": 1e-6}


def etr_overrides(model: str, dtype: str, steps: int, skip_zero_advantage: bool, run_dir: Path) -> list[str]:
    """The training command's overrides for this benchmark's configuration."""
    return [
        f"model={model}",
        f"model.dtype={'auto' if dtype == 'bfloat16' else 'float32'}",
        "data=arithmetic",
        *[f"{key}={value}" for key, value in TASK.items() if key != "data.source"],
        "algorithm=grpo",
        "rollout=hf",
        f"rollout.group_size={STEP['group']}",
        f"rollout.max_new_tokens={STEP['max_new_tokens']}",
        "rollout.temperature=1.0",
        f"rollout.prompts_per_request={STEP['prompts']}",
        f"rollout.generate_batch_size={STEP['prompts'] * STEP['group']}",
        "rollout.num_cpus_per_worker=2",
        "learner.num_ranks=1",
        "learner.num_cpus_per_rank=2",
        "learner.ppo_mini_batches=1",
        f"learner.micro_batch_size={STEP['micro_batch']}",
        f"learner.lr={STEP['lr']}",
        f"learner.skip_zero_advantage={str(skip_zero_advantage).lower()}",
        "reward.num_workers=1",
        f"trainer.prompts_per_step={STEP['prompts']}",
        f"trainer.total_steps={steps}",
        "trainer.dynamic_sampling=false",
        "trainer.save_every=0",
        "trainer.eval_every=0",
        "trainer.eval_at_start=false",
        "logging.progress_bar=false",
        f"trainer.run_dir={run_dir}",
    ]


def run_etr(model: str, dtype: str, steps: int, skip_zero_advantage: bool, work: Path) -> list[dict]:
    """Per-step gen / learn / sync / step seconds and response length from the run's metrics.jsonl."""
    run_dir = work / f"etr_{dtype}_skip{int(skip_zero_advantage)}"
    command = [
        sys.executable,
        "-m",
        "etr_dist.train",
        *etr_overrides(model, dtype, steps, skip_zero_advantage, run_dir),
    ]
    subprocess.run(command, check=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "step": r["timing_s/step"],
            "gen": r["timing_s/gen"],
            "learn": r["timing_s/learn"],
            "sync": r["timing_s/sync"],
            "response_tokens": r["response_length/mean"],
        }
        for r in rows
        if "timing_s/step" in r
    ]


def trl_worker(model_path: str, dtype: str, steps: int, out: Path) -> None:
    """In its own process: TRL's GRPOTrainer on the same task; per optimizer step its wall and generate seconds."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from etr_dist.config.schema import DataConfig
    from etr_dist.data.loading import load_prompts
    from etr_dist.reward import grade

    data_cfg = DataConfig(**{key.removeprefix("data."): value for key, value in TASK.items()})
    train, _ = load_prompts(data_cfg)
    dataset = Dataset.from_list([{"prompt": p.messages, "answer": p.answer} for p in train])

    def reward(completions: list, answer: list[str], **_) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        fallback = data_cfg.last_number_fallback
        return [grade(t, a, last_number_fallback=fallback).score for t, a in zip(texts, answer, strict=True)]

    config = GRPOConfig(
        output_dir=str(out.parent / "trl_output"),
        per_device_train_batch_size=STEP["micro_batch"],
        gradient_accumulation_steps=STEP["prompts"] * STEP["group"] // STEP["micro_batch"],
        num_generations=STEP["group"],
        max_completion_length=STEP["max_new_tokens"],
        temperature=1.0,
        learning_rate=STEP["lr"],
        beta=0.0,
        max_steps=steps,
        bf16=dtype == "bfloat16",
        use_cpu=not torch.cuda.is_available(),
        model_init_kwargs={"dtype": "float32"},
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        seed=0,
    )
    trainer = GRPOTrainer(model=model_path, reward_funcs=reward, args=config, train_dataset=dataset)
    steps_log: list[dict] = []
    generate = trainer._generate_and_score_completions  # generation, rewards and advantages of one batch

    def timed_generate(*args, **kwargs):
        start = time.perf_counter()
        result = generate(*args, **kwargs)
        steps_log[-1]["gen"] += time.perf_counter() - start
        steps_log[-1]["response_tokens"] = float(result["completion_mask"].sum(1).float().mean())
        return result

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            steps_log.append({"gen": 0.0, "sync": 0.0, "start": time.perf_counter()})

        def on_step_end(self, *_, **__):
            entry = steps_log[-1]
            entry["step"] = time.perf_counter() - entry.pop("start")
            entry["learn"] = entry["step"] - entry["gen"]

    trainer._generate_and_score_completions = timed_generate
    trainer.add_callback(Timer())
    trainer.train()
    out.write_text(json.dumps(steps_log))


def run_trl(model_path: Path, dtype: str, steps: int, work: Path) -> list[dict]:
    out = work / f"trl_{dtype}.json"
    command = [sys.executable, __file__, "--trl-worker", dtype, "--steps", str(steps), "--out", str(out)]
    subprocess.run([*command, "--model-path", str(model_path)], check=True)
    return json.loads(out.read_text())


def matmul_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a [size, size] @ [size, size] matmul on this machine's default device, in dtype."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    a @ b  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def summarise(steps: list[dict], params: int, prompt_tokens: float) -> dict[str, float]:
    """Medians over the steps after the first (warm-up), and the learner's FLOP/s at those medians."""
    timed = steps[1:]
    summary = {key: statistics.median(s[key] for s in timed) for key in ("step", "gen", "learn", "sync")}
    rows = STEP["prompts"] * STEP["group"]
    tokens = rows * (prompt_tokens + statistics.median(s["response_tokens"] for s in timed))
    summary["learner_flops"] = 6 * params * tokens / summary["learn"]
    return summary


def table(dtype: str, results: dict[str, dict[str, float]], peak: float) -> str:
    header = "| run | step s | ratio to TRL | gen s (share) | learn s (share) | sync s (share) | learner GFLOP/s (% of matmul) |"
    lines = [f"{dtype}: matmul {peak / 1e9:.1f} GFLOP/s", header, "|" + "---|" * 7]
    base = results["TRL"]["step"]
    for name, r in results.items():
        shares = [f"{r[k]:.1f} ({r[k] / r['step']:.0%})" for k in ("gen", "learn", "sync")]
        flops = f"{r['learner_flops'] / 1e9:.1f} ({r['learner_flops'] / peak:.0%})"
        lines.append(
            f"| {name} | {r['step']:.1f} | {r['step'] / base:.2f} | {' | '.join(shares)} | {flops} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per run; the first is warm-up")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"], help="tiny: a quick check")
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_worker:
        trl_worker(args.model_path, args.trl_worker, args.steps, args.out)
        return 0
    if args.steps < 2:
        parser.error("--steps must be >= 2: the first step is warm-up")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from etr_dist.config import compose_config, to_dataclass
    from etr_dist.config.schema import DataConfig
    from etr_dist.data.loading import load_prompts
    from etr_dist.models import resolve_model_path

    model_path = resolve_model_path(
        to_dataclass(compose_config([f"model={args.model}"])).model
    )  # cache_dir resolved
    params = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path)).num_parameters()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts, _ = load_prompts(DataConfig(**{key.removeprefix("data."): value for key, value in TASK.items()}))
    prompt_tokens = statistics.mean(
        len(tokenizer.apply_chat_template(p.messages, add_generation_prompt=True, return_dict=False))
        for p in prompts[:64]
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reports = []
    with tempfile.TemporaryDirectory(prefix="vs_trl_") as tmp:
        work = Path(tmp)
        for dtype in args.dtypes.split(","):
            if dtype == "bfloat16" and detect_compute_dtype(device) != torch.bfloat16:
                reports.append(f"{dtype}: skipped, no native bf16 matmul on this {device}")
                continue
            runs = {"TRL": run_trl(model_path, dtype, args.steps, work)}
            for skip in (True, False):
                steps = run_etr(args.model, dtype, args.steps, skip, work)
                runs[f"etr_dist (skip_zero_advantage={str(skip).lower()})"] = steps
            results = {name: summarise(steps, params, prompt_tokens) for name, steps in runs.items()}
            reports.append(table(dtype, results, matmul_flops(getattr(torch, dtype))))
    print(
        f"\n{args.model}: {params / 1e6:.1f}M parameters, prompt {prompt_tokens:.0f} tokens, {args.steps} steps"
    )
    print("\n\n".join(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
