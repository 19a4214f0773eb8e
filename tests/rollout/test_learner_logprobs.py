"""End to end: the learner's log-probs describe the distribution the hf engine sampled (temperature, top_p).

The engine reports log-probs after temperature and top_p; the learner recomputes them on its own padded batch
with logprobs_from_logits. On-policy the importance weight exp(logp_old - logp_rollout) must then be 1 on
every token. Without top_p in the learner it is ~0.9 = the nucleus' mass, silently.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from etr_dist.algos import logprobs_from_logits, rollout_correction_weights
from etr_dist.config.schema import AlgorithmConfig, RolloutConfig, RolloutCorrectionConfig
from etr_dist.data.records import Group, Prompt
from etr_dist.learner.batch import TrainBatch, build_train_batch
from etr_dist.learner.objective import response_logits_and_labels
from etr_dist.rollout import ENGINES, SamplingSpec

TEMPERATURE, TOP_P = 0.7, 0.9
NO_CAP = RolloutCorrectionConfig(mode="token_truncate", c_high=1e9)  # the raw weights, to look at


@pytest.fixture(scope="module")
def batch(tiny_model_path: str, tiny_prompts: list[Prompt], rollout_config: RolloutConfig) -> TrainBatch:
    """4 samples of each prompt from the hf engine at temperature 0.7, top_p 0.9, as the learner receives them."""
    engine = ENGINES.get("hf")(tiny_model_path, rollout_config, "float32")
    sampling = SamplingSpec(n=4, temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=16, seed=3)
    completions = engine.generate(tiny_prompts, sampling, policy_version=0)
    groups = [
        Group(prompt=p, completions=[c for c in completions if c.prompt_id == p.id], rewards=[0.0, 1.0] * 2)
        for p in tiny_prompts
    ]
    return build_train_batch(groups, pad_token_id=0, algorithm=AlgorithmConfig(name="grpo"))


@pytest.fixture(scope="module")
def response_logits(tiny_model_path: str, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The learner's forward pass (right-padded rows, no KV cache) with the same weights as the engine."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return response_logits_and_labels(
        logits, batch.input_ids, batch.prompt_lens, batch.response_mask.shape[1]
    )


def is_weights(batch: TrainBatch, response_logits, top_p: float) -> tuple[torch.Tensor, dict[str, float]]:
    logits, labels = response_logits
    old = logprobs_from_logits(logits, labels, chunk_size=64, temperature=TEMPERATURE, top_p=top_p)
    weights, metrics = rollout_correction_weights(old, batch.rollout_logprobs, batch.response_mask, NO_CAP)
    return weights[batch.response_mask.bool()], metrics


def test_on_policy_importance_weight_is_one_on_every_token(batch, response_logits):
    assert batch.num_response_tokens > 100
    weights, metrics = is_weights(batch, response_logits, TOP_P)
    assert (weights - 1).abs().max() < 1e-3
    assert metrics["rollout_corr/log_ratio_abs_mean"] < 1e-5


def test_without_top_p_the_learner_would_see_weights_near_the_nucleus_mass(batch, response_logits):
    weights, metrics = is_weights(batch, response_logits, 1.0)
    # the full softmax spreads the nucleus' mass (>= 0.9) over the whole vocabulary: every w = mass <= 1
    assert (weights <= 1 + 1e-5).all()
    assert metrics["rollout_corr/weight_mean"] == pytest.approx(0.9, abs=0.02)
    assert (weights - 1).abs().max() > 0.05
