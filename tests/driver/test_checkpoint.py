import json

import pytest

from etr_dist.driver.checkpoint import CheckpointManager


def test_commit_moves_latest_and_keeps_last_k(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    assert manager.latest() is None
    for step in (2, 4, 6):
        manager.step_dir(step).mkdir(parents=True)
        (manager.step_dir(step) / "learner.bin").write_text("weights")
        manager.commit(step, {"step": step, "stream": {"epoch": 0, "position": step}})
    assert manager.latest() == tmp_path / "step_6"
    assert (tmp_path / "latest").read_text() == "step_6"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_4", "step_6"]
    assert CheckpointManager.driver_state(manager.latest())["stream"] == {"epoch": 0, "position": 6}
    assert not list(tmp_path.glob(".*.tmp"))


def test_uncommitted_folder_is_never_latest_nor_pruned_away(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=1)
    manager.commit(1, {"step": 1})
    (tmp_path / "step_2").mkdir()  # a crash mid-save leaves a folder without driver state
    assert manager.latest() == tmp_path / "step_1"


def test_dangling_pointer_names_the_problem(tmp_path):
    (tmp_path / "latest").write_text("step_9")
    with pytest.raises(FileNotFoundError, match="names .*step_9, which has no driver_state.json"):
        CheckpointManager(tmp_path).latest()


def test_driver_state_is_plain_json(tmp_path):
    CheckpointManager(tmp_path).commit(3, {"step": 3})
    assert json.loads((tmp_path / "step_3" / "driver_state.json").read_text()) == {"step": 3}
