"""The trace-calibrated workload: its constants are the cited figures, and a generated
week matches them within stated tolerances (the table in data/workloads/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.workload_stats import STATS, stats
from optimizer import workloads as wl
from optimizer.generator import INFERENCE_SHARE, build_scenario
from optimizer.scenario import Scenario, load_scenario
from service.settings import DEFAULT_SCENARIO_DIR

FIG = pd.read_csv(STATS).set_index(["trace", "statistic"])["value"]
SPOT = "alibaba-spot-gpu-2026"


def fig(stat: str, trace: str = SPOT) -> float:
    return float(FIG[(trace, stat)])


def test_the_constants_are_the_cited_figures() -> None:
    by_class = dict(zip(("1", "2_8", "9_64", "over_64"), wl.GANG_CLASSES, strict=True))
    for key, c in by_class.items():
        assert c.job_share == fig(f"jobs_gang_{key}")
        assert c.device_hour_share == fig(f"devh_gang_{key}")
    q = dict(wl.RUN_TIME_QUANTILES_H)
    assert (q[0.5], q[0.9], q[0.99]) == (fig("run_median_h"), fig("run_p90_h"), fig("run_p99_h"))
    assert [p for p, h in wl.RUN_TIME_QUANTILES_H if h == 1.0][0] == pytest.approx(
        fig("jobs_under_1h") / 100
    )
    assert fig("jobs_per_kdevice_day") == wl.ARRIVALS_PER_KDEVICE_DAY
    assert fig("peak_to_trough", "generative-ai-requests") == wl.GENAI_PEAK_TO_TROUGH
    assert fig("inference_share_of_device_demand", "greenopt") == 100 * INFERENCE_SHARE
    lo, hi = (
        fig(s, "alibaba-recommendation-serving") for s in ("gpu_instances_min", "gpu_instances_max")
    )
    assert pytest.approx((hi - lo) / (hi + lo)) == wl.FLAT_SERVING_SPREAD
    assert 2 <= wl.ARRIVAL_PEAK_TO_TROUGH <= 4  # traces: 2-4x


def assert_matches_the_traces(sc: Scenario) -> None:
    """The stated tolerances (data/workloads/SOURCES.md) on a scenario's row of the table."""
    s = stats(sc)
    split = lambda key: np.array([float(x) for x in s[key].split(" / ")])  # noqa: E731
    cited = lambda *keys: np.array([fig(k) for k in keys])  # noqa: E731
    # gang mix by jobs and by device-hours: within 2 percentage points
    jobs = cited("jobs_gang_1", "jobs_gang_2_8", "jobs_gang_9_64", "jobs_gang_over_64")
    assert np.abs(split("jobs by gang 1 / 2-8 / 9-64 / >64 (%)") - jobs).max() <= 2
    devh = cited("devh_gang_1", "devh_gang_2_8", "devh_gang_9_64", "devh_gang_over_64")
    assert np.abs(split("device-h by gang class (%)") - devh).max() <= 2
    # run times: the class scaling shortens big gangs, so the median drops (within 0.5-1x);
    # p90 within 25 %, p99 within 40 %, short jobs within 6 points
    med, p90, p99 = split("run time median / p90 / p99 (h)")
    assert 0.5 * fig("run_median_h") <= med <= fig("run_median_h")
    assert abs(p90 / fig("run_p90_h") - 1) <= 0.25 and abs(p99 / fig("run_p99_h") - 1) <= 0.4
    assert abs(float(s["jobs < 1 h (%)"]) - fig("jobs_under_1h")) <= 6
    assert float(s["jobs per 1,000 job devices per day"]) == pytest.approx(
        fig("jobs_per_kdevice_day"), rel=0.01
    )
    assert 2 <= float(s["arrivals peak / trough by hour"]) <= 4
    assert float(s["inference share of device demand (%)"]) == pytest.approx(73, abs=1)
    interactive, batch = (
        float(x) for x in s["inference peak / trough: interactive, batch"].split(", ")
    )
    assert interactive >= 50 and batch <= 1.3
    # gangs beyond every fleet stay in, as warnings (planned unplaced)
    assert all("larger than any site's fleet" in w.message for w in sc.warnings)


def test_a_trace_calibrated_week_matches_the_traces_within_tolerances() -> None:
    assert_matches_the_traces(
        build_scenario(
            "cn-edwc", "2025-07-15T00:00+08:00", 168, None, 30, 7, workload="trace-calibrated"
        )
    )


def test_the_default_scenario_matches_the_traces_within_tolerances() -> None:
    """Issue 17's done-when: the committed default scenario's workload (its row in the
    table) is trace-calibrated within the same tolerances as the week. Over 48 h each hour
    of day has two samples, so its arrival peak/trough is a noisy estimate (3.6 here; the
    same build with seed 7 gives 4.7); the committed scenario is fixed, so this is no
    flaky check, and the week above is the calibration's."""
    sc = load_scenario(DEFAULT_SCENARIO_DIR)
    assert "workload='trace-calibrated'" in sc.description
    assert_matches_the_traces(sc)
    assert len(sc.warnings) == 1  # the 1,024-GPU gang, larger than every fleet


def test_scenario_build_selects_the_workload(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli import EXIT_BAD_INPUT, app

    args = ["scenario", "build", "--hours", "24", "--sites", "3", "--services", "6"]
    ok = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "t"), "--workload", "trace-calibrated"]
    )
    assert ok.exit_code == 0, ok.output
    sc = load_scenario(tmp_path / "t")
    assert "workload='trace-calibrated'" in sc.description
    assert all(j.job_id.startswith("tj-") for j in sc.jobs) and len(sc.jobs) > 100
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--workload", "poisson"])
    assert bad.exit_code == EXIT_BAD_INPUT and "workload must be one of" in bad.output
