"""Learner time per train step on the demo's shapes: the plain path against the fast paths, back to back.

    python benchmarks/learner_bench.py [--steps 2] [--paths plain,fast,fast_no_shared_prefix]

One DeepSpeed ZeRO-3 rank in this process (no Ray), SmolLM2-135M-Instruct in float32 (model.source=smollm2),
the demo's learner settings (+experiment=demo: ETR, 4 mini-batches, micro-batch 16) on a synthetic batch of
8 prompts x 8 samples: the demo's chat-template prompts ("What is a + b? Reply with only the number.", 45
tokens) and response lengths like its real completions at step 0 (42% stop at the 32-token budget, the rest
2-20 tokens: ~30% of the response positions are padding). Rewards are 0/1 and no group is all-equal, as after
dynamic sampling, so no row has a zero advantage. Each path trains a warm-up step, then the paths alternate.
Paths: plain (every fast path off), fast (every one on), fast_no_shared_prefix (all but shared_prefix_forward:
the shared-prefix forward's own share).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import time

import torch
from transformers import AutoTokenizer

from etr_dist.config import compose_config, to_dataclass
from etr_dist.config.schema import LEARNER_FAST_PATHS as FAST_PATHS
from etr_dist.data.records import Completion, Group, Prompt
from etr_dist.learner.batch import TrainBatch, build_train_batch, shard_batch
from etr_dist.learner.policy_learner import LearnerSetup, PolicyLearner
from etr_dist.models import resolve_model_path


def demo_groups(
    tokenizer: AutoTokenizer, prompts: int, group_size: int, budget: int, seed: int
) -> list[Group]:
    """The demo's prompts with synthetic responses of its real length mix; rewards never all equal."""
    rng = random.Random(seed)
    groups = []
    for g in range(prompts):
        a, b = rng.randint(0, 10), rng.randint(0, 10)
        messages = [{"role": "user", "content": f"What is {a} + {b}? Reply with only the number."}]
        prompt_ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        prompt = Prompt(f"p{g}", "q", str(a + b), "bench", prompt_token_ids=tuple(prompt_ids))
        completions = []
        for i in range(group_size):
            length = budget if rng.random() < 0.42 else rng.randint(2, 20)
            tokens = [rng.randrange(100, tokenizer.vocab_size) for _ in range(length)]
            logprobs = [-rng.uniform(0.05, 3.0) for _ in tokens]
            completions.append(Completion(f"p{g}", i, tokens, logprobs, "", "stop", 0))
        rewards = [float(rng.random() < 0.3) for _ in range(group_size)]
        rewards[0], rewards[1] = 1.0, 0.0
        groups.append(Group(prompt, completions, rewards))
    return groups


PATHS = {  # name -> the fast-path switches it sets
    "plain": dict.fromkeys(FAST_PATHS, False),
    "fast": dict.fromkeys(FAST_PATHS, True),
    "fast_no_shared_prefix": {**dict.fromkeys(FAST_PATHS, True), "shared_prefix_forward": False},
}


def timed_step(learner: PolicyLearner, shard: TrainBatch) -> float:
    start = time.perf_counter()
    learner.train_step(shard)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2, help="timed steps per path, after one warm-up step")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    args = parser.parse_args()
    paths = args.paths.split(",")
    if unknown := set(paths) - set(PATHS):
        parser.error(f"unknown paths {sorted(unknown)}; choose from {', '.join(PATHS)}")
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    cfg = to_dataclass(compose_config(["+experiment=demo", "learner.backend=gloo"]))
    model_path = resolve_model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    groups = demo_groups(
        tokenizer, cfg.trainer.prompts_per_step, cfg.rollout.group_size, cfg.rollout.max_new_tokens, 0
    )
    batch = build_train_batch(groups, tokenizer.pad_token_id or 0, cfg.algorithm, cfg.rollout.max_new_tokens)
    response_padding = 1 - batch.num_response_tokens / batch.response_mask.numel()
    learners, shards, times = {}, {}, {}
    for name in paths:
        learner_cfg = dataclasses.replace(cfg.learner, **PATHS[name])
        setup = LearnerSetup.from_config(dataclasses.replace(cfg, learner=learner_cfg), str(model_path))
        learners[name] = PolicyLearner(setup, 0, 1)
        shards[name] = shard_batch(batch, 1, learner_cfg.ppo_mini_batches, 0, setup.skips_zero_advantage)[0]
        timed_step(learners[name], shards[name])  # warm-up
        times[name] = []
    for _ in range(args.steps):
        for name, learner in learners.items():
            times[name].append(timed_step(learner, shards[name]))
    medians = {name: statistics.median(steps) for name, steps in times.items()}
    print(
        f"batch: {batch.num_rows} rows, prompt {int(batch.prompt_lens.float().mean())} tokens, "
        f"response padding {response_padding:.0%}; torch threads {torch.get_num_threads()}"
    )
    first = paths[0]
    for name in paths:
        print(
            f"learner s/step {name}: {medians[name]:.2f} {[round(t, 2) for t in times[name]]}, "
            f"ratio to {first} {medians[name] / medians[first]:.2f}"
        )


if __name__ == "__main__":
    main()
