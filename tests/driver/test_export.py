import pytest

from etr_dist.cli import main
from etr_dist.driver.checkpoint import find_checkpoint


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no checkpoint under" in capsys.readouterr().err


def test_find_checkpoint_accepts_run_checkpoints_or_step_folder(tmp_path):
    from etr_dist.driver.checkpoint import CheckpointManager

    run = tmp_path / "run"
    CheckpointManager(run / "checkpoints").commit(4, {"step": 4})
    step_dir = run / "checkpoints" / "step_4"
    assert find_checkpoint(run) == (run.resolve(), step_dir.resolve())
    assert find_checkpoint(run / "checkpoints") == (run.resolve(), step_dir.resolve())
    assert find_checkpoint(step_dir) == (run.resolve(), step_dir.resolve())


def test_resume_from_a_checkpoint_path_reuses_its_run_folder(tmp_path):
    from etr_dist.config import ConfigError, compose_config
    from etr_dist.driver.checkpoint import CheckpointManager
    from etr_dist.driver.run_dir import prepare_run_dir

    run = tmp_path / "run"
    CheckpointManager(run / "checkpoints").commit(2, {"step": 2})
    cfg = compose_config(
        [f"trainer.resume={run / 'checkpoints' / 'step_2'}", f"trainer.output_dir={tmp_path}"]
    )
    assert prepare_run_dir(cfg) == run.resolve()
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        prepare_run_dir(compose_config([f"trainer.resume={empty}"]))
    with pytest.raises(
        ConfigError, match="trainer.resume=.*nowhere.* is neither never, auto nor an existing"
    ):
        compose_config([f"trainer.resume={tmp_path / 'nowhere'}"])


@pytest.mark.parametrize(
    ("save_every", "message"),
    [
        (0, "has no checkpoint to export: it was trained with trainer.save_every=0, which saves none"),
        (20, "has no checkpoint yet: it saves one every trainer.save_every=20 steps and at its end"),
    ],
)
def test_exporting_a_run_without_checkpoints_says_why(tmp_path, capsys, save_every, message):
    from etr_dist.config import compose_config
    from etr_dist.driver.run_dir import prepare_run_dir

    run = prepare_run_dir(
        compose_config([f"trainer.run_dir={tmp_path / 'run'}", f"trainer.save_every={save_every}"])
    )
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert f"etr-dist export: {run} {message}" in capsys.readouterr().err
