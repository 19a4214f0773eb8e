"""Sample the demo's real completions, the grader benchmark's arithmetic traffic (benchmarks/data).

    python benchmarks/demo_completions.py [--prompts 64] [--seed 0]

`make demo`'s model, prompts and sampling (`+experiment=demo`: SmolLM2-135M-Instruct, "What is a - b? Reply
with only the number.", temperature 1, at most 32 new tokens, 8 samples per prompt) through the project's own
HF engine, before any training step: what the grader sees at the start of the demo. Offline, CPU, ~2 min.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoTokenizer

from etr_dist.config import compose_config, to_dataclass
from etr_dist.data.loading import encode_prompts, load_prompts
from etr_dist.models import resolve_model_path
from etr_dist.rollout.engine import SamplingSpec
from etr_dist.rollout.hf_engine import HFEngine

OUT = Path(__file__).resolve().parent / "data" / "demo_completions.jsonl"


def sample(prompts: int, seed: int) -> list[dict[str, str]]:
    """`prompts` training prompts of the demo, 8 completions each, as {prompt, answer, completion} rows."""
    cfg = to_dataclass(compose_config(["+experiment=demo"]))
    model_path = resolve_model_path(cfg.model)
    train, _ = load_prompts(cfg.data)
    chosen = encode_prompts(train[:prompts], AutoTokenizer.from_pretrained(model_path), cfg.data)
    engine = HFEngine(str(model_path), cfg.rollout, cfg.model.dtype)
    spec = SamplingSpec.from_config(cfg.rollout)
    completions = engine.generate(
        chosen, SamplingSpec(spec.n, spec.temperature, spec.top_p, spec.max_new_tokens, seed), 0
    )
    by_id = {prompt.id: prompt for prompt in chosen}
    return [
        {"prompt": by_id[c.prompt_id].text, "answer": by_id[c.prompt_id].answer, "completion": c.text}
        for c in completions
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample(args.prompts, args.seed)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"{len(rows)} completions ({len({r['completion'] for r in rows})} distinct) -> {OUT}")


if __name__ == "__main__":
    main()
