"""The statistics glue of the study report, against values computed by hand."""

import json
import math

import numpy as np
import pytest

from etr_dist.study.report import bootstrap_table, eval_keys, metric_section
from etr_dist.study.results import (
    RunResult,
    bootstrap_vs_baseline,
    curve,
    final_values,
    item_matrix,
    load_run,
    share_step0,
)


def write_run(run_dir, rows, items):
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step, sets in items.items():
        (run_dir / "eval" / f"step_{step}").mkdir(parents=True)
        for name, scored in sets.items():
            lines = [json.dumps({"id": i, "n": n, "correct": c}) + "\n" for i, (n, c) in scored.items()]
            (run_dir / "eval" / f"step_{step}" / f"{name}.jsonl").write_text("".join(lines))


def test_load_run_merges_a_steps_rows_and_reads_items(tmp_path):
    rows = [
        {"step": 0, "eval/a/pass@1": 0.25},
        {"step": 1, "actor/entropy": 2.0, "note": "text is dropped"},
        {"step": 1, "eval/a/pass@1": 0.5},
    ]
    write_run(tmp_path / "run", rows, {1: {"a": {"x": (4, 1), "y": (4, 3)}}})
    result = load_run("etr", 3, tmp_path / "run")
    assert result.rows == {0: {"eval/a/pass@1": 0.25}, 1: {"actor/entropy": 2.0, "eval/a/pass@1": 0.5}}
    assert result.items == {1: {"a": {"x": 0.25, "y": 0.75}}}
    assert load_run("etr", 3, tmp_path / "missing").rows == {}


def test_share_step0_gives_every_arm_its_seeds_initial_eval():
    source = RunResult(
        "grpo", 0, {0: {"eval/a/pass@1": 0.3}, 1: {"actor/entropy": 1.0}}, {0: {"a": {"x": 1.0}}}
    )
    other = RunResult("etr", 0, {1: {"eval/a/pass@1": 0.6}})
    other_seed = RunResult("etr", 1, {1: {"eval/a/pass@1": 0.7}})
    share_step0([source, other, other_seed], {0: source})
    assert other.rows[0] == {"eval/a/pass@1": 0.3} and other.items[0] == {"a": {"x": 1.0}}
    assert 0 not in other_seed.rows and source.rows[0] == {"eval/a/pass@1": 0.3}


def test_curve_is_the_mean_and_t_interval_across_seeds():
    runs = [RunResult("etr", 0, {2: {"m": 0.2}, 4: {"m": 0.5}}), RunResult("etr", 1, {2: {"m": 0.4}})]
    (step2, i2), (step4, i4) = curve(runs, "m")
    # mean 0.3, sd 0.1414, t(0.975, 1) = 12.706: half width 12.706 * 0.1414 / sqrt(2) = 1.2706
    assert (step2, step4) == (2, 4)
    assert (i2.estimate, i2.low, i2.high) == pytest.approx((0.3, 0.3 - 1.27062, 0.3 + 1.27062), abs=1e-4)
    assert i4.estimate == 0.5 and math.isnan(i4.low) and i4.n == 1


def test_final_values_take_each_runs_last_step_with_the_key():
    runs = [
        RunResult("grpo", 0, {1: {"m": 0.1}, 2: {"m": 0.2, "x": 1.0}, 3: {"x": 2.0}}),
        RunResult("etr", 0, {1: {"m": 0.4}}),
        RunResult("etr", 1, {}),
    ]
    assert final_values(runs, "m") == {"grpo": {0: 0.2}, "etr": {0: 0.4}}


def test_item_matrix_orders_seeds_and_items():
    per_seed = {1: {"b": 0.5, "a": 1.0}, 0: {"a": 0.0, "b": 0.25}}
    assert item_matrix(per_seed, [0, 1], ["a", "b"]).tolist() == [[0.0, 0.25], [1.0, 0.5]]


def items_run(arm, seed, scores, step=2):
    return RunResult(
        arm, seed, {step: {"eval/a/pass@1": float(np.mean(list(scores.values())))}}, {step: {"a": scores}}
    )


def test_bootstrap_pairs_seeds_and_the_items_both_scored():
    runs = [
        items_run("grpo", 0, {"x": 0.0, "y": 0.5, "z": 1.0}),
        items_run("grpo", 1, {"x": 0.0, "y": 0.5}),
        items_run("etr", 0, {"x": 0.25, "y": 0.75, "z": 1.0}),
        items_run("etr", 1, {"x": 0.25, "y": 0.75}),
        items_run("etr", 2, {"x": 1.0, "y": 1.0}),  # no grpo run of seed 2: not paired, left out
    ]
    rows = bootstrap_vs_baseline(runs, "a", "grpo")
    interval, items = rows["etr"]
    # items x, y (z is missing from seed 1), seeds 0, 1: every item and seed is +0.25, so is every resample
    assert items == 2 and interval.estimate == pytest.approx(0.25)
    assert (interval.low, interval.high) == pytest.approx((0.25, 0.25))
    assert bootstrap_vs_baseline(runs, "a", "dapo") == {}


def test_report_tables_hold_the_hand_computed_numbers():
    runs = [
        items_run("grpo", 0, {"x": 0.0, "y": 0.5}),
        items_run("grpo", 1, {"x": 0.5, "y": 0.5}),
        items_run("etr", 0, {"x": 0.5, "y": 0.5}),
        items_run("etr", 1, {"x": 0.5, "y": 1.0}),
    ]
    text = "\n".join(metric_section(runs, "eval/a/pass@1", "grpo"))
    # grpo: 0.25, 0.5 -> mean 0.375, half width 12.706 * 0.1768 / 1.414 = 1.588; etr - grpo = +0.25 both seeds
    assert "| grpo | 2 | 0.375 [-1.213, 1.963] | - | - |" in text
    assert "| etr | 2 | 0.625 [-0.963, 2.213] | +0.250 [+0.250, +0.250] | 0.000 |" in text
    # per item, etr - grpo is x +0.5, y 0 (seed 0) and x 0, y +0.5 (seed 1): a resample's difference is 0 when
    # it draws seed 0 twice and item y twice (chance 1/16 > 2.5%), 0.5 for seed 0 and x alike: the interval is
    # [0, 0.5]; items-only: (1.96 + 0.84) sqrt(2 * 0.375 * 0.625 / 2) = 1.356
    assert "| etr | +0.250 [+0.000, +0.500] | 2 | 1.356 |" in bootstrap_table(runs, "a", "grpo", 0.375)
    assert eval_keys(runs + [RunResult("etr", 3, {0: {"eval/a/pass@4": 0.9, "eval/b/pass@1": 0.1}})]) == {
        "a": ["pass@1", "pass@4"],
        "b": ["pass@1"],
    }
