"""Faults injected at named places (etr_dist.faults) into a real run: Ray, rollout workers, the grader, DeepSpeed.

The module's Ray cluster reads its fault spec from one file (ETR_DIST_FAULT_FILE), which each test arms before
it builds its run: the actor that reaches the named point first acts (SIGKILL, hang, NaN) once.
"""

import json
import os
import tempfile
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from etr_dist.config import compose_config
from etr_dist.data.loading import encode_prompts, load_prompts
from etr_dist.data.stream import PromptStream
from etr_dist.driver.checkpoint import CheckpointManager
from etr_dist.faults import FAULT_FILE_ENV
from etr_dist.models import resolve_model_path
from etr_dist.remote_calls import RemoteCallError

pytestmark = pytest.mark.slow

FAULT_FILE = Path(tempfile.gettempdir()) / f"etr_dist_faults_{os.getpid()}"
RAY_ENV_VARS = {FAULT_FILE_ENV: str(FAULT_FILE)}
PROMPTS_PER_STEP, STEPS = 4, 4


@pytest.fixture
def fault(local_ray):
    """Arm one fault spec for the test's run; disarmed (and its fired marker removed) afterwards."""
    marker = Path(f"{FAULT_FILE}.fired")

    def arm(spec: str) -> Path:
        FAULT_FILE.write_text(spec)
        return marker

    yield arm
    FAULT_FILE.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)


def config(tmp_path: Path, *extra: str):
    return compose_config(
        [
            "learner.num_ranks=1",
            "learner.ppo_mini_batches=2",
            "learner.micro_batch_size=4",
            "rollout.num_workers=2",
            "rollout.num_cpus_per_worker=1",
            "rollout.group_size=4",
            "rollout.max_new_tokens=8",
            "rollout.prompts_per_request=1",
            f"trainer.prompts_per_step={PROMPTS_PER_STEP}",
            f"trainer.total_steps={STEPS}",
            "trainer.max_staleness=1",
            "trainer.dynamic_sampling=false",
            f"trainer.run_dir={tmp_path / 'run'}",
            f"model.cache_dir={tmp_path.parent / 'model-cache'}",
            "reward.num_workers=1",
            "logging.progress_bar=false",
            "logging.samples_per_step=64",
            *extra,
        ]
    )


def train(cfg) -> Path:
    from etr_dist.driver.cluster import build_cluster
    from etr_dist.driver.run_dir import prepare_run_dir
    from etr_dist.driver.trainer import Trainer

    run_dir = prepare_run_dir(cfg)
    cluster = build_cluster(cfg)
    try:
        Trainer(cfg, run_dir, cluster).fit()
    finally:
        cluster.shutdown()
    return run_dir


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_every_step_once_with_the_streams_prompts(cfg, run_dir: Path) -> list[dict]:
    """Each step trained once, on PROMPTS_PER_STEP whole groups, whose prompts are the stream's next ones: a
    re-sent request neither lost a group nor drew or counted one twice."""
    rows = read_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    train_prompts, _ = load_prompts(cfg.data)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(cfg.model))
    stream = PromptStream(encode_prompts(train_prompts, tokenizer, cfg.data), seed=cfg.trainer.seed)
    for step in range(1, STEPS + 1):
        groups = [
            json.loads(line) for line in (run_dir / "samples" / f"step_{step}.jsonl").read_text().splitlines()
        ]
        assert sorted(g["prompt_id"] for g in groups) == sorted(p.id for p in stream.next(PROMPTS_PER_STEP))
        assert all(len(g["rewards"]) == cfg.rollout.group_size for g in groups)
    return rows


def test_a_rollout_worker_killed_mid_step_is_restarted_and_its_request_sent_again(fault, tmp_path):
    marker = fault("rollout_generate:3:kill")
    cfg = config(tmp_path)
    rows = assert_every_step_once_with_the_streams_prompts(cfg, train(cfg))
    assert marker.is_file()  # the fault fired
    last = rows[-1]
    assert last["fault/actor_restarts"] >= 1 and last["fault/redispatched_requests"] >= 1


def test_the_grader_killed_mid_step_is_restarted_and_its_batch_graded_again(fault, tmp_path):
    marker = fault("grader_grade:3:kill")
    cfg = config(tmp_path)
    rows = assert_every_step_once_with_the_streams_prompts(cfg, train(cfg))
    assert marker.is_file()
    assert rows[-1]["fault/actor_restarts"] >= 1 and rows[-1]["fault/redispatched_requests"] >= 1


def test_a_generate_that_hangs_past_its_deadline_is_restarted_and_sent_again(fault, tmp_path):
    marker = fault("rollout_generate:2:hang")
    cfg = config(tmp_path, "cluster.timeouts.generate_s=20")
    rows = assert_every_step_once_with_the_streams_prompts(cfg, train(cfg))
    assert marker.is_file()
    assert rows[-1]["fault/timeouts"] >= 1 and rows[-1]["fault/redispatched_requests"] >= 1


def test_a_nan_loss_on_one_rank_skips_that_update_on_every_rank_and_the_run_goes_on(fault, tmp_path):
    marker = fault("learner_train_rank1:2:nan")
    cfg = config(tmp_path, "learner.num_ranks=2", "learner.num_cpus_per_rank=1")
    rows = assert_every_step_once_with_the_streams_prompts(cfg, train(cfg))
    assert marker.is_file()
    assert [row["actor/skipped_steps"] > 0 for row in rows] == [False, True, False, False]


def test_a_dead_learner_rank_ends_the_run_naming_it_and_the_last_checkpoint_stays_whole(fault, tmp_path):
    fault("learner_train_rank1:2:kill")
    cfg = config(
        tmp_path,
        "learner.num_ranks=2",
        "learner.num_cpus_per_rank=1",
        "trainer.save_every=1",
        "trainer.max_staleness=0",
    )
    with pytest.raises(RemoteCallError, match="learner rank 1 died"):
        train(cfg)
    checkpoints = CheckpointManager(tmp_path / "run" / "checkpoints")
    latest = checkpoints.latest()
    assert latest is not None and latest.name == "step_1"
    assert CheckpointManager.driver_state(latest)["step"] == 1
    assert any((latest / "learner").rglob("*.pt"))
