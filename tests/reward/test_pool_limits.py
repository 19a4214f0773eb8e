"""The pool's guarantees under attack: every adversarial item within timeout_s + 1 s, and no orphan workers."""

import os
import signal
import subprocess
import sys
import time

import pytest

from etr_dist.reward import Grade, GraderPool
from etr_dist.reward.answer_sets import load_adversarial

from .processes import is_gone

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0


def test_every_adversarial_item_is_bounded_and_the_pool_survives():
    with GraderPool(num_workers=2, timeout_s=TIMEOUT_S) as pool:
        for case in load_adversarial():
            started = time.monotonic()
            (result,) = pool.grade_batch([(case.response, case.reference)])
            assert time.monotonic() - started <= TIMEOUT_S + 1.0, case.id
            assert result.score in (0.0, 1.0), case.id
        assert pool.grade_batch([("so \\boxed{\\frac{1}{2}}", "0.5"), ("#### 7", "7")]) == [
            Grade(1.0, "match_string", "\\frac{1}{2}"),
            Grade(1.0, "match_string", "7"),
        ]
        metrics = pool.metrics()
        assert metrics["reward/grader_timeouts"] >= 3  # the exponent towers
        assert metrics["reward/grader_crashes"] == 0


def test_a_hung_worker_dies_with_the_process_that_owns_the_pool(tmp_path, reward_fns_path):
    pid_file = tmp_path / "worker.pid"
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from etr_dist.reward import GraderPool; "
            "GraderPool(1, 600.0, reward_fn=sys.argv[1]).grade_batch([('pid:' + sys.argv[2], '')])",
            reward_fns_path + "scripted",
            str(pid_file),
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker_pid = int(pid_file.read_text())
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while not is_gone(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert is_gone(worker_pid)
