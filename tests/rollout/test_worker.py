"""RolloutWorker around the hf engine: version stamping, weight pass-through, weight-group misuse."""

from __future__ import annotations

import pytest
import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt
from etr_dist.rollout import SamplingSpec
from etr_dist.rollout.worker import RolloutWorker


@pytest.fixture(scope="module")
def worker(tiny_model_path: str, rollout_config: RolloutConfig) -> RolloutWorker:
    return RolloutWorker(tiny_model_path, rollout_config, "float32")


def test_completions_carry_the_current_policy_version(
    worker: RolloutWorker, tiny_prompts: list[Prompt]
) -> None:
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=3, seed=0)
    assert worker.policy_version == 0
    assert {c.policy_version for c in worker.generate(tiny_prompts, sampling)} == {0}
    worker.set_policy_version(3)
    assert worker.policy_version == 3
    assert {c.policy_version for c in worker.generate(tiny_prompts, sampling)} == {3}
    with pytest.raises(ValueError, match="-1"):
        worker.set_policy_version(-1)
    assert worker.policy_version == 3


def test_weights_pass_through_to_the_engine(worker: RolloutWorker) -> None:
    name = "model.norm.weight"
    original = worker.get_weights()[name]
    worker.load_weights([(name, torch.full_like(original, 0.5))])
    assert torch.equal(worker.get_weights()[name], torch.full_like(original, 0.5))
    worker.load_weights([(name, original)])


def test_unknown_engine_names_the_known_ones(tiny_model_path: str) -> None:
    with pytest.raises(KeyError, match=r"unknown generation engine 'sglang'; known: \['hf', 'vllm'\]"):
        RolloutWorker(tiny_model_path, RolloutConfig(engine="sglang"))


def test_receive_broadcast_needs_a_weight_group(worker: RolloutWorker) -> None:
    with pytest.raises(RuntimeError, match="join_weight_group"):
        worker.receive_broadcast([("model.norm.weight", "float32", (64,))])
