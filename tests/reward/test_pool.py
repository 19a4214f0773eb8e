"""GraderPool with real worker processes: order, crashes, kills, errors, threads, limits, custom functions.

A custom reward function (reward_fns.scripted) acts out each response, so every failure is real: the worker
really exits, really hangs until killed, really raises.
"""

import os
import signal
import threading
import time

import pytest

from etr_dist.config.schema import RewardConfig
from etr_dist.reward import Grade, GradeRequest, GraderPool


@pytest.fixture(scope="module")
def pool(reward_fns_path):
    scripted = reward_fns_path + "scripted"
    with GraderPool(num_workers=2, timeout_s=5.0, reward_fn=scripted, max_input_chars=1000) as scripted_pool:
        yield scripted_pool


def test_results_come_back_in_input_order(pool):
    pairs = [(str(i), str(i if i % 3 else -1)) for i in range(40)]
    grades = pool.grade_batch(pairs)
    assert [g.extracted for g in grades] == [str(i) for i in range(40)]
    assert [g.score for g in grades] == [float(i % 3 != 0) for i in range(40)]


def test_a_crashing_item_scores_zero_and_spares_the_others(pool):
    restarts = pool.metrics()["reward/grader_worker_restarts"]
    grades = pool.grade_batch([("a", "a"), ("exit", "x"), ("b", "b"), ("exit", "x"), ("c", "c")])
    assert [g.reason for g in grades] == [
        "custom_equal",
        "worker_crash",
        "custom_equal",
        "worker_crash",
        "custom_equal",
    ]
    assert grades[1] == Grade(0.0, "worker_crash", None)
    assert pool.metrics()["reward/grader_worker_restarts"] == restarts + 2
    assert pool.grade_batch([("d", "d")])[0].score == 1.0


def test_a_worker_killed_mid_item_is_a_crash_not_a_hang(pool, tmp_path):
    pid_file = tmp_path / "worker.pid"
    result: list[Grade] = []
    grading = threading.Thread(target=lambda: result.extend(pool.grade_batch([(f"pid:{pid_file}", "")])))
    started = time.monotonic()
    grading.start()
    while not pid_file.exists() or not pid_file.read_text():
        time.sleep(0.01)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    grading.join(timeout=5.0)
    assert result == [Grade(0.0, "worker_crash", None)]
    assert time.monotonic() - started < pool.timeout_s
    assert pool.grade_batch([("e", "e")])[0].score == 1.0


def test_a_raising_reward_function_scores_zero_and_the_worker_lives(pool):
    restarts = pool.metrics()["reward/grader_worker_restarts"]
    grades = pool.grade_batch([("raise", "x"), ("f", "f")])
    assert [g.reason for g in grades] == ["reward_error", "custom_equal"]
    assert pool.metrics()["reward/grader_worker_restarts"] == restarts


