"""The shared-prefix forward: each prompt once per micro-batch, log-probs, entropies and gradients of the plain one."""

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus
from deepspeed.utils import safe_get_full_grad
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import TrainBatch, build_train_batch, micro_batches, shard_batch
from etr_dist.learner.policy_learner import LearnerSetup, PolicyLearner
from etr_dist.learner.response_forward import response_logits
from etr_dist.learner.shared_prefix import pack_rows, takes_block_mask

from .helpers import make_group, random_groups
from .ranks import join_ranks, spawned

TEMPERATURE, TOP_P, CHUNK = 0.9, 0.95, 16


def two_groups_batch() -> TrainBatch:
    groups = [
        make_group("a", [5, 6, 7], [[8, 9], [10]], [1.0, 0.0]),
        make_group("b", [20], [[21, 22, 23], [24]], [1.0, 0.0]),
    ]
    return build_train_batch(groups, 0, RootConfig().algorithm)


def test_each_prompt_is_packed_once_with_its_responses_after_it():
    packed = pack_rows(two_groups_batch())
    assert packed.prompt_width == 3  # every prompt ends at column 2
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9, 10, 0], [0, 0, 20, 21, 22, 23, 24]]
    assert packed.segments.tolist() == [[0, 0, 0, 1, 1, 2, -1], [-1, -1, 0, 1, 1, 1, 2]]
    # each response continues from its own prompt's length
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 3, 0], [0, 0, 0, 1, 2, 3, 1]]
    assert packed.logit_rows.tolist() == [[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]]
    # counted from column 2: token 0 of every response is predicted by the prompt's last position
    assert packed.logit_columns.tolist() == [[0, 1, 0], [0, 0, 0], [0, 1, 2], [0, 0, 0]]
    assert packed.labels.tolist() == [[8, 9, 0], [10, 0, 0], [21, 22, 23], [24, 0, 0]]


def test_a_response_sees_its_prompt_and_its_own_earlier_tokens_only():
    allowed = pack_rows(two_groups_batch()).allowed()[:, 0].int()
    assert allowed.shape == (2, 7, 7)
    assert allowed[0, 4].tolist() == [1, 1, 1, 1, 1, 0, 0]  # token 9: the prompt, 8 and itself
    assert allowed[0, 5].tolist() == [1, 1, 1, 0, 0, 1, 0]  # token 10: the prompt and itself, not 8 or 9
    assert allowed[0, 6].tolist() == [0, 0, 0, 0, 0, 0, 1]  # padding only sees itself (no empty softmax row)
    assert allowed[1, 6].tolist() == [0, 0, 1, 0, 0, 0, 1]  # token 24 after the left-padded prompt [20]
    assert allowed[1, :2].tolist() == [[1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0]]


def test_rows_with_distinct_prompts_take_the_other_path():
    groups = [make_group("a", [5, 6], [[8, 9]], [1.0]), make_group("b", [5, 7], [[8]], [0.0])]
    assert pack_rows(build_train_batch(groups, 0, RootConfig().algorithm)) is None


def test_micro_batches_by_group_keep_a_group_s_rows_together():
    batch = build_train_batch(random_groups(3, 4, 1024, seed=5), 0, RootConfig().algorithm)
    shuffled = batch.rows(torch.tensor([5, 0, 9, 2, 11, 7, 1, 4, 10, 3, 6, 8]), batch.mini_batches)
    micros = micro_batches(shuffled, 4, by_length=True, by_group=True)
    assert [m.batch.group_index.tolist() for m in micros] == [[0] * 4, [1] * 4, [2] * 4]
    for micro in micros:  # by length within the group
        lengths = micro.batch.prompt_lens + micro.batch.response_mask.sum(-1).long()
        assert lengths.tolist() == sorted(lengths.tolist())


def mixed_batch() -> TrainBatch:
    """Parts of groups in an interleaved order, a group of one, prompts of 2-12 and responses of 1-14 tokens."""
    groups = random_groups(3, 4, 1024, seed=7, max_prompt=12, max_response=14)
    groups.append(make_group("single", [3, 4, 5, 6, 7, 8, 9], [[10, 11, 12]], [1.0]))
    batch = build_train_batch(groups, 0, RootConfig().algorithm)
    return batch.rows(torch.tensor([0, 4, 12, 2, 9, 5, 3, 11, 8]), batch.mini_batches).trimmed()


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=1024,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config)


def forward_backward(model, batch: TrainBatch, shared_prefix: bool):
    """Masked log-probs and entropies, and every parameter's gradient of their sum."""
    model.zero_grad()
    response = response_logits(model, batch, at_response_only=False, shared_prefix=shared_prefix)
    assert (response.positions is not None) == shared_prefix  # packed: the real response tokens only
    log_prob = response.log_probs(CHUNK, TEMPERATURE, TOP_P) * batch.response_mask
    entropy = response.entropy(CHUNK, TEMPERATURE, TOP_P) * batch.response_mask
    (log_prob.sum() + entropy.sum()).backward()
    return log_prob.detach(), entropy.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("model_kind", ["qwen2", "llama"])
