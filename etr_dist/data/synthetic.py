"""Seeded, offline prompt sources: synthetic arithmetic and reasoning-gym's GSM8K-style word problems."""

from __future__ import annotations

import numpy as np

from etr_dist.config.schema import DataConfig
from etr_dist.data.prompts import DATA_SOURCES, DataStats, Splits, make_prompt


def arithmetic_problem(rng: np.random.Generator, num_operands: int, max_operand: int) -> tuple[str, str]:
    """One question like "66 + 24" (operands in [0, max_operand], + and -, left to right) and its answer."""
    operands = rng.integers(0, max_operand + 1, size=num_operands).tolist()
    ops = rng.choice(["+", "-"], size=num_operands - 1).tolist()
    result = operands[0]
    question = str(operands[0])
    for op, operand in zip(ops, operands[1:], strict=True):
        result = result + operand if op == "+" else result - operand
        question += f" {op} {operand}"
    return question, str(result)


def arithmetic_draw(rng: np.random.Generator, cfg: DataConfig) -> tuple[str, str]:
    """One question at the config's size, or (mixed_difficulty) at a size drawn for it: a spread of pass rates."""
    if not cfg.mixed_difficulty:
        return arithmetic_problem(rng, cfg.num_operands, cfg.max_operand)
    num_operands = int(rng.integers(2, cfg.num_operands + 1))
    return arithmetic_problem(rng, num_operands, int(rng.integers(1, cfg.max_operand + 1)))


@DATA_SOURCES.register("arithmetic")
def load_arithmetic(cfg: DataConfig, stats: DataStats) -> Splits:
    """Eval: eval_size distinct questions; train: train_size draws (repeats allowed) from the rest."""
    if cfg.num_operands < 2 or cfg.max_operand < 0:
        raise ValueError(
            f"data.num_operands must be >= 2 and data.max_operand >= 0, "
            f"got num_operands={cfg.num_operands}, max_operand={cfg.max_operand}"
        )
    counts = range(2 if cfg.mixed_difficulty else cfg.num_operands, cfg.num_operands + 1)
    num_questions = sum((cfg.max_operand + 1) ** k * 2 ** (k - 1) for k in counts)
    if cfg.eval_size >= num_questions:
        raise ValueError(
            f"data.eval_size={cfg.eval_size} leaves no arithmetic question for training: "
            f"only {num_questions} exist with num_operands={cfg.num_operands}, max_operand={cfg.max_operand}"
        )
    eval_rng = np.random.default_rng((cfg.seed, 1))
    eval_problems: dict[str, str] = {}
    while len(eval_problems) < cfg.eval_size:
        question, answer = arithmetic_draw(eval_rng, cfg)
        eval_problems[question] = answer
    train_rng = np.random.default_rng((cfg.seed, 0))
    train_problems: list[tuple[str, str]] = []
    while len(train_problems) < cfg.train_size:
        question, answer = arithmetic_draw(train_rng, cfg)
        if question not in eval_problems:
            train_problems.append((question, answer))
    train = [make_prompt(cfg, "train", i, q, a) for i, (q, a) in enumerate(train_problems)]
    evals = [make_prompt(cfg, "eval", i, q, a) for i, (q, a) in enumerate(eval_problems.items())]
    return train, evals


@DATA_SOURCES.register("gsm_symbolic")
def load_gsm_symbolic(cfg: DataConfig, stats: DataStats) -> Splits:
    """One seeded reasoning-gym dataset: the first eval_size items are eval, the next ones train.

    Item i is generated from Random(seed + i), so two seeds would overlap; slicing one dataset does not.
    Train items whose question also appears in eval are dropped.
    """
    import reasoning_gym  # imported on use: it takes ~1.5 s and only this source needs it

    dataset = reasoning_gym.create_dataset("gsm_symbolic", seed=cfg.seed, size=cfg.eval_size + cfg.train_size)
    items = [dataset[i] for i in range(len(dataset))]
    eval_items = items[: cfg.eval_size]
    eval_questions = {item["question"] for item in eval_items}
    train_items = [item for item in items[cfg.eval_size :] if item["question"] not in eval_questions]
    train = [
        make_prompt(cfg, "train", i, it["question"], str(it["answer"])) for i, it in enumerate(train_items)
    ]
    evals = [
        make_prompt(cfg, "eval", i, it["question"], str(it["answer"])) for i, it in enumerate(eval_items)
    ]
    return train, evals
