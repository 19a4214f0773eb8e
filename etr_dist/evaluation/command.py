"""`etr-dist eval <run folder | checkpoint | HF folder> [options] [overrides]`: parse, compose, run, report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from etr_dist.config import ConfigError, compose_config, default_config_dir, to_dataclass
from etr_dist.evaluation.sets import EvalSetSpec, file_spec, preset_spec

USAGE_EPILOG = """\
overrides are Hydra-style config overrides, e.g. trainer.eval_samples=8 trainer.eval_temperature=0.6
rollout.max_new_tokens=1024 rollout=vllm. Without --sets/--set the config's own held-out data is scored:
data=jsonl data.eval_path=test.jsonl data.question_key=problem (an eval file alone is enough).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="etr-dist eval",
        description="score a model: pass@1 and pass@k per eval set, items.jsonl and summary.json",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="an HF model folder, a run folder or a checkpoints/step_<N> folder")
    p.add_argument("overrides", nargs="*", help="Hydra-style config overrides")
    p.add_argument(
        "--sets", default="", help="comma-separated presets from configs/eval/, e.g. math500,gsm8k"
    )
    p.add_argument(
        "--set",
        dest="files",
        action="append",
        default=[],
        metavar="NAME=PATH[:QKEY:AKEY]",
        help="a jsonl/parquet file as set NAME (repeatable); a preset NAME keeps its settings but reads PATH",
    )
    p.add_argument("--k", default="", help="comma-separated k for pass@k (default: n = trainer.eval_samples)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N rows of each set")
    p.add_argument("--out", default=None, help="output folder (default: <trainer.output_dir>/eval/<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def with_train_path(overrides: list[str]) -> list[str]:
    """A file source needs only an eval file here: data.eval_path stands in for the training-only train_path."""
    given = {o.partition("=")[0].lstrip("+") for o in overrides}
    eval_path = next(
        (o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("data.eval_path=")), None
    )
    if eval_path and "data.train_path" not in given:
        return [*overrides, f"data.train_path={eval_path}"]
    return overrides


def main(argv: list[str]) -> int:
    args = parser().parse_intermixed_args(argv)
    try:
        cfg = compose_config(with_train_path(args.overrides))
    except ConfigError as err:
        print(f"etr-dist eval: config error: {err}", file=sys.stderr)
        return 2
    from etr_dist.evaluation.runner import EvalPlan, run_eval  # torch, transformers: after the fast checks

    typed, config_dir = to_dataclass(cfg), default_config_dir()
    try:
        names = [name for name in args.sets.split(",") if name]
        specs = [preset_spec(name, config_dir, typed.data) for name in names]
        specs += [file_spec(option, config_dir, typed.data) for option in args.files]
        specs = specs or [EvalSetSpec(typed.data.source, typed.data)]
        duplicates = sorted({s.name for s in specs if [t.name for t in specs].count(s.name) > 1})
        if duplicates:
            raise ValueError(f"eval set names must be distinct, got {duplicates} more than once")
        samples = typed.trainer.eval_samples
        ks = tuple(int(k) for k in args.k.split(",") if k) or ((samples,) if samples > 1 else ())
        plan = EvalPlan(samples, ks, typed.trainer.eval_temperature, args.limit, not args.no_progress)
        out = Path(args.out or Path(typed.trainer.output_dir) / "eval" / time.strftime("%Y%m%d-%H%M%S"))
        summary = run_eval(cfg, args.model, specs, out, plan)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"etr-dist eval: {err}", file=sys.stderr)
        return 2
    for name, result in summary["sets"].items():
        scores = ", ".join(f"pass@{k} {result[f'pass@{k}']:.4f}" for k in result["k"])
        stderr = result["pass@1_stderr"]
        spread = f"pass@1 stderr {stderr:.4f}, " if stderr is not None else ""
        print(f"{name}: {scores} ({spread}{result['items']} items, n={result['n']})")
    print(f"results: {out / 'summary.json'}, {out / 'items.jsonl'}")
    return 0
