"""RolloutActor in a real local Ray cluster: placement from the config, engine calls, in_flight while busy."""

from __future__ import annotations

import time

import pytest
import ray
import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt
from etr_dist.rollout import SamplingSpec
from etr_dist.rollout.ray_worker import create_rollout_actors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def actors(local_ray, tiny_model_path: str):
    cfg = RolloutConfig(engine="hf", num_workers=2, num_cpus_per_worker=1.5, generate_batch_size=8)
    return create_rollout_actors(tiny_model_path, cfg, "float32")


def test_actors_take_their_cpus_from_the_config(actors) -> None:
    ray.get([actor.policy_version.remote() for actor in actors])  # both started
    assert ray.available_resources().get("CPU", 0) == pytest.approx(ray.cluster_resources()["CPU"] - 2 * 1.5)


def test_generate_and_weights_through_ray(actors, tiny_prompts: list[Prompt]) -> None:
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=0)
    ray.get([actor.set_policy_version.remote(2) for actor in actors])
    first, second = ray.get([actor.generate.remote(tiny_prompts, sampling) for actor in actors])
    assert len(first) == 2 * len(tiny_prompts) and {c.policy_version for c in first} == {2}
    assert [c.token_ids for c in first] == [c.token_ids for c in second]  # same weights, same seed
    norm = ("model.norm.weight", torch.full((64,), 0.25))
    ray.get(actors[0].load_weights.remote([norm]))
    assert torch.equal(ray.get(actors[0].get_weights.remote())["model.norm.weight"], norm[1])
    assert ray.get([actor.policy_version.remote() for actor in actors]) == [2, 2]


def test_in_flight_counts_prompts_while_generate_runs(actors, tiny_prompts: list[Prompt]) -> None:
    """Status calls have their own concurrency group, so they answer while the engine is busy."""
    busy = SamplingSpec(n=8, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=1)
    running = actors[1].generate.remote(tiny_prompts, busy)
    seen = set()
    while not ray.wait([running], timeout=0)[0]:
        seen.add(ray.get(actors[1].in_flight.remote()))
        time.sleep(0.01)
    assert len(ray.get(running)) == 8 * len(tiny_prompts)
    assert len(tiny_prompts) in seen
    assert ray.get(actors[1].in_flight.remote()) == 0
