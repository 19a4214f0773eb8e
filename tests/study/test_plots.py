"""The report's ETR bounds by pass-rate bucket: what each line plots, and an empty bucket left without a point."""

import pytest

from etr_dist.study import plots
from etr_dist.study.results import RunResult

HIGH, LOW = "etr/eps_high_active_mean_pass_", "etr/eps_low_active_mean_pass_"


def test_pass_rate_figure_draws_the_seed_mean_of_each_bucket_per_side(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)  # keep the figure to read its lines
    runs = [
        RunResult("etr", 0, {1: {f"{HIGH}0-25": 0.4, f"{LOW}0-25": 0.1}, 2: {f"{HIGH}0-25": 0.3}}),
        RunResult("etr", 1, {1: {f"{HIGH}0-25": 0.2, f"{HIGH}75-100": 0.1}, 2: {f"{HIGH}0-25": 0.5}}),
    ]
    path = tmp_path / "etr_bounds_by_pass_rate.png"
    plots.etr_pass_rate_figure({"etr": runs}, path)
    assert path.stat().st_size > 5000
    (fig,) = figures
    high, low = fig.axes
    assert (
        high.get_title() == "etr: ETR upper bounds (z > 0)"
        and low.get_title() == "etr: ETR lower bounds (z < 0)"
    )
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in high.lines}
    assert lines["pass rate 0-25%"] == ([1, 2], pytest.approx([0.3, 0.4]))  # (0.4 + 0.2) / 2, (0.3 + 0.5) / 2
    assert lines["pass rate 75-100%"] == ([1], [0.1])  # only seed 1 had the bucket, only at step 1
    assert lines["pass rate 25-50%"] == ([], [])  # never logged: no point, not a stand-in value
    low_lines = {line.get_label(): list(line.get_ydata()) for line in low.lines}
    assert low_lines["pass rate 0-25%"] == [0.1]
