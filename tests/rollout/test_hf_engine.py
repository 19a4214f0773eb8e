"""The hf engine on the tiny Qwen2: shapes, seeding, finish reasons, processed logprobs, weight loads."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from transformers import GenerationConfig

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Prompt
from etr_dist.rollout import ENGINES, SamplingSpec
from etr_dist.rollout.hf_engine import HFEngine


@pytest.fixture(scope="module")
def engine(tiny_model_path: str, rollout_config: RolloutConfig) -> HFEngine:
    return ENGINES.get("hf")(tiny_model_path, rollout_config, "float32")


@pytest.fixture
def restore_weights(engine: HFEngine):
    """Tests that load other weights hand the module's engine back as they found it."""
    original = engine.get_weights()
    yield
    engine.load_weights(original.items())


def test_sampling_spec_from_config(rollout_config: RolloutConfig) -> None:
    spec = SamplingSpec.from_config(rollout_config)
    assert spec == SamplingSpec(n=4, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 0),
        ("temperature", -1.0),
        ("temperature", 0.0),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("max_new_tokens", 0),
    ],
)
def test_sampling_spec_rejects_bad_values(field: str, value: float) -> None:
    spec = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=4)
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(spec, **{field: value})


def test_greedy_decoding_follows_the_argmax(engine: HFEngine, tiny_prompts: list[Prompt]) -> None:
    greedy = SamplingSpec(n=1, temperature=0.0, top_p=1.0, max_new_tokens=5)
    first = engine.generate(tiny_prompts[:1], greedy, policy_version=0)[0]
    ids = torch.tensor([list(tiny_prompts[0].prompt_token_ids) + first.token_ids])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, len(tiny_prompts[0].prompt_token_ids) - 1 : -1]
    assert logits.argmax(-1).tolist() == first.token_ids
    assert engine.generate(tiny_prompts[:1], greedy, policy_version=0)[0].token_ids == first.token_ids


def test_generate_returns_n_completions_per_prompt(engine: HFEngine, tiny_prompts: list[Prompt]) -> None:
    sampling = SamplingSpec(n=3, temperature=1.0, top_p=1.0, max_new_tokens=7, seed=1)
    completions = engine.generate(tiny_prompts, sampling, policy_version=5)
    assert [(c.prompt_id, c.sample_idx) for c in completions] == [
        (p.id, k) for p in tiny_prompts for k in range(3)
    ]
    for c in completions:
        assert 1 <= len(c.token_ids) <= 7
        assert len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0.0 and lp > float("-inf") for lp in c.logprobs)
        assert c.policy_version == 5
        assert c.finish_reason in ("stop", "length")
        assert c.text == engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)


def test_same_seed_same_samples_other_seed_other_samples(
    engine: HFEngine, tiny_prompts: list[Prompt]
) -> None:
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=7)
    first = engine.generate(tiny_prompts, sampling, 0)
    again = engine.generate(tiny_prompts, sampling, 0)
    other = engine.generate(tiny_prompts, dataclasses.replace(sampling, seed=8), 0)
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.logprobs for c in first] == [c.logprobs for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]


def test_prompt_without_ids_is_tokenised_with_the_chat_template(
    engine: HFEngine, tiny_prompts: list[Prompt]
) -> None:
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=5, seed=3)
    from_text = [dataclasses.replace(p, prompt_token_ids=None, messages=None) for p in tiny_prompts]
    assert [c.token_ids for c in engine.generate(from_text, sampling, 0)] == [
        c.token_ids for c in engine.generate(tiny_prompts, sampling, 0)
    ]


def test_empty_prompt_is_rejected_by_name(engine: HFEngine, tiny_prompts: list[Prompt]) -> None:
    empty = dataclasses.replace(tiny_prompts[0], id="empty", prompt_token_ids=())
    with pytest.raises(ValueError, match="'empty'"):
        engine.generate([empty], SamplingSpec(n=1, temperature=1.0, top_p=1.0, max_new_tokens=2), 0)


@pytest.mark.parametrize(("temperature", "top_p", "atol"), [(0.7, 1.0, 1e-4), (1.3, 0.8, 1e-2)])
def test_logprobs_match_teacher_forced_processed_distribution(
    engine: HFEngine,
    tiny_prompts: list[Prompt],
    reference_model,
    teacher_forced,
    temperature: float,
    top_p: float,
    atol: float,
) -> None:
    """Batched, left-padded sampling agrees with one unpadded forward pass at the same temperature and top_p.

    top_p gets a looser tolerance: the near-uniform tiny model puts many near-equal probabilities at the
    nucleus boundary, and a 1e-7 difference can move one token across it (a ~1e-3 change in log Z).
    """
    sampling = SamplingSpec(n=2, temperature=temperature, top_p=top_p, max_new_tokens=8, seed=11)
    prompt_ids = {p.id: list(p.prompt_token_ids) for p in tiny_prompts}
    for c in engine.generate(tiny_prompts, sampling, 0):
        expected = teacher_forced(reference_model, prompt_ids[c.prompt_id], c.token_ids, temperature, top_p)
        raw = teacher_forced(reference_model, prompt_ids[c.prompt_id], c.token_ids, 1.0)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=atol, rtol=0)
        assert (torch.tensor(c.logprobs) - raw).abs().max() > 10 * atol  # processed, not raw, logprobs


