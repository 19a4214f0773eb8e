"""A new run never reuses another's folder, a resume is checked against its checkpoint before anything starts,
and the metrics log holds each step once."""

import json

import pytest
from omegaconf import OmegaConf

from etr_dist.config import compose_config
from etr_dist.driver.checkpoint import CheckpointManager
from etr_dist.driver.metrics import MetricsLogger, SkippedUpdateGuard
from etr_dist.driver.run_dir import prepare_run_dir


def test_a_reused_run_dir_is_refused_unless_resumed(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config([f"trainer.run_dir={run}"])
    assert prepare_run_dir(cfg) == run  # empty: fine
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(FileExistsError, match="already holds a run: continue it with trainer.resume=auto"):
        prepare_run_dir(cfg)


def test_resume_auto_without_a_checkpoint_says_so(tmp_path, capsys):
    cfg = compose_config([f"trainer.output_dir={tmp_path}", "trainer.resume=auto"])
    run = prepare_run_dir(cfg)
    assert "trainer.resume=auto found no checkpoint under" in capsys.readouterr().out
    assert run.parent == tmp_path / cfg.trainer.experiment


def test_a_resume_that_changes_a_fixed_key_is_refused_naming_it(tmp_path):
    run = tmp_path / "run"
    saved = compose_config([f"trainer.run_dir={run}", "learner.num_ranks=2"])
    state = {"step": 2, "config": OmegaConf.to_container(saved, resolve=True)}
    CheckpointManager(run / "checkpoints").commit(2, state)
    same = compose_config([f"trainer.run_dir={run}", "trainer.resume=auto", "trainer.total_steps=20"])
    assert prepare_run_dir(same) == run
    changed = compose_config([f"trainer.run_dir={run}", "trainer.resume=auto", "learner.num_ranks=1"])
    with pytest.raises(
        ValueError, match="config key 'learner.num_ranks' was 2 when the checkpoint was saved"
    ):
        prepare_run_dir(changed)


def test_metrics_of_steps_after_the_resume_point_are_dropped(tmp_path):
    rows = [{"step": s, "x": float(s)} for s in (0, 1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    logger = MetricsLogger(tmp_path, tensorboard=False, progress_bar=False, start_step=2)
    logger.log(3, {"x": 30.0})
    logger.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


def test_non_finite_metrics_are_counted_and_named_not_dropped_silently(tmp_path, capsys):
    logger = MetricsLogger(tmp_path, tensorboard=False, progress_bar=False)
    logger.log(1, {"actor/grad_norm": float("nan"), "actor/pg_loss": 0.5, "actor/kl": float("inf")})
    logger.close()
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["health/nonfinite_metrics"] == 2.0 and row["nonfinite"] == ["actor/grad_norm", "actor/kl"]
    assert row["actor/pg_loss"] == 0.5
    assert "non-finite metrics ['actor/grad_norm', 'actor/kl']" in capsys.readouterr().err


def test_consecutive_fully_skipped_steps_end_the_run():
    guard = SkippedUpdateGuard(limit=2)
    guard.observe(1, {"actor/skipped_steps": 4.0, "actor/optimizer_steps": 4.0})
    guard.observe(
        2, {"actor/skipped_steps": 1.0, "actor/optimizer_steps": 4.0}
    )  # some updates applied: reset
    guard.observe(3, {"actor/skipped_steps": 4.0, "actor/optimizer_steps": 4.0})
    with pytest.raises(RuntimeError, match="step 4: every optimizer update of the last 2 steps was skipped"):
        guard.observe(4, {"actor/skipped_steps": 4.0, "actor/optimizer_steps": 4.0})
