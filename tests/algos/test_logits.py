"""Chunked log-probs and entropy equal the unchunked computation, in value and in gradient; top_p by hand."""

import math

import pytest
import torch
from transformers import TopPLogitsWarper

from etr_dist.algos import entropy_from_logits, logprobs_from_logits


def logits_and_labels(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=gen).to(dtype) * 3  # [N=3, T=5, V=11]
    labels = torch.randint(0, 11, (3, 5), generator=gen)
    return logits, labels


def test_logprob_by_hand():
    # logits [0, ln 3] -> softmax [1/4, 3/4]
    # temperature 2: [0, ln 3 / 2] -> softmax [1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3)]
    logits = torch.tensor([[[0.0, torch.log(torch.tensor(3.0))]]])
    labels = torch.tensor([[1]])
    assert logprobs_from_logits(logits, labels).item() == pytest.approx(torch.log(torch.tensor(0.75)).item())
    assert logprobs_from_logits(logits, labels, temperature=2.0).exp().item() == pytest.approx(
        3**0.5 / (1 + 3**0.5)
    )
    # entropy of [1/4, 3/4] = -(0.25 ln 0.25 + 0.75 ln 0.75)
    expected = -(0.25 * torch.log(torch.tensor(0.25)) + 0.75 * torch.log(torch.tensor(0.75))).item()
    assert entropy_from_logits(logits).item() == pytest.approx(expected)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_equals_unchunked_with_gradients(temperature):
    logits, labels = logits_and_labels()
    reference_logits = logits.clone().requires_grad_()
    scaled = reference_logits / temperature
    ref_logp = torch.log_softmax(scaled, -1).gather(-1, labels[..., None]).squeeze(-1)
    ref_entropy = torch.distributions.Categorical(logits=scaled).entropy()
    (ref_logp.sum() + 0.5 * ref_entropy.sum()).backward()
    for chunk_size in (1, 4, 15, 1000):  # 15 = N * T, 1000 > N * T
        chunked_logits = logits.clone().requires_grad_()
        logp = logprobs_from_logits(chunked_logits, labels, chunk_size=chunk_size, temperature=temperature)
        entropy = entropy_from_logits(chunked_logits, chunk_size=chunk_size, temperature=temperature)
        (logp.sum() + 0.5 * entropy.sum()).backward()
        torch.testing.assert_close(logp, ref_logp)
        torch.testing.assert_close(entropy, ref_entropy)
        torch.testing.assert_close(chunked_logits.grad, reference_logits.grad)


def test_low_precision_logits_are_upcast_to_float32():
    logits, labels = logits_and_labels(torch.bfloat16)
    logp = logprobs_from_logits(logits, labels, chunk_size=4)
    assert logp.dtype == torch.float32
    expected = torch.log_softmax(logits.float(), -1).gather(-1, labels[..., None]).squeeze(-1)
    torch.testing.assert_close(logp, expected)


def test_non_contiguous_logits_and_no_grad():
    logits, labels = logits_and_labels()
    sliced = logits[:, 1:]  # as when dropping the prompt positions
    with torch.no_grad():
        logp = logprobs_from_logits(sliced, labels[:, 1:], chunk_size=3)
    torch.testing.assert_close(logp, logprobs_from_logits(sliced.contiguous(), labels[:, 1:]))


