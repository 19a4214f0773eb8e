"""RolloutWorker around the hf engine: version stamping, weight pass-through, weight-group misuse."""

from __future__ import annotations

import socket
import threading

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
    worker.update_weights([], 3)
    assert worker.policy_version == 3
    assert {c.policy_version for c in worker.generate(tiny_prompts, sampling)} == {3}
    with pytest.raises(ValueError, match="-1"):
        worker.update_weights([], -1)
    assert worker.policy_version == 3


def test_weights_pass_through_to_the_engine_with_their_version(worker: RolloutWorker) -> None:
    name = "model.norm.weight"
    original = worker.get_weights()[name]
    version = worker.policy_version
    worker.update_weights([[(name, torch.full_like(original, 0.5))]], version + 1)
    assert torch.equal(worker.get_weights()[name], torch.full_like(original, 0.5))
    assert worker.policy_version == version + 1
    worker.update_weights([[(name, original)]], version)


def test_unknown_engine_names_the_known_ones(tiny_model_path: str) -> None:
    with pytest.raises(KeyError, match=r"unknown generation engine 'sglang'; known: \['hf', 'vllm'\]"):
        RolloutWorker(tiny_model_path, RolloutConfig(engine="sglang"))


def test_receive_weights_needs_a_weight_group(worker: RolloutWorker) -> None:
    with pytest.raises(RuntimeError, match="join_weight_group"):
        worker.receive_weights(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_weights_broadcast_over_a_real_gloo_group_land_in_the_engine(
    tiny_model_path: str, rollout_config: RolloutConfig
) -> None:
    """Rank 0 (the learner's role) runs in a thread; the worker joins as rank 1 and loads what it receives."""
    from etr_dist.sync.broadcast import join_group, send_bucket, send_end

    worker = RolloutWorker(tiny_model_path, rollout_config)  # its own: it stays in the group afterwards
    bucket = [
        ("model.norm.weight", torch.full((64,), 0.75)),
        ("model.layers.0.mlp.up_proj.weight", torch.arange(128 * 64, dtype=torch.float32).reshape(128, 64)),
    ]
    port = free_port()

    def learner_rank() -> None:
        group = join_group("127.0.0.1", port, 2, 0, "gloo")
        for half in (bucket[:1], bucket[1:]):  # two buckets, then the end marker
            send_bucket(group, half)
        send_end(group)

    sender = threading.Thread(target=learner_rank)
    sender.start()
    worker.join_weight_group("127.0.0.1", port, 2, 1, "gloo")
    worker.receive_weights(7)
    sender.join(timeout=30)
    loaded = worker.get_weights()
    for name, tensor in bucket:
        assert torch.equal(loaded[name], tensor)
    assert worker.policy_version == 7
