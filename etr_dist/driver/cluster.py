"""Join (or start) the Ray cluster and create every role the training loop drives."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray
from omegaconf import DictConfig
from transformers import AutoTokenizer

from etr_dist.config import to_dataclass
from etr_dist.config.schema import ClusterConfig
from etr_dist.data.loading import encode_prompts, load_prompts
from etr_dist.data.prompts import DataStats
from etr_dist.data.records import Prompt
from etr_dist.data.stream import PromptStream
from etr_dist.learner.group import LearnerGroup
from etr_dist.learner.policy_learner import LearnerSetup
from etr_dist.models import resolve_model_path
from etr_dist.reward.ray_grader import create_grader_actor
from etr_dist.rollout.engine import SamplingSpec
from etr_dist.rollout.ray_worker import create_rollout_actors

logger = logging.getLogger(__name__)


def connect(cfg: ClusterConfig) -> None:
    """Join the cluster of `ray job submit` (RAY_ADDRESS) or cluster.address; otherwise start a local one."""
    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, include_dashboard=False, log_to_driver=True)


@dataclass
class Cluster:
    learner: LearnerGroup
    rollout_workers: list
    grader: object
    train_stream: PromptStream
    eval_prompts: list[Prompt]
    sampling: SamplingSpec
    pad_token_id: int
    data_stats: DataStats

    def shutdown(self) -> None:
        self.learner.shutdown()
        for actor in [*self.rollout_workers, self.grader]:
            ray.kill(actor)


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
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    grader = create_grader_actor(cfg.reward, tuple(cfg.algorithm.reward_range))
    workers = create_rollout_actors(model_path, cfg.rollout, cfg.model.dtype, tuple(cfg.plugins))
    learner = LearnerGroup(LearnerSetup.from_config(to_dataclass(cfg), model_path), cfg.sync)
    return Cluster(
        learner=learner,
        rollout_workers=workers,
        grader=grader,
        train_stream=PromptStream(train, seed=cfg.trainer.seed),
        eval_prompts=held_out,
        sampling=SamplingSpec.from_config(cfg.rollout),
        pad_token_id=pad_token_id,
        data_stats=stats,
    )
