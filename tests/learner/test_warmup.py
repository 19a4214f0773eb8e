"""learner.warmup_steps: a real DeepSpeed rank's lr rises linearly over the first optimizer updates."""

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import build_train_batch

from .helpers import random_groups
from .ranks import scenarios_script, spawned

pytestmark = pytest.mark.slow
LR, STEPS, MINI_BATCHES = 1e-3, 2, 2  # 2 steps x 2 mini-batches: 4 optimizer updates


def scenario(warmup_steps: int) -> RootConfig:
    cfg = OmegaConf.structured(RootConfig)
    cfg.learner.merge_with(
        {
            "num_ranks": 1,
            "lr": LR,
            "warmup_steps": warmup_steps,
            "ppo_mini_batches": MINI_BATCHES,
            "micro_batch_size": 8,
        }
    )
    return OmegaConf.to_object(cfg)


SCENARIOS = {"none": scenario(0), "one": scenario(1), "eight": scenario(8)}


@pytest.fixture(scope="module")
def results(tiny_model_path, tmp_path_factory):
    batch = build_train_batch(random_groups(4, 4, 1024, seed=5), 0, RootConfig().algorithm)
    out = tmp_path_factory.mktemp("warmup")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).parents[1]))  # the child unpickles `spawned` by module name
        jobs = [(scenarios_script, str(out / "store"), str(tiny_model_path), SCENARIOS, batch, out, STEPS)]
        mp.spawn(spawned, args=(jobs,), nprocs=1, join=True)
    return torch.load(out / "scenarios.pt", weights_only=False)


def test_the_lr_rises_linearly_over_the_warmup_updates(results):
    # update u (from 1) uses lr * min(1, u / warmup_steps): the 4th update of 8 runs at half the lr
    assert results["eight"]["metrics"]["actor/lr"] == pytest.approx(LR * 4 / 8)
    assert results["none"]["metrics"]["actor/lr"] == pytest.approx(LR)
    assert results["none"]["metrics"]["actor/optimizer_steps"] == MINI_BATCHES  # per step


def test_a_one_update_warmup_trains_exactly_like_none_and_a_long_one_moves_less(results):
    none, one, eight = results["none"], results["one"], results["eight"]
    for name, expected in none["after"].items():
        torch.testing.assert_close(one["after"][name], expected, rtol=0, atol=0, msg=name)

    def moved(run: dict) -> float:
        return sum((run["after"][n] - run["initial"][n]).abs().sum().item() for n in run["after"])

    assert 0 < moved(eight) < 0.5 * moved(none)  # lrs 1/8..4/8 of LR against 4 x LR
