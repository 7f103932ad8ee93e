"""The closed-loop backtest (issue 13, optimizer/backtest.py): the execution rule by hand,
the forecast, a real 2-day x 2-level run whose tables must add up, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optimizer.backtest import (
    COMPARED,
    PLAN,
    Backtest,
    BacktestSettings,
    day_scenario,
    plan_at_equal_work,
    realised_kpis,
    report_markdown,
    run_backtest,
    saving_pct,
    totals,
)
from optimizer.forecast import noisy_scenario
from optimizer.plan import assemble_plan
from service.cli import app
from tests.micro import leans_on_green, placement, solve

# a small region set-up: 3 of cn-edwc's sites, a handful of jobs and services a day
SMALL = BacktestSettings(days=2, errors=(0.0, 0.1), jobs=6, services=2, sites=3, time_limit_s=2)


@pytest.mark.parametrize(
    ("actual_w", "grid_mwh", "short_mwh"),
    [(2.0, 0.0, 0.0), (1.5, 0.5, 0.0), (0.5, 1.0, 0.5)],
)
def test_realised_by_hand(actual_w: float, grid_mwh: float, short_mwh: float) -> None:
    """W: own wind forecast at 2 MW beside a 1 MW grid connection at 10 CNY/MWh; the plan
    runs both 1 MW jobs there. Wind at 1.5 MW: 0.5 MWh from the grid (5 CNY more). At
    0.5 MW: the grid gives its 1 MW limit (10 CNY more) and 0.5 MWh is short."""
    sc = leans_on_green(robust=False)
    plan = solve(sc)
    assert placement(plan, "a")[0] == placement(plan, "b")[0] == "W"
    actual = np.array([[actual_w], [0.0]])  # sites W, E
    r = realised_kpis(sc, plan, actual)
    assert r["green_mwh"] == pytest.approx(min(actual_w, 2.0))
    assert r["grid_mwh"] == pytest.approx(grid_mwh)
    assert r["short_mwh"] == pytest.approx(short_mwh)
    assert r["short_site_hours"] == (1 if short_mwh else 0)
    assert r["total_cost"] == pytest.approx(plan.kpis.total_cost + 10.0 * grid_mwh)
    assert r["curtailed_mwh"] == pytest.approx(0.0)


def test_equal_work_cuts_the_plan_to_the_baselines_jobs() -> None:
    """A baseline that leaves job b unplaced: the plan is compared without b. With wind at
    0.5 MW the full plan is 0.5 MWh short; without b it takes 0.5 MWh from the grid (5 CNY
    more than planned) and nothing is short."""
    sc = leans_on_green(robust=False)
    plan = solve(sc)
    assert plan.schedule is not None
    base_sched = dataclasses.replace(
        plan.schedule,
        job_site=plan.schedule.job_site.copy(),
        job_acc=plan.schedule.job_acc.copy(),
        job_hours=list(plan.schedule.job_hours),
        green_mw=None,
    )
    b = [j.job_id for j in sc.jobs].index("b")
    base_sched.job_site[b], base_sched.job_acc[b] = -1, -1
    base_sched.job_hours[b] = np.zeros(0, np.int64)
    base = assemble_plan(sc, base_sched, status="baseline", planner="greedy")
    actual = np.array([[0.5], [0.0]])
    eq = plan_at_equal_work(sc, plan, base, actual)
    assert eq["restricted"] and eq["validated"], eq["violations"]
    assert eq["planned"]["unplaced"] == 1
    assert eq["realised"]["short_mwh"] == pytest.approx(0.0)
    assert eq["realised"]["grid_mwh"] == pytest.approx(0.5)
    assert eq["realised"]["total_cost"] == pytest.approx(eq["planned"]["total_cost"] + 5.0)
    same = plan_at_equal_work(sc, plan, plan, actual)
    assert not same["restricted"] and same["realised"]["short_mwh"] == pytest.approx(0.5)


def test_forecast_noise_is_seeded_and_scaled() -> None:
    sc = day_scenario(SMALL, 0)
    assert noisy_scenario(sc, 0.0, 1) is sc  # perfect foresight
    a, b = noisy_scenario(sc, 0.05, 1), noisy_scenario(sc, 0.10, 1)
    actual = sc.green_available_mw
    assert np.allclose(a.green_available_mw, noisy_scenario(sc, 0.05, 1).green_available_mw)
    assert not np.allclose(a.green_available_mw, actual)
    # the same draws at both levels: where nothing was clipped, 10 % misses twice as far
    free = (a.green_available_mw > 0) & (b.green_available_mw > 0)
    assert np.allclose(
        (b.green_available_mw - actual)[free], 2 * (a.green_available_mw - actual)[free]
    )
    assert np.array_equal(a.grid_price_cny_per_mwh, sc.grid_price_cny_per_mwh)
    assert a.green_available_p10_mw is not None
    assert (a.green_available_p10_mw <= a.green_available_mw + 1e-9).all()


@pytest.fixture(scope="module")
def small() -> Backtest:
    return run_backtest(SMALL)


def test_backtest_tables_add_up(small: Backtest) -> None:
    recs = small.records
    assert [(r["day"], r["error"]) for r in recs] == [(0, 0.0), (0, 0.1), (1, 0.0), (1, 0.1)]
    for r in recs:
        assert all(a["validated"] for a in r["arms"].values()), r["arms"]
        for arm in r["arms"].values():
            real = arm["realised"]
            assert real["curtailed_mwh"] >= -1e-9 and real["short_mwh"] >= 0
            if r["error"] == 0.0:  # perfect foresight: realised is what was planned
                for k in COMPARED:
                    assert real[k] == pytest.approx(arm["planned"][k], rel=1e-9, abs=1e-6)
    t = totals(recs)
    assert set(t) == {"0", "0.1"}
    for key, level in t.items():
        mine = [r for r in recs if f"{r['error']:g}" == key]
        assert level["validated"]
        for arm in (PLAN, *SMALL.baselines):
            for k in COMPARED:
                got = level[arm]["realised"][k]
                assert got == pytest.approx(sum(r["arms"][arm]["realised"][k] for r in mine))
        for b in SMALL.baselines:
            v = level[f"vs_{b}"]
            for k in COMPARED:
                plan_eq = sum(r["plan_at_equal_work"][b]["realised"][k] for r in mine)
                assert v["plan_realised"][k] == pytest.approx(plan_eq)
                expect = 100 * (level[b]["realised"][k] - plan_eq) / level[b]["realised"][k]
                assert v["saving_pct"][k] == pytest.approx(expect)
            if v["restricted_days"] == 0:  # the plan did no job the baseline left out
                assert v["plan_realised"]["total_cost"] == pytest.approx(
                    level[PLAN]["realised"]["total_cost"]
                )
    # the forecast miss changes what the plans realise at 10 %, not at 0 %
    zero, ten = t["0"][PLAN], t["0.1"][PLAN]
    assert zero["realised"]["total_cost"] == pytest.approx(zero["planned"]["total_cost"])
    assert ten["realised"]["total_cost"] != pytest.approx(ten["planned"]["total_cost"])
    md = report_markdown(small)
    assert md.count("| 10% | carbon-agnostic |") == 2  # one row in each table
    assert "| 0% | greedy |" in md


def test_plot_draws_the_cumulative_savings(small: Backtest, tmp_path: Path) -> None:
    from bench.backtest_plot import cumulative_savings, plot

    doc = json.loads(json.dumps(small.as_dict()))  # as the command writes it
    series = cumulative_savings(doc)
    t = doc["totals"]
    for b in SMALL.baselines:
        for k in COMPARED:
            final = series[(0.1, b, k)][-1]
            base = t["0.1"][b]["realised"][k]
            assert final == pytest.approx(base - t["0.1"][f"vs_{b}"]["plan_realised"][k])
    png = plot(doc, tmp_path / "bt.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saving_pct() -> None:
    assert saving_pct(200.0, 150.0) == pytest.approx(25.0)
    assert saving_pct(100.0, 110.0) == pytest.approx(-10.0)
    assert saving_pct(0.0, 1.0) is None


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="forecast errors"):
        BacktestSettings(errors=(0.0, 1.5))
    with pytest.raises(ValueError, match="days"):
        BacktestSettings(days=0)


def test_cli_backtest(tmp_path: Path) -> None:
    out = tmp_path / "bt"
    args = ["backtest", "--out", str(out), "--days", "1", "--jobs", "4", "--services", "1"]
    args += ["--sites", "2", "--time-limit", "2", "--forecast-error", "0"]
    args += ["--forecast-error", "0.05", "--seed", "3", "--cost-only"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "backtest.json").read_text())
    assert doc["settings"]["errors"] == [0.0, 0.05] and doc["settings"]["seed"] == 3
    assert set(doc["totals"]) == {"0", "0.05"}
    assert all(level["validated"] for level in doc["totals"].values())
    md = (out / "backtest.md").read_text()
    assert "| 5% | carbon-agnostic |" in md
    assert md.count("| 5% | cost-only optimiser |") == 2  # a row in each table
    assert doc["totals"]["0.05"]["vs_cost_only"]["saving_pct"]["total_cost"] is not None
    assert md.strip() in res.stdout.replace("\r", "")
    bad = CliRunner().invoke(app, ["backtest", "--out", str(out), "--forecast-error", "2"])
    assert bad.exit_code == 2 and "forecast errors" in bad.output