def test_finish_reasons_and_logprobs_on_an_eos_heavy_model(
    engine: HFEngine, tiny_prompts: list[Prompt], eos_heavy, restore_weights
) -> None:
    engine.load_weights(eos_heavy.weights.items())
    sampling = SamplingSpec(n=8, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=0)
    completions = engine.generate(tiny_prompts, sampling, 0)
    reasons = {c.finish_reason for c in completions}
    assert reasons == {"stop", "length"}
    for c in completions:
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == eos_heavy.eos_id and eos_heavy.eos_id not in c.token_ids[:-1]
        else:
            assert len(c.token_ids) == 6 and eos_heavy.eos_id not in c.token_ids
        assert "<|im_end|>" not in c.text
        expected = [eos_heavy.logprob(token, 1.0) for token in c.token_ids]
        torch.testing.assert_close(torch.tensor(c.logprobs), torch.tensor(expected), atol=1e-4, rtol=0)


@pytest.fixture
def eos_varied(engine: HFEngine, reference_model, restore_weights):
    """The tiny model with its (tied) eos embedding scaled 20x: rows stop at many different steps, some never.

    Loaded into the engine; returns a plain copy of the reference model with the same weights.
    """
    weights = engine.get_weights()
    weights["model.embed_tokens.weight"][engine.eos_ids[0]] *= 20
    engine.load_weights(weights.items())
    model = copy.deepcopy(reference_model)
    model.load_state_dict(weights, strict=False)  # lm_head.weight is tied to the embedding
    return model


def test_greedy_tokens_are_transformers_generate_tokens(
    engine: HFEngine, tiny_prompts: list[Prompt], eos_varied
) -> None:
    """The decode loop (prefill once, rows dropped as they stop, in-place cache) changes no greedy token."""
    greedy = SamplingSpec(n=1, temperature=0.0, top_p=1.0, max_new_tokens=12)
    completions = engine.generate(tiny_prompts, greedy, 0)
    assert {c.finish_reason for c in completions} == {"stop", "length"}
    assert len({len(c.token_ids) for c in completions}) == len(
        tiny_prompts
    )  # rows dropped at different steps
    batch = engine.tokenizer.pad(
        {"input_ids": [list(p.prompt_token_ids) for p in tiny_prompts]}, return_tensors="pt"
    )
    config = GenerationConfig(
        eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id, do_sample=False, max_new_tokens=12
    )
    with torch.no_grad():
        out = eos_varied.generate(**batch, generation_config=config)
    for c, row in zip(completions, out[:, batch["input_ids"].shape[1] :].tolist(), strict=True):
        assert c.token_ids == row[: len(c.token_ids)]
        assert c.finish_reason == "length" or row[len(c.token_ids) - 1] in engine.eos_ids


def test_sampled_logprobs_are_the_models_when_rows_stop_at_different_steps(
    engine: HFEngine, tiny_prompts: list[Prompt], eos_varied, teacher_forced
) -> None:
    """Each prompt prefilled once for its 8 samples, finished rows dropped: the log-probs are a plain forward's."""
    sampling = SamplingSpec(n=8, temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0)
    completions = engine.generate(tiny_prompts, sampling, 0)
    assert len({len(c.token_ids) for c in completions if c.finish_reason == "stop"}) >= 4
    assert any(c.finish_reason == "length" for c in completions)
    prompt_ids = {p.id: list(p.prompt_token_ids) for p in tiny_prompts}
    for c in completions:
        expected = teacher_forced(eos_varied, prompt_ids[c.prompt_id], c.token_ids, 1.0)
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=1e-4, rtol=0)
        stops = [i for i, token in enumerate(c.token_ids) if token in engine.eos_ids]
        assert stops == ([len(c.token_ids) - 1] if c.finish_reason == "stop" else [])


def test_bfloat16_engine_generates_in_bfloat16(
    tiny_model_path: str,
    rollout_config: RolloutConfig,
    tiny_prompts: list[Prompt],
    reference_model,
    teacher_forced,
) -> None:
    engine = ENGINES.get("hf")(tiny_model_path, rollout_config, "bfloat16")
    assert engine.model.dtype == torch.bfloat16
    sampling = SamplingSpec(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, seed=0)
    model = copy.deepcopy(reference_model).to(torch.bfloat16)
    for c in engine.generate(tiny_prompts, sampling, 0):
        expected = teacher_forced(
            model, list(tiny_prompts[int(c.prompt_id[1:])].prompt_token_ids), c.token_ids, 1.0
        )
        torch.testing.assert_close(torch.tensor(c.logprobs), expected, atol=2e-2, rtol=0)


def test_load_then_get_weights_round_trip(engine: HFEngine, restore_weights) -> None:
    original = engine.get_weights()
    generator = torch.Generator().manual_seed(0)
    perturbed = {name: w + 0.01 * torch.randn(w.shape, generator=generator) for name, w in original.items()}
    engine.load_weights(perturbed.items())
    loaded = engine.get_weights()
    assert loaded.keys() == perturbed.keys()
    assert all(torch.equal(loaded[name], perturbed[name]) for name in perturbed)


def test_partial_load_changes_only_the_named_parameters(engine: HFEngine, restore_weights) -> None:
    original = engine.get_weights()
    name = "model.layers.1.self_attn.k_proj.weight"
    engine.load_weights([(name, torch.zeros_like(original[name]))])
    loaded = engine.get_weights()
    assert torch.equal(loaded[name], torch.zeros_like(original[name]))
    assert all(torch.equal(loaded[n], original[n]) for n in original if n != name)


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (("model.layers.9.mlp.up_proj.weight", torch.zeros(128, 64)), KeyError, "layers.9"),
        (("model.norm.weight", torch.zeros(3)), ValueError, r"model.norm.weight.*\(3,\)"),
    ],
)
def test_bad_weights_raise_and_change_nothing(engine: HFEngine, bad, error, match: str) -> None:
    original = engine.get_weights()
    good = ("model.layers.0.input_layernorm.weight", torch.zeros(64))
    with pytest.raises(error, match=match):
        engine.load_weights([good, bad])
    loaded = engine.get_weights()
    assert all(torch.equal(loaded[n], original[n]) for n in original)
