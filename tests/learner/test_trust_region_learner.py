"""The real DeepSpeed learner (one ZeRO-3 rank) with several optimizer steps per batch, where trust regions act.

One spawned process builds a learner per scenario: ETR's update differs from clip-higher's once a bound binds and
equals it with one optimizer step per batch; 2 mini-batches x 2 epochs equal a plain-torch sequence of AdamW
steps; a policy loss from a plugin module trains a step; each trust-region baseline trains a step.
"""

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from etr_dist.algos import logprobs_from_logits
from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import build_train_batch, shard_batch, split_mini_batches
from etr_dist.learner.objective import Objective, response_logits_and_labels

from .helpers import random_groups
from .ranks import scenarios_script, spawned

pytestmark = pytest.mark.slow
TEMPERATURE = 1.0
PLUGIN_SOURCE = '''"""A policy loss defined outside etr_dist, registered when the plugin module is imported."""
from etr_dist.algos import register_policy_loss
from etr_dist.algos.surrogate import clipped_surrogate, finish_policy_loss


@register_policy_loss("plain_pg_plugin")
def plain_pg(inputs, algorithm):
    """-r A without any clip."""
    ratio = inputs.log_ratio().exp()
    surrogate = clipped_surrogate(ratio, inputs.advantages[:, None], 1.0, 1e9, None)
    return finish_policy_loss(inputs, algorithm, surrogate.loss, surrogate)


@register_policy_loss("nan_plugin")
def nan_loss(inputs, algorithm):
    """A loss whose gradient is NaN: the engine must skip the update, visibly."""
    loss, metrics = plain_pg(inputs, algorithm)
    return loss * float("nan"), metrics
'''


def scenario(
    name: str, mini_batches: int, epochs: int, lr: float, plugins: tuple[str, ...] = ()
) -> RootConfig:
    cfg = OmegaConf.structured(RootConfig)
    cfg.algorithm.name = name
    cfg.learner.merge_with(
        {
            "num_ranks": 1,
            "micro_batch_size": 4,
            "lr": lr,
            "ppo_mini_batches": mini_batches,
            "ppo_epochs": epochs,
        }
    )
    cfg.plugins = list(plugins)
    cfg.rollout.temperature = TEMPERATURE
    return OmegaConf.to_object(cfg)


BASELINES = ("cispo", "sapo", "dppo_tv", "bandpo")
SCENARIOS = {
    "etr_2x2": scenario("etr", 2, 2, 1e-3),
    "etr_bind": scenario("etr", 2, 1, 5e-2),
    "clip_higher_bind": scenario("clip_higher", 2, 1, 5e-2),
    "etr_one": scenario("etr", 1, 1, 5e-2),
    "clip_higher_one": scenario("clip_higher", 1, 1, 5e-2),
    "plugin": scenario("plain_pg_plugin", 2, 1, 1e-3, plugins=("etr_test_plugin_loss",)),
    "nan": scenario("nan_plugin", 2, 1, 1e-3, plugins=("etr_test_plugin_loss",)),
    **{name: scenario(name, 2, 1, 1e-3) for name in BASELINES},
}


@pytest.fixture(scope="module")
def batch():
    """16 rows in 4 groups; the bounds are ETR's (a static loss ignores them)."""
    return build_train_batch(random_groups(4, 4, 1024, seed=5), 0, RootConfig().algorithm)


@pytest.fixture(scope="module")
def results(tiny_model_path, batch, tmp_path_factory):
    out = tmp_path_factory.mktemp("scenarios")
    (out / "etr_test_plugin_loss.py").write_text(PLUGIN_SOURCE)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).parents[1]))  # the child unpickles `spawned` by module name
        patch.syspath_prepend(str(out))  # and imports the plugin: spawn passes sys.path on
        jobs = [(scenarios_script, str(out / "store"), str(tiny_model_path), SCENARIOS, batch, out)]
        mp.spawn(spawned, args=(jobs,), nprocs=1, join=True)
    return torch.load(out / "scenarios.pt", weights_only=False)


