"""A 2-rank LearnerGroup (real Ray, real DeepSpeed ZeRO-3 on gloo) syncing into real HF rollout workers."""

import math
import os
import signal

import pytest
import ray
import torch
from omegaconf import OmegaConf

from etr_dist.config.schema import RolloutConfig, RootConfig, TimeoutsConfig
from etr_dist.data.records import Completion, Group, Prompt
from etr_dist.learner.batch import build_train_batch
from etr_dist.learner.group import LearnerGroup
from etr_dist.learner.policy_learner import LearnerSetup
from etr_dist.remote_calls import RemoteCallError, call_when_back
from etr_dist.rollout.ray_worker import create_rollout_actors
from etr_dist.sync.manager import WeightSyncManager

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
    group = LearnerGroup(LearnerSetup.from_config(typed, str(tiny_model_path)), TimeoutsConfig())
    yield group
    group.shutdown()


@pytest.fixture(scope="module")
def rollouts(local_ray, tiny_model_path):
    cfg = RolloutConfig(engine="hf", num_workers=2, num_cpus_per_worker=0.5)
    return create_rollout_actors(str(tiny_model_path), cfg, "float32", max_restarts=1)


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
    weights = WeightSyncManager("object_store", learners.actors, rollouts, 1, TimeoutsConfig())
    train_until_workers_are_stale(learners, rollouts, seed=5)
    metrics = weights.sync(version=1).as_metrics()
    assert set(metrics) == {"timing_s/sync", "perf/weight_sync_bytes", "perf/weight_sync_gbps"}
    state = learners.gathered_state_dict()
    assert metrics["perf/weight_sync_bytes"] == sum(t.nbytes for t in state.values())
    assert metrics["timing_s/sync"] > 0 and metrics["perf/weight_sync_gbps"] > 0
    assert_workers_hold(rollouts, state, version=1)
    train_until_workers_are_stale(learners, rollouts, seed=4)
    small_buckets = WeightSyncManager("object_store", learners.actors, rollouts, BUCKET_MB, TimeoutsConfig())
    stats = small_buckets.sync(version=2)
    assert stats.num_buckets > 1
    assert_workers_hold(rollouts, learners.gathered_state_dict(), version=2)


def test_broadcast_transport_over_gloo_copies_the_weights(learners, rollouts):
    """The nccl transport's code path with ProcessGroupGloo: group formed once (on a port rank 0 holds),
    reused on the next sync; it cannot replay to a restarted worker, and says so."""
    weights = WeightSyncManager("nccl", learners.actors, rollouts, BUCKET_MB, TimeoutsConfig())
    train_until_workers_are_stale(learners, rollouts, seed=1)
    stats = weights.sync(version=3)
    state = learners.gathered_state_dict()
    assert stats.num_buckets > 1 and stats.bytes == sum(t.nbytes for t in state.values())
    assert_workers_hold(rollouts, state, version=3)
    train_until_workers_are_stale(learners, rollouts, seed=2)
    weights.sync(version=4)
    assert_workers_hold(rollouts, learners.gathered_state_dict(), version=4)
    with pytest.raises(RemoteCallError, match="cannot take a new member.*resume=auto"):
        weights.replay(0)


def test_a_replay_brings_a_worker_to_the_last_sync_and_never_back(learners, rollouts):
    """A restarted worker is given the last sync again; a replay older than what a worker holds is ignored."""
    weights = WeightSyncManager("object_store", learners.actors, rollouts, 1, TimeoutsConfig())
    train_until_workers_are_stale(learners, rollouts, seed=6)
    weights.sync(version=5)
    synced = learners.gathered_state_dict()
    pid = ray.get(rollouts[1].pid.remote())
    os.kill(pid, signal.SIGKILL)
    assert wait_for_restart(rollouts[1], pid) == 0  # Ray restarted it with the initial weights, as version 0
    weights.replay(1)
    assert_workers_hold(rollouts, synced, version=5)
    train_until_workers_are_stale(learners, rollouts, seed=7)
    weights.sync(version=6)
    stale = WeightSyncManager("object_store", learners.actors, rollouts[:1], 1, TimeoutsConfig())
    stale._last = weights._last[0], 4  # a replay that lost the race with the sync of v6
    stale.replay(0)
    assert_workers_hold(rollouts, learners.gathered_state_dict(), version=6)


def wait_for_restart(actor, old_pid: int) -> int:
    """The restarted actor's policy version (while Ray restarts it, calls fail as unavailable: call again)."""
    pid = call_when_back(actor.pid.remote, "worker", "restart", 120, "test")
    assert pid != old_pid
    return ray.get(actor.policy_version.remote())