def test_several_threads_grade_at_once(pool):
    results: dict[int, list[Grade]] = {}

    def grade_own_batch(thread_index: int) -> None:
        pairs = [(f"{thread_index}-{i}", f"{thread_index}-{i}") for i in range(25)]
        results[thread_index] = pool.grade_batch(pairs)

    threads = [threading.Thread(target=grade_own_batch, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10.0)
    for t in range(4):
        assert [g.extracted for g in results[t]] == [f"{t}-{i}" for i in range(25)]
        assert all(g.score == 1.0 for g in results[t])


def test_inputs_are_size_limited_before_grading(pool):
    truncated = pool.metrics()["reward/grader_truncated_inputs"]
    long_response = "x" * 5000
    grades = pool.grade_batch([(long_response, "x" * 1000), ("y", "y" * 1001)])
    assert grades[0] == Grade(1.0, "custom_equal", "x" * 1000)  # the tail, where the final answer is
    assert grades[1] == Grade(0.0, "input_too_long", None)
    assert pool.metrics()["reward/grader_truncated_inputs"] == truncated + 1


def test_bad_input_fails_before_any_work(pool):
    items = pool.metrics()["reward/grader_items"]
    with pytest.raises(TypeError, match=r"requests\[1\]: reference must be str, got NoneType"):
        pool.grade_batch([("a", "a"), ("b", None)])
    with pytest.raises(
        TypeError, match=r"requests\[0\] must be a \(response, reference\[, last_number_fallback\]\)"
    ):
        pool.grade_batch(["ab"])
    with pytest.raises(TypeError, match=r"requests\[0\]: last_number_fallback must be bool, got str"):
        pool.grade_batch([("a", "a", "yes")])
    assert pool.metrics()["reward/grader_items"] == items


def test_metrics_are_cumulative_counts_and_throughput(pool):
    metrics = pool.metrics()
    assert metrics["reward/grader_items"] > 100
    assert metrics["reward/grader_crashes"] >= 3
    assert metrics["reward/grader_errors"] >= 1
    assert metrics["reward/grader_timeouts"] == 0
    assert metrics["reward/grader_items_per_s"] > 0


def test_custom_functions_may_return_bare_numbers_but_not_other_things(reward_fns_path):
    with GraderPool(1, 5.0, reward_fn=reward_fns_path + "bare_number") as numbers:
        assert numbers.grade_batch([("ab", "cd"), ("a", "cd")]) == [
            Grade(1.0, "custom"),
            Grade(0.0, "custom"),
        ]
    with GraderPool(1, 5.0, reward_fn=reward_fns_path + "returns_text") as text:
        assert text.grade_batch([("a", "b")]) == [Grade(0.0, "reward_error", None)]


def test_nan_inf_out_of_range_or_raising_rewards_score_reward_error_and_are_counted(reward_fns_path):
    with GraderPool(1, 5.0, reward_fn=reward_fns_path + "misbehaving", reward_range=(0.0, 1.0)) as pool:
        results = pool.grade_batch([(r, "x") for r in ("nan", "inf", "big", "raise", "fine")])
        assert [g.reason for g in results] == ["reward_error"] * 4 + ["custom"]
        assert [g.score for g in results] == [0.0, 0.0, 0.0, 0.0, 1.0]
        assert pool.metrics()["reward/grader_errors"] == 4.0
    # the error score is the in-range value nearest to 0
    with GraderPool(1, 5.0, reward_fn=reward_fns_path + "misbehaving", reward_range=(0.5, 6.0)) as shifted:
        assert shifted.grade_batch([("nan", "x"), ("big", "x")]) == [
            Grade(0.5, "reward_error", None),
            Grade(5.0, "custom", None),
        ]


def test_a_bad_reward_path_fails_at_construction(reward_fns_path):
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        GraderPool(1, 1.0, reward_fn=reward_fns_path + "nope")
    with pytest.raises(ValueError, match="num_workers must be >= 1"):
        GraderPool(0, 1.0)


def test_builtin_grader_takes_the_fallback_from_each_request():
    pool = GraderPool.from_config(RewardConfig(num_workers=1, timeout_s=5.0))
    requests = [
        ("so \\boxed{\\dfrac{1}{2}}", "0.5"),
        ("just 6", "6"),  # a pair: no fallback (MATH-style)
        GradeRequest("just 6", "6", last_number_fallback=True),  # arithmetic data
        ("just 6", "6", False),
        ("the code is AZYUK6A", "6", True),  # digits inside a word are no number
    ]
    assert pool.grade_batch(requests) == [
        Grade(1.0, "match_string", "\\dfrac{1}{2}"),
        Grade(0.0, "no_answer", None),
        Grade(1.0, "match_string", "6"),
        Grade(0.0, "no_answer", None),
        Grade(0.0, "no_answer", None),
    ]
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.grade_batch([("1", "1")])


def test_items_after_a_hang_or_crash_in_one_chunk_are_graded_by_the_fresh_worker(reward_fns_path):
    with GraderPool(1, timeout_s=0.5, reward_fn=reward_fns_path + "scripted") as pool:
        started = time.monotonic()
        grades = pool.grade_batch(
            [("a", "a"), ("sleep:30", "x"), ("b", "b"), ("exit", "x"), ("c", "c"), ("d", "e")]
        )
        assert [g.reason for g in grades] == [
            "custom_equal",
            "timeout",
            "custom_equal",
            "worker_crash",
            "custom_equal",
            "custom_equal",
        ]
        assert [g.score for g in grades] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
        assert time.monotonic() - started < pool.timeout_s + 2.0
        assert pool.metrics()["reward/grader_worker_restarts"] == 2.0


def test_an_item_past_its_deadline_is_killed_and_scored_timeout(reward_fns_path):
    with GraderPool(1, timeout_s=0.5, reward_fn=reward_fns_path + "scripted") as pool:
        started = time.monotonic()
        grades = pool.grade_batch([("sleep:30", "x"), ("g", "g")])
        assert grades == [Grade(0.0, "timeout", None), Grade(1.0, "custom_equal", "g")]
        assert time.monotonic() - started < pool.timeout_s + 1.0
        metrics = pool.metrics()
        assert (metrics["reward/grader_timeouts"], metrics["reward/grader_worker_restarts"]) == (1.0, 1.0)
        assert metrics["reward/grader_max_item_s"] >= pool.timeout_s
