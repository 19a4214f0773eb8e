"""Spawned learner ranks for the DeepSpeed tests: each runs one script and saves what it saw."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from etr_dist.learner.batch import TrainBatch, shard_batch
from etr_dist.learner.policy_learner import PolicyLearner


def learner_script(rank: int, world_size: int, port: int, model_path: str, cfg, batch: TrainBatch, out: Path):
    """Train a step, export, checkpoint round-trip, save as HF; rank 0 saves every result to out/."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1"
    )
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    learner = PolicyLearner(model_path, cfg, rank, world_size)
    shard = shard_batch(batch, world_size, cfg.learner.ppo_mini_batches)[rank]
    results = {"initial": learner.gathered_state_dict(), "metrics": learner.train_step(shard)}
    results["buckets"] = list(learner.export_weights(bucket_mb=0.05))
    results["after_step"] = learner.gathered_state_dict()
    learner.save_checkpoint(str(out / "checkpoint"), {"step": 1, "note": "first"})
    learner.train_step(shard)
    results["after_second_step"] = learner.gathered_state_dict()
    results["client_state"] = learner.load_checkpoint(str(out / "checkpoint"))
    results["restored"] = learner.gathered_state_dict()
    learner.train_step(shard)
    results["after_second_step_again"] = learner.gathered_state_dict()
    learner.save_hf(str(out / "hf"))
    torch.save(results, out / f"rank{rank}.pt")


def spawned(index: int, jobs: list[tuple]) -> None:
    """torch.multiprocessing.spawn entry point: process `index` runs jobs[index]."""
    learner_script(*jobs[index])
