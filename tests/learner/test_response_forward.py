"""The aligned forward: logits only where a response token is predicted, equal to the plain path's."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from etr_dist.algos import logprobs_from_logits
from etr_dist.config.schema import AlgorithmConfig
from etr_dist.learner.batch import build_train_batch
from etr_dist.learner.response_forward import aligned_inputs, response_logits

from .helpers import make_group, random_groups


def test_aligned_rows_left_pad_prompts_and_keep_each_token_s_position():
    groups = [
        make_group("a", [5, 6, 7], [[8, 9], [10]], [1.0, 0.0]),
        make_group("b", [20], [[21, 22, 23]], [1.0]),
    ]
    batch = build_train_batch(groups, 0, AlgorithmConfig())
    inputs = aligned_inputs(batch)
    assert inputs["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0], [5, 6, 7, 10, 0, 0], [0, 0, 20, 21, 22, 23]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
    valid = inputs["attention_mask"].bool()
    assert inputs["position_ids"][valid].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3]


@pytest.fixture(scope="module")
def model(tiny_model_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    model.train()
    return model


def masked_logprob_sum(model, batch, at_response_only):
    response = response_logits(model, batch, at_response_only)
    logits, labels = response.logits, response.labels
    log_prob = logprobs_from_logits(logits, labels, 16, temperature=0.9, top_p=0.95)
    return logits, labels, (log_prob * batch.response_mask).sum()


def test_response_logits_and_gradients_equal_the_plain_path(model):
    batch = build_train_batch(
        random_groups(3, 4, 1024, seed=7, max_prompt=9, max_response=11), 0, AlgorithmConfig()
    )
    mask = batch.response_mask.bool()
    results = []
    for at_response_only in (False, True):
        model.zero_grad()
        logits, labels, total = masked_logprob_sum(model, batch, at_response_only)
        total.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        results.append((logits[mask], labels[mask], total, grads))
    (plain_logits, plain_labels, plain_total, plain_grads), (logits, labels, total, grads) = results
    assert logits.shape[-1] == model.config.vocab_size and logits.shape[0] == batch.num_response_tokens
    assert torch.equal(labels, plain_labels)
    torch.testing.assert_close(logits, plain_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(total, plain_total, rtol=1e-6, atol=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
