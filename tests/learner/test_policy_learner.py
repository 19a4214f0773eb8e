"""Real DeepSpeed ZeRO-3 ranks on gloo (spawned processes) training the tiny Qwen2 model."""

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from etr_dist.algos import entropy_from_logits, logprobs_from_logits
from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import build_train_batch
from etr_dist.learner.metrics import combine_ranks
from etr_dist.learner.objective import Objective, response_logits_and_labels

from .helpers import random_groups
from .ranks import learner_script, spawned

pytestmark = pytest.mark.slow
TEMPERATURE, TOP_P, CHUNK = 0.9, 0.95, 16


def learner_config(world_size: int, micro_batch_size: int) -> RootConfig:
    cfg = OmegaConf.structured(RootConfig)
    cfg.algorithm.merge_with({"name": "etr", "kl_coef": 0.05, "entropy_coef": 0.01})
    cfg.learner.merge_with(
        {
            "num_ranks": world_size,
            "micro_batch_size": micro_batch_size,
            "lr": 1e-3,
            "use_reference": True,
            "logprob_chunk_size": CHUNK,
            "ppo_mini_batches": 1,
        }
    )
    cfg.rollout.temperature, cfg.rollout.top_p = TEMPERATURE, TOP_P
    return OmegaConf.to_object(cfg)


@pytest.fixture(scope="module")
def batch():
    cfg = OmegaConf.structured(RootConfig)
    return build_train_batch(
        random_groups(3, 5, 1024, seed=3), 0, cfg.algorithm
    )  # 15 rows: shards of 8 and 7


@pytest.fixture(scope="module")
def runs(tiny_model_path, batch, tmp_path_factory):
    """Ranks 0 and 1 of a 2-rank group (1 row per micro-batch) and a 1-rank run (4 rows), concurrently."""
    two, one = tmp_path_factory.mktemp("two_ranks"), tmp_path_factory.mktemp("one_rank")
    store_two, store_one, path = str(two / "store"), str(one / "store"), str(tiny_model_path)
    jobs = [
        (learner_script, 0, 2, store_two, path, learner_config(2, 1), batch, two),
        (learner_script, 1, 2, store_two, path, learner_config(2, 1), batch, two),
        (learner_script, 0, 1, store_one, path, learner_config(1, 4), batch, one),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(
            str(Path(__file__).parents[1])
        )  # the children unpickle `spawned` by module name
        mp.spawn(spawned, args=(jobs,), nprocs=len(jobs), join=True)
    results = {
        "two": [torch.load(two / f"rank{r}.pt", weights_only=False) for r in range(2)],
        "one": torch.load(one / "rank0.pt", weights_only=False),
        "dirs": {"two": two, "one": one},
    }
    for run in [*results["two"], results["one"]]:
        run["rank_metrics"], run["metrics"] = run["metrics"], combine_ranks([run["metrics"]])
    return results


def plain_torch_step(model_path, batch):
    """The same step without DeepSpeed, in one process: loss metrics and gradient norm."""
    cfg = learner_config(1, 4)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    response_logits, labels = response_logits_and_labels(
        logits, batch.input_ids, batch.prompt_lens, batch.response_mask.shape[1]
    )
    log_prob = logprobs_from_logits(response_logits, labels, CHUNK, TEMPERATURE, TOP_P)
    old = log_prob.detach()
    entropy = entropy_from_logits(response_logits, CHUNK, TEMPERATURE, TOP_P)
    norm = batch.mini_batches[0].loss_norm
    loss, metrics = Objective(cfg.algorithm)(batch, norm, log_prob, old, ref_log_prob=old, entropy=entropy)
    loss.backward()
    grad_norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters() if p.grad is not None))
    return metrics, grad_norm


def assert_same_weights(got, want, atol=0.0):
    assert sorted(got) == sorted(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=atol, msg=name)


def test_zero3_loads_the_checkpoint_weights(runs, tiny_model_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    assert_same_weights(runs["two"][0]["initial"], dict(model.named_parameters()))
    assert runs["two"][1]["initial"] == {}  # only rank 0 receives gathered weights


def test_step_metrics_are_finite_and_complete(runs):
    expected = {
        "actor/pg_loss",
        "actor/pg_clipfrac",
        "actor/pg_clipfrac_upper",
        "actor/pg_clipfrac_lower",
        "actor/pg_clipfrac_dual",
        "actor/ppo_kl",
        "actor/entropy",
        "actor/kl_loss",
        "rollout_corr/weight_mean",
        "rollout_corr/masked_frac",
        "rollout_corr/log_ratio_abs_mean",
        "actor/grad_norm",
        "actor/lr",
    }
    for run in [*runs["two"], runs["one"]]:
        metrics = run["metrics"]
        assert expected <= set(metrics)
        assert all(math.isfinite(value) for value in metrics.values())
        assert metrics["actor/lr"] == pytest.approx(1e-3)


def test_two_ranks_equal_one_rank_and_plain_torch(runs, batch, tiny_model_path):
    """Sharding (2 ranks x 8 micro-batches, one of them padding) == 1 rank x 4 == no DeepSpeed at all."""
    reference_metrics, reference_grad_norm = plain_torch_step(tiny_model_path, batch)
    one = runs["one"]["metrics"]
    two = [run["metrics"] for run in runs["two"]]
    assert one["actor/grad_norm"] == pytest.approx(reference_grad_norm, rel=1e-4)
    assert two[0]["actor/grad_norm"] == pytest.approx(reference_grad_norm, rel=1e-4)
    assert one["actor/pg_loss"] == pytest.approx(reference_metrics["actor/pg_loss"], rel=1e-4)
    combined = combine_ranks([run["rank_metrics"] for run in runs["two"]])
    assert combined["actor/pg_loss"] == pytest.approx(reference_metrics["actor/pg_loss"], rel=1e-4)
    # token-weighted over ranks: the same as one rank holding every row
    assert combined["actor/entropy"] == pytest.approx(one["actor/entropy"], rel=1e-5)
    assert one["actor/kl_loss"] == pytest.approx(0.0, abs=1e-9)  # reference == policy before the update
    assert_same_weights(runs["two"][0]["after_step"], runs["one"]["after_step"], atol=1e-5)
    initial, after = runs["one"]["initial"], runs["one"]["after_step"]
    assert max((after[name] - initial[name]).abs().max().item() for name in initial) > 1e-4


def test_export_weights_buckets_match_the_gathered_state_dict(runs):
    rank0, rank1 = runs["two"]
    assert len(rank0["buckets"]) > 1 and len(rank0["buckets"]) == len(rank1["buckets"])
    assert all(bucket == [] for bucket in rank1["buckets"])
    exported = {name: tensor for bucket in rank0["buckets"] for name, tensor in bucket}
    assert_same_weights(exported, rank0["after_step"])
    assert all(t.device.type == "cpu" for t in exported.values())


def test_checkpoint_round_trip_restores_weights_and_optimizer(runs):
    for run in [runs["two"][0], runs["one"]]:
        assert {"step": 1, "note": "first"}.items() <= run["client_state"].items()
        assert_same_weights(run["restored"], run["after_step"])
        assert_same_weights(run["after_second_step_again"], run["after_second_step"])
        changed = run["after_second_step"]["model.norm.weight"] - run["after_step"]["model.norm.weight"]
        assert changed.abs().max() > 0


def test_save_hf_writes_a_loadable_model_with_tokenizer(runs, tiny_model_path):
    folder = runs["dirs"]["two"] / "hf"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert_same_weights(dict(model.named_parameters()), runs["two"][0]["after_second_step_again"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(tiny_model_path).get_vocab()
