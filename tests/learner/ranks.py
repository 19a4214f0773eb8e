"""Spawned learner ranks for the DeepSpeed tests: each runs one script and saves what it saw."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import TrainBatch, shard_batch
from etr_dist.learner.metrics import combine_ranks
from etr_dist.learner.policy_learner import LearnerSetup, PolicyLearner


def join_ranks(rank: int, world_size: int, store_file: str) -> dist.FileStore:
    """The group's rendezvous in a file: no port is picked, released and bound again (a race under load)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    return dist.FileStore(store_file, world_size)


def learner_script(
    rank: int,
    world_size: int,
    store_file: str,
    model_path: str,
    cfg: RootConfig,
    batch: TrainBatch,
    out: Path,
):
    """Train a step, export, checkpoint round-trip, save as HF; rank 0 saves every result to out/."""
    store = join_ranks(rank, world_size, store_file)
    setup = LearnerSetup.from_config(cfg, model_path)
    learner = PolicyLearner(setup, rank, world_size, store)
    shard = shard_batch(batch, world_size, cfg.learner.ppo_mini_batches, 0, setup.skips_zero_advantage)[rank]
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


def scenarios_script(
    store_file: str,
    model_path: str,
    scenarios: dict[str, RootConfig],
    batch: TrainBatch,
    out: Path,
    steps: int = 1,
):
    """One rank, one learner per scenario in turn: its last step's metrics, weights before and after the steps."""
    store = join_ranks(0, 1, store_file)
    results = {}
    for name, cfg in scenarios.items():
        setup = LearnerSetup.from_config(cfg, model_path)
        learner = PolicyLearner(setup, 0, 1, store)
        shard = shard_batch(
            batch,
            1,
            cfg.learner.ppo_mini_batches,
            seed=cfg.learner.seed,
            skip_zero_advantage=setup.skips_zero_advantage,
        )[0]
        initial = learner.gathered_state_dict()
        for _ in range(steps):
            metrics = combine_ranks([learner.train_step(shard)])
        results[name] = {"initial": initial, "metrics": metrics, "after": learner.gathered_state_dict()}
        del learner
    torch.save(results, out / "scenarios.pt")


def spawned(index: int, jobs: list[tuple]) -> None:
    """torch.multiprocessing.spawn entry point: process `index` runs jobs[index] (a script and its args)."""
    script, *args = jobs[index]
    script(*args)
    if dist.is_initialized():  # leave together: a rank exiting with a live gloo group may abort (SIGABRT)
        dist.barrier()
        dist.destroy_process_group()
