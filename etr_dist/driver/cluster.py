"""Join (or start) the Ray cluster and create every role the training loop drives."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import ray
from omegaconf import DictConfig
from transformers import AutoTokenizer

from etr_dist.config import default_config_dir, to_dataclass
from etr_dist.config.schema import ClusterConfig, RootConfig
from etr_dist.data.loading import encode_prompts, load_prompts
from etr_dist.data.prompts import DataStats
from etr_dist.data.records import Prompt
from etr_dist.data.stream import PromptStream
from etr_dist.evaluation.sets import load_eval_set, preset_spec
from etr_dist.learner.group import LearnerGroup
from etr_dist.learner.policy_learner import LearnerSetup
from etr_dist.models import resolve_model_path
from etr_dist.placement import PlacementError, RoleGroup, place_role
from etr_dist.reward.ray_grader import create_grader_actor
from etr_dist.rollout.engine import SamplingSpec
from etr_dist.rollout.ray_worker import create_rollout_actors
from etr_dist.sync.manager import WeightSyncManager

logger = logging.getLogger(__name__)


def connect(cfg: ClusterConfig) -> None:
    """Join the cluster of `ray job submit` (RAY_ADDRESS) or cluster.address; otherwise start a local one."""
    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        # address="local": a new cluster even when a `ray start` one runs on this machine (ray.init would join it)
        ray.init(
            address="local",
            num_cpus=cfg.num_cpus,
            num_gpus=cfg.num_gpus,
            include_dashboard=False,
            log_to_driver=True,
        )


@dataclass
class Cluster:
    learner: LearnerGroup
    rollout_workers: list
    grader: object
    weights: WeightSyncManager  # the driver side of weight sync (and of replaying it to a restarted worker)
    train_stream: PromptStream
    eval_sets: dict[
        str, list[Prompt]
    ]  # the config's held-out split (named data.source), then trainer.eval_sets
    sampling: SamplingSpec
    pad_token_id: int
    data_stats: DataStats

    placements: list[RoleGroup]

    def shutdown(self) -> None:
        self.learner.shutdown()
        for actor in [*self.rollout_workers, self.grader]:
            ray.kill(actor)
        for group in self.placements:
            group.remove()


def start_roles(cfg: RootConfig, model_path: str) -> dict[str, Any]:
    """Each role in its own placement group (placed within cluster.timeouts.placement_s), then its actors."""
    cluster, rollout, learner = cfg.cluster, cfg.rollout, cfg.learner
    roles, timeouts, restarts = cluster.roles, cluster.timeouts, cluster.max_actor_restarts
    wanted = [
        ("grader", 1, cfg.reward.num_workers, 0.0),
        ("rollout", rollout.num_workers, rollout.num_cpus_per_worker, rollout.num_gpus_per_worker),
        ("learner", learner.num_ranks, learner.num_cpus_per_rank, learner.num_gpus_per_rank),
    ]
    placements: list[RoleGroup] = []
    try:
        for role, count, cpus, gpus in wanted:
            placements.append(place_role(role, count, cpus, gpus, getattr(roles, role), timeouts.placement_s))
    except PlacementError:
        for group in placements:
            group.remove()
        raise
    grader_at, rollout_at, learner_at = placements
    grader = create_grader_actor(
        cfg.reward, tuple(cfg.algorithm.reward_range), max_restarts=restarts, placement=grader_at
    )
    workers = create_rollout_actors(
        model_path, rollout, cfg.model.dtype, tuple(cfg.plugins), restarts, placement=rollout_at
    )
    group = LearnerGroup(LearnerSetup.from_config(cfg, model_path), timeouts, placement=learner_at)
    weights = WeightSyncManager(cfg.sync.transport, group.actors, workers, cfg.sync.bucket_mb, timeouts)
    return {
        "learner": group,
        "rollout_workers": workers,
        "grader": grader,
        "weights": weights,
        "placements": placements,
    }


def build_cluster(cfg: DictConfig) -> Cluster:
    model_path = str(resolve_model_path(cfg.model))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    stats = DataStats()
    train, held_out = load_prompts(cfg.data, stats)
    train = encode_prompts(train, tokenizer, cfg.data, stats)
    held_out = encode_prompts(held_out, tokenizer, cfg.data, stats)
    if not train:
        raise ValueError(
            f"data.source={cfg.data.source} gave no usable training prompts (skipped: {stats.skipped_rows})"
        )
    logger.info("data: %d train prompts, %d held-out prompts", len(train), len(held_out))
    typed = to_dataclass(cfg)
    eval_sets = {cfg.data.source: held_out}
    for name in cfg.trainer.eval_sets:
        spec = preset_spec(name, default_config_dir(), typed.data)
        eval_sets[name] = load_eval_set(spec, tokenizer).prompts
        logger.info("eval set %s: %d prompts", name, len(eval_sets[name]))
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return Cluster(
        **start_roles(typed, model_path),
        train_stream=PromptStream(train, seed=cfg.trainer.seed),
        eval_sets=eval_sets,
        sampling=SamplingSpec.from_config(cfg.rollout),
        pad_token_id=pad_token_id,
        data_stats=stats,
    )
