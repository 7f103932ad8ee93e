"""The plan `optimize` returns is never worse than a baseline or its own start (issue 16
item 0), and how plans compare on issue 11's dominance criteria.

Every plan goes through the independent validator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from optimizer import Plan, Scenario, SolverSettings, load_scenario, optimize
from optimizer import planner as planner_module
from optimizer.choose import Candidate, at_equal_work, dominance
from optimizer.generator import build_scenario
from optimizer.plan import Schedule, assemble_plan
from optimizer.validate import validate_plan
from tests.micro import churn_free, job, scenario, site

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
QUICK = SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=10, mip_rel_gap=5e-3)
TOL = 1e-6


def _never_worse(sc: Scenario, plan: Plan) -> None:
    validate_plan(sc, plan).raise_if_failed()
    s = plan.summary
    assert s["origin"] in s["solver"]["origin_objectives"]
    others = [b["objective"] for b in s["baselines"].values()]
    others.append(s["solver"]["origin_objectives"]["start"])
    assert s["objective"] <= min(others) + TOL * max(1.0, abs(s["objective"]))


def _micro_scenarios() -> list[Scenario]:
    """Small hand-made worlds: a cheap hour, a green site, a gang that fits one site only."""
    cheap_hour = scenario(
        [site("A")], prices={"A": [30.0, 10.0, 20.0]}, jobs=[job("j1"), job("j2", gang=2)]
    )
    green_site = scenario(
        [site("A"), site("B")],
        prices={"A": [200.0] * 3, "B": [200.0] * 3},
        carbon={"A": [800.0] * 3, "B": [800.0] * 3},
        green={"B": [1.0] * 3},
        jobs=[job("j1", work_device_hours=2), job("j2", work_device_hours=2)],
    )
    one_site_fits = scenario(
        [site("A"), site("B")],
        fleets={"A": 4, "B": 2},
        prices={"A": [50.0, 60.0, 70.0], "B": [10.0] * 3},
        jobs=[job("big", gang=4, work_device_hours=8), job("small", gang=1)],
    )
    return [cheap_hour, green_site, one_site_fits]


@pytest.mark.parametrize("i", range(3))
def test_micro_plans_are_never_worse_than_a_baseline_or_the_start(i: int) -> None:
    sc = _micro_scenarios()[i]
    _never_worse(sc, optimize(sc, QUICK))


@pytest.mark.parametrize("devices", ["exact", "round"])
def test_a_generated_scenario_plan_is_never_worse_than_a_baseline(devices: str) -> None:
    sc = build_scenario("cn-edwc", "2025-07-15T00:00+08:00", 12, 30, 6, seed=5)
    settings = SolverSettings(
        backend="matrix", threads=1, seed=0, time_limit_s=20, integer_devices=devices
    )
    _never_worse(sc, optimize(sc, settings))


def test_the_demo_plan_in_a_short_budget_is_never_worse_than_a_baseline() -> None:
    sc = churn_free(load_scenario(DEMO))
    _never_worse(sc, optimize(sc, QUICK))


def _first_incumbent_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS stops at its first improving solution and has no start: its own plan, not the
    best it could find (a real HiGHS run, cut short)."""
    real = planner_module.new_highs

    def cut_short(settings: SolverSettings) -> Any:
        h = real(settings)
        h.setOptionValue("mip_max_improving_sols", 1)
        return h

    monkeypatch.setattr(planner_module, "new_highs", cut_short)


def test_a_solver_plan_worse_than_a_baseline_gives_way_to_the_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 devices, hours priced 60, 50, 40, 30, 20, 10 CNY/MWh, 1 MW a device; two contiguous
    # jobs of 3 h that cannot overlap (gangs 2 + 3 > 4): the 3-gang in the cheap half costs
    # 3 x 60 + 2 x 150 = 480 CNY, the other way round 2 x 60 + 3 x 150 = 570. The greedy
    # baseline (earliest deadline, then id: j1 first) takes the cheap half for j1: 570; the
    # carbon-agnostic one runs both as soon as they fit, j1 first then j2: 480.
    sc = scenario(
        [site("A")],
        hours=6,
        fleets={"A": 4},
        prices={"A": [60.0, 50.0, 40.0, 30.0, 20.0, 10.0]},
        jobs=[
            job("j1", gang=2, work_device_hours=6, preemptible=False, deadline_h=6),
            job("j2", gang=3, work_device_hours=9, preemptible=False, deadline_h=6),
        ],
    )
    _first_incumbent_only(monkeypatch)
    settings = SolverSettings(
        backend="matrix", threads=1, seed=0, time_limit_s=10, mip_start=False, presolve=False
    )
    plan = optimize(sc, settings)
    validate_plan(sc, plan).raise_if_failed()
    s = plan.summary
    assert s["baselines"]["greedy"]["objective"] == pytest.approx(570.0)
    assert s["baselines"]["carbon_agnostic"]["objective"] == pytest.approx(480.0)
    assert s["solver"]["origin_objectives"]["improved"] > 480.0 + 1.0  # the premise
    # the first of the candidates at 480 in the order improved, baselines, start
    assert s["origin"] == "baseline:carbon_agnostic"
    assert s["objective"] == pytest.approx(480.0)
    assert s["solver"]["solver_objective"] == pytest.approx(
        s["solver"]["origin_objectives"]["improved"], rel=1e-6
    )
    gap = s["gap"]
    assert s["status"] == (
        "optimal" if gap is not None and gap <= settings.mip_rel_gap else "feasible"
    )
    if gap is not None:
        assert s["bound"] <= s["objective"] + 1e-6