def test_bad_inputs():
    logits, labels = logits_and_labels()
    with pytest.raises(ValueError, match="labels"):
        logprobs_from_logits(logits, labels[:, :2])
    with pytest.raises(ValueError, match="temperature"):
        entropy_from_logits(logits, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        entropy_from_logits(logits, chunk_size=0)
    with pytest.raises(ValueError, match=r"\[N, T, V\]"):
        entropy_from_logits(logits[0])


def test_backward_keeps_no_float32_copy_of_the_logits():
    # every tensor autograd keeps for backward is a view of the bf16 logits or a chunk of labels: the float32
    # softmax of each chunk is recomputed in backward, never stored for the whole batch
    logits = torch.randn(2, 8, 100, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 100, (2, 8))
    kept = []

    def pack(tensor):
        kept.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        total = logprobs_from_logits(logits, labels, chunk_size=4).sum() + entropy_from_logits(logits).sum()
    assert kept
    for tensor in kept:
        is_logits_view = tensor.untyped_storage().data_ptr() == logits.untyped_storage().data_ptr()
        assert is_logits_view or tensor.dtype == torch.int64
    total.backward()
    assert logits.grad.shape == logits.shape


def test_entropy_is_finite_in_value_and_gradient_with_masked_logits():
    # p = softmax([0, ln 3, -inf]) = [1/4, 3/4, 0]: H = -(1/4 ln 1/4 + 3/4 ln 3/4); the -inf adds nothing
    logits = torch.tensor([[[0.0, math.log(3.0), float("-inf")]]], requires_grad=True)
    entropy = entropy_from_logits(logits)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert entropy.item() == pytest.approx(expected, rel=1e-6)
    entropy.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0, 2].item() == 0.0


# top_p: p = [0.5, 0.3, 0.15, 0.05]. Ascending cumulative mass [0.05, 0.2, 0.5, 1.0]; at top_p = 0.7 a token is
# dropped while its cumulative mass is <= 0.3: 0.05 and 0.15 go, the nucleus {0.5, 0.3} renormalises to
# [0.625, 0.375]. At top_p = 0.45 (<= 0.55) only the most probable token stays: its log-prob is 0.
PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])


def nucleus_logprobs(top_p, labels):
    logits = PROBS.log().expand(len(labels), 4)[None]  # [1, len(labels), 4]
    return logprobs_from_logits(logits, torch.tensor([labels]), top_p=top_p)[0].tolist()


def test_top_p_renormalises_over_the_nucleus_by_hand():
    assert nucleus_logprobs(0.7, [0, 1]) == pytest.approx([math.log(0.625), math.log(0.375)])
    assert nucleus_logprobs(0.45, [0]) == pytest.approx([0.0], abs=1e-7)
    assert nucleus_logprobs(1.0, [2]) == pytest.approx([math.log(0.15)])
    # a sampled token outside the nucleus (the engine's own nucleus had it) joins it: 0.15 / (0.8 + 0.15)
    assert nucleus_logprobs(0.7, [2]) == pytest.approx([math.log(0.15 / 0.95)])
    entropy = entropy_from_logits(PROBS.log()[None, None], top_p=0.7).item()
    assert entropy == pytest.approx(-(0.625 * math.log(0.625) + 0.375 * math.log(0.375)))


@pytest.mark.parametrize("top_p", [0.9, 0.5])
def test_top_p_equals_transformers_warper_chunked_and_in_gradient(top_p):
    """Every label inside the nucleus: the same values and gradients as TopPLogitsWarper + log_softmax."""
    logits, _ = logits_and_labels()
    warped = TopPLogitsWarper(top_p)(None, (logits / 0.7).reshape(-1, 11)).reshape(logits.shape)
    labels = torch.multinomial(
        warped.softmax(-1).reshape(-1, 11), 1, generator=torch.Generator().manual_seed(1)
    )
    labels = labels.reshape(3, 5)  # sampled from the nucleus, as an engine does
    reference_logits = logits.clone().requires_grad_()
    scaled = TopPLogitsWarper(top_p)(None, (reference_logits / 0.7).reshape(-1, 11)).reshape(logits.shape)
    ref_logp = torch.log_softmax(scaled, -1).gather(-1, labels[..., None]).squeeze(-1)
    ref_logp.sum().backward()
    for chunk_size in (1, 4, 1000):
        chunked_logits = logits.clone().requires_grad_()
        logp = logprobs_from_logits(chunked_logits, labels, chunk_size, temperature=0.7, top_p=top_p)
        logp.sum().backward()
        torch.testing.assert_close(logp, ref_logp)
        torch.testing.assert_close(chunked_logits.grad, reference_logits.grad)


def test_top_p_must_be_a_probability():
    logits, labels = logits_and_labels()
    for top_p in (0.0, 1.5):
        with pytest.raises(ValueError, match="top_p"):
            logprobs_from_logits(logits, labels, top_p=top_p)
