"""The pool's outer limits, with real processes: a whole call's deadline, a memory cap per worker, workers
that can no longer start, and a script that creates the pool without a `__main__` guard."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from etr_dist.reward import Grade, GraderPool

from .processes import is_gone

pytestmark = pytest.mark.slow


def _run_script(folder: Path, source: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `source` as the script folder/main.py, as a user would (`python main.py`)."""
    script = folder / "main.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_call_past_its_deadline_scores_its_unfinished_items_timeout_and_the_pool_goes_on(
    reward_fns_path, tmp_path
):
    pid_file = tmp_path / "worker.pid"
    scripted = reward_fns_path + "scripted"
    with GraderPool(1, timeout_s=60.0, reward_fn=scripted, batch_timeout_s=1.0) as pool:
        started = time.monotonic()
        grades = pool.grade_batch([("a", "a"), (f"pid:{pid_file}", ""), ("b", "b")])
        elapsed = time.monotonic() - started
        assert grades == [
            Grade(1.0, "custom_equal", "a"),
            Grade(0.0, "timeout", None),  # hung mid-item: its worker is killed
            Grade(0.0, "timeout", None),  # still queued: never sent
        ]
        assert pool.batch_timeout_s <= elapsed < pool.batch_timeout_s + 1.0
        hung_worker = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while not is_gone(hung_worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert is_gone(hung_worker)
        assert pool.grade_batch([("c", "c"), ("d", "e")]) == [
            Grade(1.0, "custom_equal", "c"),
            Grade(0.0, "custom_equal", "d"),
        ]
        metrics = pool.metrics()
        assert metrics["reward/grader_batch_timeouts"] == 1.0
        assert metrics["reward/grader_timeouts"] == 2.0
        assert metrics["reward/grader_items"] == 5.0
        assert metrics["reward/grader_worker_restarts"] == 1.0


def test_an_item_allocating_past_the_memory_cap_scores_reward_error_and_the_worker_goes_on(reward_fns_path):
    scripted = reward_fns_path + "scripted"
    with GraderPool(1, timeout_s=30.0, reward_fn=scripted, worker_memory_mb=256) as pool:
        grades = pool.grade_batch([("alloc:4", "x"), ("alloc:0.1", "x"), ("a", "a")])
        assert grades == [
            Grade(0.0, "reward_error", None),  # MemoryError inside the worker
            Grade(1.0, "custom_equal", "alloc:0.1"),  # the cap is room above the worker's own size
            Grade(1.0, "custom_equal", "a"),
        ]
        metrics = pool.metrics()
        assert (metrics["reward/grader_errors"], metrics["reward/grader_worker_restarts"]) == (1.0, 0.0)


def test_bad_limits_fail_at_construction():
    with pytest.raises(ValueError, match="batch_timeout_s must be > 0, got 0"):
        GraderPool(1, 1.0, batch_timeout_s=0)
    with pytest.raises(ValueError, match="max_worker_start_failures must be >= 1, got 0"):
        GraderPool(1, 1.0, max_worker_start_failures=0)
    with pytest.raises(ValueError, match=r"worker_memory_mb must be >= 0 \(0 = no cap\), got -1"):
        GraderPool(1, 1.0, worker_memory_mb=-1)


FLAKY_REWARD = """
import os
from pathlib import Path

if Path(os.environ["REWARD_MODULE_BROKEN"]).exists():
    raise ImportError("its data folder is gone")


def score(response, reference):
    if response == "exit":
        os._exit(3)
    return float(response == reference)
"""


def test_replacement_workers_that_cannot_start_stop_the_pool_with_their_error(tmp_path):
    (tmp_path / "flaky_reward.py").write_text(FLAKY_REWARD)
    broken = tmp_path / "broken"
    run = _run_script(
        tmp_path,
        """
        import os
        from pathlib import Path

        from etr_dist.reward import GraderPool

        if __name__ == "__main__":
            with GraderPool(1, 30.0, reward_fn="flaky_reward:score", max_worker_start_failures=2) as pool:
                print("crashes", [g.reason for g in pool.grade_batch([("exit", "x")] * 3 + [("a", "a")])])
                Path(os.environ["REWARD_MODULE_BROKEN"]).touch()
                print("crash", [g.reason for g in pool.grade_batch([("exit", "x")])])
                for attempt in range(2):
                    try:
                        pool.grade_batch([("b", "b")])
                    except RuntimeError as err:
                        print("raised", err)
        """,
        env={"REWARD_MODULE_BROKEN": str(broken)},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    # each successful start resets the count: three crashes in a row with a limit of 2 are fine
    assert lines[0] == "crashes ['worker_crash', 'worker_crash', 'worker_crash', 'custom']"
    assert lines[1] == "crash ['worker_crash']"
    expected = (
        "raised GraderPool stopped: 2 replacement grader workers in a row failed to start "
        "(reward.max_worker_start_failures=2); last error: grader worker failed to start: ImportError: "
        "reward.fn='flaky_reward:score': cannot import module 'flaky_reward': its data folder is gone"
    )
    assert lines[2:] == [expected, expected]  # the waiting call and every later one


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("from etr_dist.reward import GraderPool\n\npool = GraderPool(1, 5.0)\n", 3),
        (
            "from etr_dist.reward import GraderPool\n\n\ndef main():\n    return GraderPool(1, 5.0)\n\n\nmain()\n",
            8,
        ),
    ],
    ids=["at_top_level", "in_a_function_called_at_top_level"],
)
def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path, source, line):
    run = _run_script(tmp_path, source)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"RuntimeError: GraderPool was created by the top level of the script {tmp_path}")
    assert f'main.py (line {line}), outside `if __name__ == "__main__":`' in last
    assert last.endswith(
        'put the pool\'s creation (or the call that leads to it) under `if __name__ == "__main__":`'
    )
