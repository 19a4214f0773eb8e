"""`etr-dist train [overrides...]`, `etr-dist eval <model> [options] [overrides...]`,
`etr-dist study <study config> [overrides...]` and `etr-dist export <run folder or checkpoint> <out folder>`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:
        from etr_dist.train import main as train

        return train(args[1:])
    if args[:1] == ["eval"]:
        from etr_dist.evaluation.command import main as evaluate

        return evaluate(args[1:])
    if args[:1] == ["study"]:
        from etr_dist.study.runner import main as study

        return study(args[1:])
    parser = argparse.ArgumentParser(prog="etr-dist", description="RLVR training with Elastic Trust Regions")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("train", help="train: etr-dist train [Hydra overrides...]")
    commands.add_parser(
        "eval", help="score a model: etr-dist eval <model> [--sets math500,gsm8k] [overrides...]"
    )
    commands.add_parser(
        "study", help="compare arms over seeds: etr-dist study configs/study/<name>.yaml [overrides...]"
    )
    export = commands.add_parser("export", help="write a checkpoint as a plain Hugging Face model folder")
    export.add_argument(
        "checkpoint", help="a run folder (its latest checkpoint), or a checkpoints/step_<N> folder"
    )
    export.add_argument("out", help="the folder to write the model and tokenizer to")
    parsed = parser.parse_args(args)
    from etr_dist.driver.export import export_hf

    try:
        out = export_hf(parsed.checkpoint, parsed.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"etr-dist export: {err}", file=sys.stderr)
        return 2
    print(f"exported {parsed.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
