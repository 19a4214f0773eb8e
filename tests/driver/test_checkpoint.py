import json

import pytest

from etr_dist.driver.checkpoint import CheckpointManager, incompatible_resume


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


def test_a_step_is_staged_then_renamed_and_pruning_spares_later_steps(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=1)
    for step in (2, 4):
        (manager.staging_dir(step) / "learner.bin").write_text("weights")
        manager.commit(step, {"step": step})
    assert not list(tmp_path.glob(".step_*"))  # staging folders are renamed into place
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_4"]
    # a run resumed from an older checkpoint commits step 3: step 4 (after it) is not pruned
    (manager.staging_dir(3) / "learner.bin").write_text("weights")
    manager.commit(3, {"step": 3})
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_3", "step_4"]
    assert manager.latest() == tmp_path / "step_3"


def test_a_crash_mid_save_leaves_latest_on_the_last_complete_step(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.commit(1, {"step": 1})
    (manager.staging_dir(2) / "learner.bin").write_text("half")  # the learner wrote, commit never ran
    assert manager.latest() == tmp_path / "step_1"
    assert manager.staging_dir(2).is_dir() and not list(manager.staging_dir(2).iterdir())  # restaged clean


def test_incompatible_resume_names_the_first_changed_key():
    saved = {"learner": {"num_ranks": 2}, "model": {"source": "tiny"}}
    assert incompatible_resume(saved, saved) is None
    assert "'model.source' was 'tiny'" in incompatible_resume(saved, {**saved, "model": {"source": "hf"}})
    assert incompatible_resume("an old checkpoint's experiment name", saved) is None
