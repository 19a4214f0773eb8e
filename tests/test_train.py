"""The job as users run it: `python -m etr_dist.train`, `ray job submit`, a real kill and `trainer.resume=auto`."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from etr_dist.faults import FAULT_FILE_ENV

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "etr_dist.train", *overrides]


def tiny_job(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [
        f"trainer.run_dir={run_dir}",
        f"model.cache_dir={cache}",
        "learner.num_ranks=1",
        "rollout.group_size=4",
        "rollout.max_new_tokens=8",
        "trainer.prompts_per_step=4",
        "reward.num_workers=1",
        "logging.progress_bar=false",
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_config_typo_fails_naming_the_key():
    result = subprocess.run(
        train_command("algorithm.etr.lamda_micro=0.3"), capture_output=True, text=True, env=ENV, cwd=REPO
    )
    assert result.returncode == 2
    assert "unknown config key 'algorithm.etr.lamda_micro'" in result.stderr
    assert "did you mean 'algorithm.etr.lambda_micro'" in result.stderr


def test_bad_reward_function_fails_at_start():
    result = subprocess.run(
        train_command("reward.fn=no_such_module:fn"), capture_output=True, text=True, env=ENV, cwd=REPO
    )
    assert result.returncode == 2
    assert "reward.fn='no_such_module:fn': cannot import module 'no_such_module'" in result.stderr


@pytest.fixture
def ray_head():
    """A real `ray start` head through launch/local_cluster.sh, on ports no other test uses."""
    temp_dir = tempfile.mkdtemp(prefix="etr-ray-", dir="/tmp")  # Ray's socket paths must stay < 108 bytes
    env = {
        **ENV,
        "RAY_TEMP_DIR": temp_dir,
        "RAY_HEAD_PORT": "6391",
        "RAY_DASHBOARD_PORT": "8291",
        "NUM_CPUS": "8",
        "PATH": f"{Path(sys.executable).parent}:{ENV['PATH']}",
    }
    subprocess.run(["bash", "launch/local_cluster.sh", "start"], check=True, env=env, cwd=REPO)
    yield env, "http://127.0.0.1:8291"
    subprocess.run(["bash", "launch/local_cluster.sh", "stop"], check=True, env=env, cwd=REPO)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_job_submit_runs_two_steps_and_writes_the_run_folder(ray_head, tmp_path):
    env, address = ray_head
    run_dir = tmp_path / "run"
    overrides = tiny_job(run_dir, tmp_path / "cache", "trainer.total_steps=2", "trainer.save_every=2")
    submit = ["bash", "launch/submit.sh", "--address", address, "--", *overrides]
    result = subprocess.run(submit, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job_id = re.search(r"raysubmit_\w+", result.stdout + result.stderr).group(0)
    from ray.job_submission import JobStatus, JobSubmissionClient

    assert JobSubmissionClient(address).get_job_status(job_id) == JobStatus.SUCCEEDED

    assert (run_dir / "config.yaml").is_file()
    assert [row["step"] for row in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2]
    assert (run_dir / "checkpoints" / "latest").read_text() == "step_2"
    assert (run_dir / "samples" / "step_2.jsonl").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "actor/pg_loss", "actor/pg_clipfrac", "actor/pg_clipfrac_upper", "actor/pg_clipfrac_lower",
        "actor/pg_clipfrac_dual", "actor/ppo_kl", "actor/entropy", "actor/ppo_mini_batches",
        "etr/eps_high_mean", "etr/eps_high_p10", "etr/eps_high_p90", "etr/eps_low_mean", "etr/eps_low_p10",
        "etr/eps_low_p90", "etr/eps_high_active_mean", "etr/eps_low_active_mean", "etr/phi_mean",
        "etr/psi_mean", "etr/W_high", "etr/W_low", "etr/clamped_frac",
        "critic/score/mean", "reward/accuracy", "response_length/mean", "response_length/max",
        "response_length/clip_ratio", "sampling/filtered_groups", "sampling/refill_prompts",
        "sampling/staleness_mean", "timing_s/gen", "timing_s/grade", "timing_s/learn", "timing_s/sync",
        "timing_s/step", "perf/tokens_per_s", "perf/samples_per_s", "perf/weight_sync_gbps",
    }  # fmt: skip
    assert expected <= scalars, expected - scalars
    assert "reward/pass_rate_hist" in events.Tags()["histograms"]
    assert [e.step for e in events.Scalars("actor/pg_loss")] == [1, 2]


def run_until_fault(command: list[str], spec: str, fault_file: Path, timeout_s: float = 300) -> None:
    """Start the job, which blocks at the injection point `spec` names (etr_dist.faults), then SIGKILL its whole
    process group there."""
    fault_file.write_text(spec)
    fired = Path(f"{fault_file}.fired")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**ENV, FAULT_FILE_ENV: str(fault_file)},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout_s
    try:
        while not fired.is_file():
            assert process.poll() is None, f"the job exited ({process.returncode}) before {spec}"
            assert time.time() < deadline, f"{spec} not reached within {timeout_s} s"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group may have exited on its own meanwhile
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def prompt_ids_per_step(run_dir: Path, steps: range) -> dict[int, list[str]]:
    return {s: [g["prompt_id"] for g in read_jsonl(run_dir / "samples" / f"step_{s}.jsonl")] for s in steps}


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        ("trainer.dynamic_sampling=false",),
        # ahead by 2 policy versions, with refills: the producer has drawn prompts of later steps at each kill
        ("trainer.max_staleness=2", "trainer.max_refill_rounds=2", "learner.ppo_mini_batches=2"),
    ],
    ids=["on_policy", "staleness_2_dynamic_sampling"],
)
def test_killed_run_resumes_with_the_prompts_an_uninterrupted_run_draws(tmp_path, mode):
    # 6 training prompts, 4 per step: step 1 ends mid-epoch, step 3 exactly at the end of epoch 1.
    common = [
        "data.train_size=6",
        "trainer.save_every=1",
        "trainer.keep_last=4",
        "logging.samples_per_step=64",
        *mode,
    ]
    cache = tmp_path / "cache"
    straight = tmp_path / "straight"
    subprocess.run(
        train_command(*tiny_job(straight, cache, *common, "trainer.total_steps=4")),
        check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip

    resumed = tmp_path / "resumed"
    job = train_command(*tiny_job(resumed, cache, *common, "trainer.total_steps=4", "trainer.resume=auto"))
    run_until_fault(job, "after_save:1", tmp_path / "kill_1")  # killed mid-epoch
    # resumed at step 2, killed at the epoch boundary: on-policy while step 3's checkpoint is being written (its
    # learner files staged, `latest` not moved yet), so the run resumes from step 2; else right after it
    last = "before_commit:3" if "trainer.dynamic_sampling=false" in mode else "after_save:3"
    run_until_fault(job, last, tmp_path / "kill_3")
    subprocess.run(job, check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, timeout=600)

    if "trainer.dynamic_sampling=false" in mode:  # refills would move the stream further
        states = [
            json.loads((resumed / "checkpoints" / f"step_{s}" / "driver_state.json").read_text())
            for s in (1, 3)
        ]
        # the stream rolls over lazily: after 12 draws of 6 prompts it stands at the end of epoch 1
        assert [(s["stream"]["epoch"], s["stream"]["position"]) for s in states] == [(0, 4), (1, 6)]
    assert prompt_ids_per_step(resumed, range(1, 5)) == prompt_ids_per_step(straight, range(1, 5))
    steps = [row["step"] for row in read_jsonl(resumed / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]  # each step logged once, however often the run was killed
    if "trainer.dynamic_sampling=false" in mode:  # on-policy: the same weights generate the same samples
        straight_rows = {r["step"]: r for r in read_jsonl(straight / "metrics.jsonl")}
        resumed_rows = {r["step"]: r for r in read_jsonl(resumed / "metrics.jsonl")}
        for name in ("critic/score/mean", "actor/entropy", "actor/pg_loss"):
            assert resumed_rows[4][name] == pytest.approx(straight_rows[4][name], rel=1e-4, abs=1e-6), name
