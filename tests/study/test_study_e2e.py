"""A whole study for real: 2 arms x 2 seeds x 2 steps of the tiny model, each an ordinary training subprocess;
the report with its PNGs; a rerun skips every finished run."""

import shutil
import tempfile
from pathlib import Path

import pytest

from etr_dist.cli import main

pytestmark = pytest.mark.slow

SUPPORT = (
    Path(__file__).resolve().parents[1] / "driver" / "e2e_support"
)  # hashed_reward: groups with variance

STUDY = """
name: tiny
baseline: grpo
primary_metric: eval/arithmetic/pass@1
seeds: [0, 1]
eval_sets: [arith_4op]
overrides:
  - model=tiny
  - model.cache_dir={cache}
  - data.train_size=40
  - data.eval_size=6
  - rollout.group_size=4
  - rollout.max_new_tokens=8
  - rollout.prompts_per_request=2
  - learner.num_ranks=1
  - learner.micro_batch_size=8
  - learner.ppo_mini_batches=2
  - learner.lr=1e-3
  - trainer.total_steps=2
  - trainer.prompts_per_step=2
  - trainer.eval_every=1
  - trainer.eval_samples=2
  - trainer.eval_temperature=1.0
  - trainer.save_every=0
  - reward.fn=e2e_rewards:hashed_reward
  - reward.num_workers=1
  - cluster.num_cpus=4
arms:
  grpo: [algorithm=grpo, algorithm.loss_agg_mode=token-mean]
  etr: [algorithm=etr]
"""


@pytest.fixture
def private_ray_dir(monkeypatch):
    """Each run starts its own local Ray cluster: a private temp dir keeps it from joining a `ray start` cluster
    someone else runs on this machine (short: Ray's socket paths must fit in 107 characters)."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_tiny_study_trains_reports_and_resumes(tmp_path, monkeypatch, capsys, private_ray_dir):
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))  # the training subprocesses and their Ray workers
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    config = tmp_path / "tiny.yaml"
    config.write_text(STUDY.format(cache=tmp_path / "model-cache"))
    out = tmp_path / "study"
    assert main(["study", str(config), "--out", str(out)]) == 0
    runs = ["grpo_s0", "etr_s0", "grpo_s1", "etr_s1"]
    assert all((out / "runs" / f"{run}.done").is_file() for run in runs)
    # the first arm of a seed evaluates at step 0 for every arm; every run writes per-item rows at steps 1, 2
    assert (out / "runs" / "grpo_s0" / "eval" / "step_0" / "arith_4op.jsonl").is_file()
    assert not (out / "runs" / "etr_s0" / "eval" / "step_0").exists()
    assert (
        len((out / "runs" / "etr_s1" / "eval" / "step_2" / "arith_4op.jsonl").read_text().splitlines()) == 24
    )
    report = (out / "report.md").read_text()
    pngs = ["eval_arithmetic.png", "eval_arith_4op.png", "dynamics.png", "etr_bounds.png"]
    for png in [*pngs, "etr_bounds_by_pass_rate.png"]:
        assert (out / png).stat().st_size > 5000 and f"]({png})" in report
    assert "**`eval/arithmetic/pass@1`**" in report and "| etr | 2 |" in report
    assert "paired bootstrap" in report and "| torch threads |" in report
    assert report.count("| finished |") == 4 and f"--out {out}" in report

    capsys.readouterr()
    assert main(["study", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished, skipped") == 4 and "training in" not in printed
