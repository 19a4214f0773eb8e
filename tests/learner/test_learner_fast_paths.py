"""The learner's fast paths (response-only logits, old log-probs from the first forward, micro-batches by length,
zero-advantage rows left out, fused AdamW, the shared-prefix forward) train the real DeepSpeed rank to the plain
path's weights: 3 steps, allclose in fp32, with gradient checkpointing off and on.
"""

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from etr_dist.config.schema import LEARNER_FAST_PATHS as FAST_PATHS
from etr_dist.config.schema import RootConfig
from etr_dist.learner.batch import build_train_batch

from .helpers import make_group, random_groups
from .ranks import scenarios_script, spawned

pytestmark = pytest.mark.slow
STEPS = 3


def scenario(fast: bool, **overrides: bool) -> RootConfig:
    cfg = OmegaConf.structured(RootConfig)
    cfg.learner.merge_with(
        {"num_ranks": 1, "micro_batch_size": 3, "lr": 1e-3, "ppo_mini_batches": 2, "ppo_epochs": 2}
    )
    cfg.learner.merge_with({**dict.fromkeys(FAST_PATHS, fast), **overrides})
    return OmegaConf.to_object(cfg)


SCENARIOS = {
    "plain": scenario(False),
    "fast": scenario(True),
    "fast_all_rows": scenario(True, skip_zero_advantage=False),
    "fast_checkpointed": scenario(True, gradient_checkpointing=True),
}


@pytest.fixture(scope="module")
def results(tiny_model_path, tmp_path_factory):
    """20 rows in 5 groups of varied lengths; one group is all-equal (A = 0 on its 4 rows)."""
    groups = random_groups(4, 4, 1024, seed=11, max_prompt=12, max_response=14)
    groups.append(make_group("flat", [7, 8, 9], [[10, 11], [12], [13, 14, 15], [16]], [1.0] * 4))
    batch = build_train_batch(groups, 0, RootConfig().algorithm)
    out = tmp_path_factory.mktemp("fast_paths")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(Path(__file__).parents[1]))  # the child unpickles `spawned` by module name
        jobs = [(scenarios_script, str(out / "store"), str(tiny_model_path), SCENARIOS, batch, out, STEPS)]
        mp.spawn(spawned, args=(jobs,), nprocs=1, join=True)
    return torch.load(out / "scenarios.pt", weights_only=False)


def test_the_fast_paths_reach_the_plain_path_s_weights_after_three_steps(results):
    plain = results["plain"]
    moved = max((plain["after"][n] - plain["initial"][n]).abs().max().item() for n in plain["after"])
    assert moved > 1e-3  # 3 steps x 4 updates at lr 1e-3 did move the weights
    # Adam moves a weight by about lr per update whatever its gradient's size, so float rounding in the
    # gradients (other matmul shapes, the packed attention) reaches the weights as up to ~1e-6 absolute:
    # atol is 1/500 of one update at lr 1e-3, where a wrong gradient would move weights by ~lr
    for name in ("fast", "fast_all_rows", "fast_checkpointed"):
        for param, expected in plain["after"].items():
            torch.testing.assert_close(
                results[name]["after"][param], expected, rtol=1e-4, atol=2e-6, msg=param
            )


def test_the_fast_paths_keep_the_metrics(results):
    plain, fast, all_rows = (
        results["plain"]["metrics"],
        results["fast"]["metrics"],
        results["fast_all_rows"]["metrics"],
    )
    assert set(all_rows) == set(plain) and all(math.isfinite(v) for v in plain.values())
    for name, value in plain.items():
        assert all_rows[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    # leaving out the A = 0 rows: the loss and its gradient stay; token means cover the rows trained
    for name in ("actor/pg_loss", "actor/grad_norm", "actor/optimizer_steps"):
        assert fast[name] == pytest.approx(plain[name], rel=1e-4, abs=1e-6), name