def test_no_plan_from_highs_returns_the_best_of_start_and_baselines_flagged() -> None:
    sc = _micro_scenarios()[0]
    settings = SolverSettings(
        backend="matrix", threads=1, seed=0, time_limit_s=1e-6, mip_start=False
    )
    plan = optimize(sc, settings)
    validate_plan(sc, plan).raise_if_failed()
    s = plan.summary
    assert plan.status == "fallback"
    assert s["origin"] != "improved"
    assert f"this is the {s['origin']} plan" in s["solver"]["fallback_reason"]
    assert s["objective"] == pytest.approx(min(s["solver"]["origin_objectives"].values()))


def _kpis(**kw: float) -> dict[str, float]:
    base = {
        "objective": 100.0,  # total cost 100 + penalties 0
        "carbon_cost": 10.0,
        "emissions_t": 1.0,
        "emissions_location_t": 2.0,
        "curtailed_mwh": 0.5,
        "unplaced_device_hours": 0.0,
        "unmet_mtokens": 0.0,
    }
    return base | kw


def test_dominance_needs_no_worse_everywhere_better_somewhere_and_no_less_work() -> None:
    base = _kpis()
    assert dominance(_kpis(emissions_t=0.9), base)["dominates"]
    assert not dominance(base, base)["dominates"]  # equal: not strictly better anywhere
    # cheaper but more curtailed: no
    assert not dominance(_kpis(objective=90.0, curtailed_mwh=0.6), base)["dominates"]
    # the carbon price is no cost of its own: the emissions are compared beside the cost
    assert dominance(_kpis(carbon_cost=10.5), base)["diff"]["cost"] == pytest.approx(-0.5)
    # less energy bought by leaving work undone: its penalty is in the cost, and less work
    # is never dominance
    idle = dominance(_kpis(objective=60.0, emissions_t=0.5, unplaced_device_hours=4.0), base)
    assert not idle["dominates"] and not idle["equal_work"]
    assert idle["undone_device_hours_diff"] == 4.0


def test_a_plan_doing_more_work_is_compared_cut_to_the_baselines_work() -> None:
    # one device, hours priced 30, 20, 10 CNY/MWh at 100 kg/MWh, 1 MW a device-hour; the
    # baseline runs j1 in hour 0 (30 CNY, 0.1 t) and leaves j2 out; the plan runs j1 in
    # hour 2 and j2 in hour 1 (30 CNY, 0.2 t): more carbon, for more work. Cut to the
    # baseline's work (j1 only, in hour 2: 10 CNY, 0.1 t) it is 20 CNY cheaper for the
    # same carbon: it dominates at equal work.
    sc = scenario(
        [site("A")],
        fleets={"A": 1},
        prices={"A": [30.0, 20.0, 10.0]},
        carbon={"A": [100.0] * 3},
        jobs=[job("j1"), job("j2")],
    )

    def plan_of(runs: dict[int, int]) -> Candidate:
        s = Schedule.empty(sc)
        for j, h in runs.items():
            s.job_site[j], s.job_acc[j], s.job_hours[j] = 0, 0, np.array([h])
        return Candidate("x", s, assemble_plan(sc, s, status="check"))

    base, mine = plan_of({0: 0}), plan_of({0: 2, 1: 1})
    out, kpis = at_equal_work(sc, mine, base)
    assert out["restricted"]
    assert kpis["unplaced"] == 1 and kpis["emissions_t"] == pytest.approx(0.1)
    assert out["diff"]["cost"] == pytest.approx(-20.0)
    assert out["diff"]["emissions_t"] == pytest.approx(0.0, abs=1e-9)
    assert out["dominates"]
    assert not out["full"]["dominates"]  # uncut it emits 0.1 t more
    assert out["full"]["undone_device_hours_diff"] == pytest.approx(-1.0)
    # equal work already: nothing cut, compared as is
    same, _ = at_equal_work(sc, base, base)
    assert not same["restricted"] and not same["dominates"]


def test_the_cli_headline_names_the_plan_and_says_no_bound_rather_than_nan() -> None:
    from service.cli import plan_headline

    s = {"status": "feasible", "origin": "baseline:greedy", "gap": None}
    assert plan_headline(s) == "feasible (baseline:greedy)  no bound"
    assert plan_headline(s | {"status": "optimal", "origin": "improved", "gap": 0.0012}) == (
        "optimal (improved)  gap 0.120%"
    )