def test_packed_forward_equals_the_plain_forward(tiny_model_path, model_kind, attention, checkpointing):
    if model_kind == "qwen2":
        model = AutoModelForCausalLM.from_pretrained(
            tiny_model_path, dtype=torch.float32, attn_implementation=attention
        )
    else:
        model = tiny_llama()
        model.set_attn_implementation(attention)
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    assert model.config._attn_implementation == attention and takes_block_mask(model, width=1)
    assert model.is_gradient_checkpointing == checkpointing
    batch = mixed_batch()
    assert pack_rows(batch).input_ids.shape[0] == 4  # 9 rows, 4 prompts
    plain_log_prob, plain_entropy, plain_grads = forward_backward(model, batch, shared_prefix=False)
    log_prob, entropy, grads = forward_backward(model, batch, shared_prefix=True)
    assert plain_log_prob.abs().sum() > 0
    torch.testing.assert_close(log_prob, plain_log_prob, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, plain_entropy, rtol=1e-5, atol=1e-5)
    assert sorted(grads) == sorted(plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def zero3_script(
    rank: int, world_size: int, store_file: str, model_path: str, batch: TrainBatch, out: Path
) -> None:
    """Plain then packed forward/backward of this rank's rows, with checkpointing off then on: grads, statuses."""
    store = join_ranks(rank, world_size, store_file)
    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(RootConfig), {"learner": {"zero_stage": 3}})
    )
    learner = PolicyLearner(LearnerSetup.from_config(cfg, model_path), rank, world_size, store)
    engine, micro = learner.engine, shard_batch(batch, world_size)[rank].trimmed().to(learner.device)
    results = {}
    for checkpointing in (False, True):
        if checkpointing:
            engine.module.gradient_checkpointing_enable()
        for shared_prefix in (False, True):
            response = response_logits(engine, micro, shared_prefix=shared_prefix)
            log_prob = response.log_probs(CHUNK, TEMPERATURE, TOP_P) * micro.response_mask
            # DeepSpeed averages gradients over ranks: scaled back to the sum, as the learner does
            engine.backward(log_prob.sum() * world_size, scale_wrt_gas=False)
            results[checkpointing, shared_prefix] = {
                "statuses": {p.ds_status for p in engine.module.parameters()}
                == {ZeroParamStatus.NOT_AVAILABLE},
                "grads": {
                    name: safe_get_full_grad(p).clone() for name, p in engine.module.named_parameters()
                },
                "log_prob": log_prob.detach().cpu(),
                "packed": pack_rows(micro) is not None and takes_block_mask(engine, width=1),
            }
            engine.optimizer.zero_grad()
    torch.save(results, out / f"rank{rank}.pt")


@pytest.mark.slow
def test_zero3_ranks_pack_exactly_and_release_every_parameter(tiny_model_path, tmp_path):
    """1 and 2 ZeRO-3 ranks (gloo), concurrently: packed grads == plain grads, all partitioned after backward."""
    groups = random_groups(2, 4, 1024, seed=3, max_prompt=12, max_response=14)
    batch = build_train_batch(groups, 0, RootConfig().algorithm)
    batch = batch.rows(torch.tensor([0, 1, 3, 4, 5, 6, 7]), batch.mini_batches)  # a group without a row
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    store_one, store_two, path = str(one / "store"), str(two / "store"), str(tiny_model_path)
    jobs = [
        (zero3_script, 0, 1, store_one, path, batch, one),
        (zero3_script, 0, 2, store_two, path, batch, two),
        (zero3_script, 1, 2, store_two, path, batch, two),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).parents[1]))  # the children unpickle by module name
        mp.spawn(spawned, args=(jobs,), nprocs=len(jobs), join=True)
    runs = [
        torch.load(folder / f"rank{r}.pt", weights_only=False) for folder, r in ((one, 0), (two, 0), (two, 1))
    ]
    for run in runs:
        for checkpointing in (False, True):
            plain, packed = run[checkpointing, False], run[checkpointing, True]
            assert plain["statuses"] and packed["statuses"] and packed["packed"]
            torch.testing.assert_close(packed["log_prob"], plain["log_prob"], rtol=1e-5, atol=1e-5)
            assert max(grad.abs().max() for grad in plain["grads"].values()) > 0
            for name, grad in plain["grads"].items():
                torch.testing.assert_close(packed["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # the full gradient is the same whatever the number of ranks
    for name, grad in runs[0][True, True]["grads"].items():
        torch.testing.assert_close(runs[1][True, True]["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
