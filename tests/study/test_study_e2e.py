"""A whole study for real: 2 arms x 2 seeds x 2 steps of the tiny model, each an ordinary training subprocess;
the report with its PNGs; a rerun skips every finished run. And a smaller one as parallel Ray jobs on a real
`ray start` head (launch/local_cluster.sh)."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from etr_dist.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = "http://127.0.0.1:8295"
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


@pytest.fixture
def ray_head():
    """A real `ray start` head through launch/local_cluster.sh, on ports no other test uses."""
    temp_dir = tempfile.mkdtemp(prefix="etr-sj-", dir="/tmp")  # Ray's socket paths must stay < 108 bytes
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "RAY_TEMP_DIR": temp_dir,
        "RAY_HEAD_PORT": "6395",
        "RAY_DASHBOARD_PORT": "8295",
        "RAY_AGENT_PORT": "52395",
        "NUM_CPUS": "8",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the jobs' `python`: this venv's
    }
    subprocess.run(["bash", "launch/local_cluster.sh", "start"], check=True, env=env, cwd=REPO)
    yield
    subprocess.run(["bash", "launch/local_cluster.sh", "stop"], check=True, env=env, cwd=REPO)
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_tiny_study_as_parallel_ray_jobs_trains_reports_and_resumes(ray_head, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))  # forwarded to the jobs: the reward function's module
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    one_seed = STUDY.replace("seeds: [0, 1]", "seeds: [0]").replace("eval_sets: [arith_4op]", "eval_sets: []")
    config = tmp_path / "tiny.yaml"
    config.write_text(one_seed.format(cache=tmp_path / "model-cache"))
    out = tmp_path / "study"
    command = ["study", str(config), "trainer.total_steps=1", "--out", str(out), "--jobs", "2"]
    assert main([*command, "--address", DASHBOARD]) == 0
    printed = capsys.readouterr().out
    # both submitted before either finished
    assert printed.index("etr_s0: submitted as Ray job") < printed.index(": done in ")
    for run in ("grpo_s0", "etr_s0"):
        assert (out / "runs" / f"{run}.done").read_text().endswith(f"\n# Ray job {_job_id(out, run)}\n")
        log = (out / "logs" / f"{run}.log").read_text()
        assert "python -m etr_dist.train " in log and "step 1/1" in log
    # the first arm evaluates step 0 for both; each run evaluates its last step
    assert (out / "runs" / "grpo_s0" / "eval" / "step_0" / "arithmetic.jsonl").is_file()
    assert not (out / "runs" / "etr_s0" / "eval" / "step_0").exists()
    assert (out / "runs" / "etr_s0" / "eval" / "step_1" / "arithmetic.jsonl").is_file()
    report = (out / "report.md").read_text()
    for png in ("eval_arithmetic.png", "dynamics.png", "etr_bounds.png", "etr_bounds_by_pass_rate.png"):
        assert (out / png).stat().st_size > 5000 and f"]({png})" in report
    assert report.count("| finished | 1 |") == 2

    monkeypatch.setenv("RAY_ADDRESS", DASHBOARD)  # the default address with --jobs > 1
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished, skipped") == 2 and "submitted" not in printed


def _job_id(out: Path, run: str) -> str:
    return next(
        line.removeprefix("# Ray job ")
        for line in (out / "logs" / f"{run}.log").read_text().splitlines()
        if line.startswith("# Ray job ")
    )
