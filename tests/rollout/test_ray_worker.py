"""RolloutActor in a real local Ray cluster: placement from the config, engine calls, in_flight while busy."""

from __future__ import annotations

import copy
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
    ray.get([actor.update_weights.remote([], 2) for actor in actors])
    first, second = ray.get([actor.generate.remote(tiny_prompts, sampling) for actor in actors])
    assert len(first) == 2 * len(tiny_prompts) and {c.policy_version for c in first} == {2}
    assert [c.token_ids for c in first] == [c.token_ids for c in second]  # same weights, same seed
    original = ray.get(actors[0].get_weights.remote())["model.norm.weight"]
    norm = [("model.norm.weight", torch.full((64,), 0.25))]
    ray.get(actors[0].update_weights.remote([ray.put(norm)], 3))
    assert torch.equal(ray.get(actors[0].get_weights.remote())["model.norm.weight"], norm[0][1])
    assert ray.get([actor.policy_version.remote() for actor in actors]) == [3, 2]
    ray.get(actors[0].update_weights.remote([ray.put([("model.norm.weight", original)])], 4))
    ray.get(actors[0].update_weights.remote([ray.put(norm)], 1))  # older than the weights held: ignored
    assert torch.equal(ray.get(actors[0].get_weights.remote())["model.norm.weight"], original)
    assert ray.get(actors[0].policy_version.remote()) == 4


def test_every_completion_generated_during_syncs_comes_from_exactly_one_weight_version(
    actors, tiny_prompts: list[Prompt], reference_model, teacher_forced
) -> None:
    """Syncs (one bucket per tensor) and generate calls queued on the actor in turns, none awaited."""
    temperature = 0.8
    first = {name: tensor.clone() for name, tensor in ray.get(actors[0].get_weights.remote()).items()}
    second = {name: tensor * 1.1 + 0.01 for name, tensor in first.items()}
    weights = {0: first, 1: second}  # version v holds weights[v % 2]
    buckets = {v: [ray.put([(name, tensor)]) for name, tensor in w.items()] for v, w in weights.items()}
    ray.get(actors[0].update_weights.remote(buckets[0], 10))
    calls = []
    for turn in range(6):  # generate x2 under the version synced last, then a sync to the next version
        sampling = SamplingSpec(n=2, temperature=temperature, top_p=1.0, max_new_tokens=6, seed=turn)
        calls += [actors[0].generate.remote(tiny_prompts, sampling) for _ in range(2)]
        calls.append(actors[0].update_weights.remote(buckets[(11 + turn) % 2], 11 + turn))
    completions = [c for result in ray.get(calls) if isinstance(result, list) for c in result]
    assert {c.policy_version for c in completions} == set(range(10, 16))
    prompt_ids = {p.id: p.prompt_token_ids for p in tiny_prompts}
    model = copy.deepcopy(reference_model)
    for completion in completions:
        errors = {}
        for version, state in weights.items():
            model.load_state_dict(state, strict=False)
            expected = teacher_forced(
                model, prompt_ids[completion.prompt_id], completion.token_ids, temperature
            )
            errors[version] = (expected - torch.tensor(completion.logprobs)).abs().max().item()
        assert errors[completion.policy_version % 2] < 1e-4, errors
        assert errors[1 - completion.policy_version % 2] > 1e-3, errors
    ray.get(actors[0].update_weights.remote(buckets[0], 20))


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
