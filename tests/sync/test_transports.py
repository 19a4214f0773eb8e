"""A 2-rank LearnerGroup (real Ray, real DeepSpeed ZeRO-3 on gloo) syncing into real HF rollout workers."""

import math

import pytest
import ray
import torch
from omegaconf import OmegaConf

from etr_dist.config.schema import RolloutConfig, RootConfig
from etr_dist.data.records import Completion, Group, Prompt
from etr_dist.learner.batch import build_train_batch
from etr_dist.learner.group import LearnerGroup
from etr_dist.learner.policy_learner import LearnerSetup
from etr_dist.rollout.ray_worker import create_rollout_actors
from etr_dist.sync.transports import TRANSPORTS, BroadcastTransport

pytestmark = pytest.mark.slow
BUCKET_MB = 0.05  # the tiny model's embedding (256 KB) fills a bucket alone; the rest share a few


@pytest.fixture(scope="module")
def learners(local_ray, tiny_model_path):
    cfg = OmegaConf.structured(RootConfig)
    cfg.learner.merge_with(
        {"num_ranks": 2, "lr": 1e-3, "micro_batch_size": 4, "num_cpus_per_rank": 1, "ppo_mini_batches": 2}
    )
    cfg.learner.ppo_epochs = 2  # 4 optimizer steps per train step
    cfg.sync.merge_with({"transport": "object_store", "bucket_mb": 1})  # the whole tiny model in one bucket
    typed = OmegaConf.to_object(cfg)
    group = LearnerGroup(LearnerSetup.from_config(typed, str(tiny_model_path)), typed.sync)
    yield group
    group.shutdown()


@pytest.fixture(scope="module")
def rollouts(local_ray, tiny_model_path):
    cfg = RolloutConfig(engine="hf", num_workers=2, num_cpus_per_worker=0.5)
    return create_rollout_actors(str(tiny_model_path), cfg, "float32")


def train_batch(seed: int):
    """Two groups of real-looking rows; the values only need to move the weights."""
    generator = torch.Generator().manual_seed(seed)
    groups = []
    for g in range(2):
        prompt = Prompt(id=f"p{g}", text="q", answer="1", source="test", prompt_token_ids=(5, 6, 7 + g))
        completions = [
            Completion(
                f"p{g}",
                i,
                torch.randint(3, 1024, (4,), generator=generator).tolist(),
                [-1.0] * 4,
                "",
                "stop",
                0,
            )
            for i in range(3)
        ]
        groups.append(Group(prompt, completions, rewards=[1.0, 0.0, 0.0]))
    return build_train_batch(groups, 0, OmegaConf.structured(RootConfig).algorithm)


def assert_workers_hold(rollouts, weights, version):
    assert ray.get([actor.policy_version.remote() for actor in rollouts]) == [version] * len(rollouts)
    for got in ray.get([actor.get_weights.remote() for actor in rollouts]):
        assert sorted(got) == sorted(weights)
        for name, tensor in weights.items():
            torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)


def train_until_workers_are_stale(learners, rollouts, seed: int) -> None:
    learners.train_step(train_batch(seed))
    weights = learners.gathered_state_dict()
    got = ray.get(rollouts[0].get_weights.remote())
    assert any(not torch.equal(got[name], weights[name]) for name in weights)


def test_group_train_step_returns_rank_mean_metrics(learners):
    before = learners.gathered_state_dict()
    metrics = learners.train_step(train_batch(seed=0))
    assert {"actor/pg_loss", "actor/grad_norm", "actor/entropy", "actor/ppo_mini_batches"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    after = learners.gathered_state_dict()
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_object_store_sync_copies_the_weights_and_bumps_the_version(learners, rollouts):
    train_until_workers_are_stale(learners, rollouts, seed=5)
    metrics = learners.sync_weights(rollouts, version=1)  # the configured transport: object_store
    assert set(metrics) == {"timing_s/sync", "perf/weight_sync_bytes", "perf/weight_sync_gbps"}
    weights = learners.gathered_state_dict()
    assert metrics["perf/weight_sync_bytes"] == sum(t.nbytes for t in weights.values())
    assert metrics["timing_s/sync"] > 0 and metrics["perf/weight_sync_gbps"] > 0
    assert_workers_hold(rollouts, weights, version=1)
    train_until_workers_are_stale(learners, rollouts, seed=4)
    stats = TRANSPORTS.get("object_store")().sync(learners.actors, rollouts, BUCKET_MB, version=2)
    assert stats.num_buckets > 1
    assert_workers_hold(rollouts, learners.gathered_state_dict(), version=2)


def test_broadcast_transport_over_gloo_copies_the_weights(learners, rollouts):
    """The nccl transport's code path with ProcessGroupGloo: group formed once, reused on the next sync."""
    transport = TRANSPORTS.get("nccl")()
    assert isinstance(transport, BroadcastTransport)
    train_until_workers_are_stale(learners, rollouts, seed=1)
    stats = transport.sync(learners.actors, rollouts, BUCKET_MB, version=3)
    weights = learners.gathered_state_dict()
    assert stats.num_buckets > 1 and stats.bytes == sum(t.nbytes for t in weights.values())
    assert_workers_hold(rollouts, weights, version=3)
    train_until_workers_are_stale(learners, rollouts, seed=2)
    transport.sync(learners.actors, rollouts, BUCKET_MB, version=4)
    assert_workers_hold(rollouts, learners.gathered_state_dict(), version=4)
    with pytest.raises(ValueError, match="formed with other rollout workers"):
        transport.sync(learners.actors, rollouts[:1], BUCKET_MB, version=5)


def test_group_checkpoint_and_hf_export(learners, tmp_path):
    saved = learners.gathered_state_dict()
    learners.save_checkpoint(tmp_path / "checkpoint", {"step": 7})
    learners.train_step(train_batch(seed=3))
    assert learners.load_checkpoint(tmp_path / "checkpoint")["step"] == 7
    restored = learners.gathered_state_dict()
    assert all(torch.equal(restored[name], saved[name]) for name in saved)
    learners.save_hf(tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "hf" / "tokenizer.json").is_file()