def max_difference(a: dict, b: dict) -> float:
    return max((a[name] - b[name]).abs().max().item() for name in a)


def test_a_bound_binds_and_etr_then_moves_the_weights_differently_from_clip_higher(results):
    for name in ("etr_bind", "clip_higher_bind"):
        assert results[name]["metrics"]["actor/pg_clipfrac"] > 0
        assert results[name]["metrics"]["actor/optimizer_steps"] == 2
    assert max_difference(results["etr_bind"]["after"], results["clip_higher_bind"]["after"]) > 1e-6


def test_with_one_optimizer_step_etr_equals_clip_higher(results):
    etr, clip_higher = results["etr_one"], results["clip_higher_one"]
    assert etr["metrics"]["actor/pg_clipfrac"] == clip_higher["metrics"]["actor/pg_clipfrac"] == 0.0
    assert max_difference(etr["after"], clip_higher["after"]) == 0.0
    assert max_difference(etr["after"], etr["initial"]) > 1e-4


def test_two_mini_batches_two_epochs_equal_plain_torch_adamw_steps(results, batch, tiny_model_path):
    cfg = SCENARIOS["etr_2x2"]
    learner = cfg.learner
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=learner.lr, betas=tuple(learner.betas), weight_decay=learner.weight_decay
    )
    objective = Objective(cfg.algorithm)
    minis = split_mini_batches(shard_batch(batch, 1, learner.ppo_mini_batches, seed=learner.seed)[0])

    def log_probs(mini):
        logits = model(input_ids=mini.input_ids, attention_mask=mini.attention_mask, use_cache=False).logits
        response_logits, labels = response_logits_and_labels(
            logits, mini.input_ids, mini.prompt_lens, mini.response_mask.shape[1]
        )
        return logprobs_from_logits(response_logits, labels, learner.logprob_chunk_size, TEMPERATURE)

    with torch.no_grad():
        fixed = [log_probs(mini) for mini, _ in minis]  # old log-probs: the weights before the step
    for _ in range(learner.ppo_epochs):
        for (mini, info), old in zip(minis, fixed, strict=True):
            loss, _ = objective(mini, info.loss_norm, log_probs(mini), old)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), learner.grad_clip)
            optimizer.step()
    expected = {name: p.detach() for name, p in model.named_parameters()}
    got = results["etr_2x2"]
    assert got["metrics"]["actor/optimizer_steps"] == 4
    steps = learner.ppo_mini_batches * learner.ppo_epochs
    assert max_difference(got["after"], expected) < learner.lr * steps * 0.01
    assert max_difference(got["after"], got["initial"]) > learner.lr  # the steps did move the weights


def test_a_plugin_loss_trains_a_step(results):
    plugin = results["plugin"]
    assert plugin["metrics"]["actor/pg_clipfrac"] == 0.0  # it never clips
    assert max_difference(plugin["after"], plugin["initial"]) > 1e-4


@pytest.mark.parametrize("name", BASELINES)
def test_each_trust_region_baseline_trains_a_step(results, name):
    metrics = results[name]["metrics"]
    assert metrics["actor/optimizer_steps"] == 2
    assert all(math.isfinite(value) for value in metrics.values())
    # synthetic engine log-probs: the learner's differ, so the default TIS weights are not all 1
    assert metrics["rollout_corr/log_ratio_abs_mean"] > 0.1
    assert max_difference(results[name]["after"], results[name]["initial"]) > 1e-4


def test_a_non_finite_gradient_skips_the_update_visibly(results):
    nan = results["nan"]
    assert nan["metrics"]["actor/skipped_steps"] == nan["metrics"]["actor/optimizer_steps"] == 2
    assert max_difference(nan["after"], nan["initial"]) == 0.0
    assert results["plugin"]["metrics"]["actor/skipped_steps"] == 0
