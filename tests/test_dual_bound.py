"""A bound from the previous solve's duals (`optimizer/model/dual_bound.py`): worked by
hand on a two-variable LP, then through the planner on a small scenario, where it must
never pass the changed scenario's own LP value (no y can make it invalid) and, with the
data unchanged, gives back the previous LP's bound."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from optimizer import optimize
from optimizer.generator import build_scenario
from optimizer.model.core import LinearModel
from optimizer.model.dual_bound import lagrangian
from optimizer.plan import Plan
from optimizer.solve import SolverSettings
from optimizer.validate import validate_plan
from optimizer.whatif import Overrides, apply_overrides

ROUND = SolverSettings(
    backend="matrix", threads=1, seed=0, time_limit_s=30, integer_devices="round"
)


def _two_variables(cap_x1: bool) -> LinearModel:
    """min x1 + 2 x2 s.t. x1 + x2 >= 1 (and x1 <= 3 as a row), x >= 0: optimum 1 at x1 = 1,
    dual 1 on the first row."""
    m = LinearModel()
    m.add_variables("x", 2)
    m.add_cost("cost", np.array([0, 1]), np.array([1.0, 2.0]))
    m.add_constraints("cover", 1, np.array([0, 0]), np.array([0, 1]), np.ones(2), lo=1.0)
    if cap_x1:
        m.add_constraints("cap", 1, np.array([0]), np.array([0]), np.ones(1), hi=3.0)
    return m


def test_the_lagrangian_by_hand() -> None:
    m = _two_variables(cap_x1=True)
    # the optimal dual: reduced costs (0, 1), L = 1 x lo = 1, the optimum
    assert lagrangian(m, np.array([1.0, 0.0]))[0] == pytest.approx(1.0)
    # too high a dual: x1's reduced cost -0.5 with no upper bound of its own; the cap row
    # implies x1 <= 3, so L = 1.5 x 1 - 0.5 x 3 = 0 (weaker, still below the optimum)
    value, info = lagrangian(m, np.array([1.5, 0.0]))
    assert value == pytest.approx(0.0) and info["columns_bounded_by_a_row"] == 1
    # a dual of the wrong sign for a >= row would need its infinite upper side: taken as 0,
    # reduced costs (1, 2), L = 0
    assert lagrangian(m, np.array([-1.0, 0.0]))[0] == pytest.approx(0.0)
    # without the cap nothing bounds x1, and x1 -> inf would take L to -inf: no bound
    assert lagrangian(_two_variables(cap_x1=False), np.array([1.5]))[0] is None


@pytest.fixture(scope="module")
def small():  # type: ignore[no-untyped-def]
    return build_scenario("cn-edwc", "2025-07-15T00:00+08:00", 12, 30, 6, seed=3)


@pytest.fixture(scope="module")
def stored(small, tmp_path_factory) -> Plan:  # type: ignore[no-untyped-def]
    """A cold plan with its duals, read back from its bundle as the service stores it."""
    plan = optimize(small, ROUND)
    validate_plan(small, plan).raise_if_failed()
    assert not plan.pricing_duals.empty
    path = Path(tmp_path_factory.mktemp("bundle")) / "plan"
    plan.write_bundle(path)
    return Plan.read_bundle(path)


def test_unchanged_data_gets_the_previous_lps_bound_back(small, stored: Plan) -> None:  # type: ignore[no-untyped-def]
    warm = optimize(small, ROUND, warm_start=stored)
    validate_plan(small, warm).raise_if_failed()
    info = warm.summary["solver"]["job_options"]["warm_duals"]
    fixed = stored.summary["solver"]["fixed_cost"]
    cold = stored.summary["solver"]["job_options"]["per_round"][-1]
    # the cold LP's own Lagrangian bound, from its duals as the bundle keeps them (10
    # significant digits) on the first LP of the warm re-solve (fewer options priced in)
    assert cold["starts"] and info["starts"]
    assert 0 < info["rows_with_a_dual"] <= len(stored.pricing_duals)
    assert info["bound"] == pytest.approx(cold["bound"], rel=1e-7)
    # ... so the warm plan's bound is the cold plan's, or better where its own LP beat it
    assert warm.summary["bound"] >= stored.summary["bound"] - 1e-7 * abs(fixed + cold["bound"])


@pytest.mark.parametrize("change", ["price", "outage"])
def test_after_a_change_the_bound_never_passes_the_new_lp(small, stored: Plan, change: str) -> None:  # type: ignore[no-untyped-def]
    """Grid prices up 60 % (the old duals then undervalue the energy), or the first site out
    (rows the old duals relied on now bind at 0): the bound from the old duals is below the
    changed scenario's own LP value, priced to the end (no option prices in)."""
    if change == "price":
        o = Overrides.model_validate({"price_changes": [{"multiplier": 1.6}]})
    else:
        o = Overrides.model_validate({"capacity_changes": [{"site": small.site_ids[0]}]})
    sc = apply_overrides(small, o)
    warm = optimize(sc, ROUND, warm_start=stored)
    validate_plan(sc, warm).raise_if_failed()
    info = warm.summary["solver"]["job_options"]["warm_duals"]
    assert info["bound"] is not None
    # the changed scenario's LP, priced to the end from a cold start: no option prices in,
    # or (asked for no gap) the bound reaches the LP, so the LP over the options priced in
    # is the whole LP; its value is at least any Lagrangian bound
    cold = optimize(sc, dataclasses.replace(ROUND, pricing_rounds=50, mip_rel_gap=0.0))
    jo = cold.summary["solver"]["job_options"]
    assert jo["stopped"] in ("no option prices in", "bound close to the LP")
    lp = jo["per_round"][-1]["lp"]
    assert info["bound"] <= lp + 1e-6 * abs(lp)
    assert warm.summary["bound"] <= warm.summary["objective"] + 1e-6


def test_an_interior_point_stopped_short_bounds_by_its_duals(small) -> None:  # type: ignore[no-untyped-def]
    """A pricing LP by interior point stopped at a loose tolerance (`planner._ipm_tolerance`:
    1e-2 at a 40 % gap asked) reports a value above the LP's optimum, so that value is no
    bound; the bound the round reports, the Lagrangian of its duals, stays below the optimum
    the same LP reaches at HiGHS' own tolerance (every option priced in and one round in
    both: the bound is L(y) alone, nothing left out to lower it)."""
    one_lp = dataclasses.replace(
        ROUND, pricing_solver="ipm", pricing_churn="off", pricing_rounds=1,
        initial_options_per_job=1000,
    )  # fmt: skip
    rounds = {}
    for gap in (0.4, 0.0):
        plan = optimize(small, dataclasses.replace(one_lp, mip_rel_gap=gap))
        validate_plan(small, plan).raise_if_failed()
        jo = plan.summary["solver"]["job_options"]
        assert jo["priced_in"] == jo["all"] and jo["rounds"] == 1
        rounds[gap] = jo["per_round"][0]
        assert plan.summary["bound"] <= plan.summary["objective"] + 1e-6
    loose, exact = rounds[0.4], rounds[0.0]
    assert exact["optimal"] and not loose["optimal"]
    # the stopped solve's value overstates the optimum: taken as the bound, it would fail
    assert loose["lp"] > exact["lp"] + 1e-6 * abs(exact["lp"])
    assert loose["bound"] <= exact["lp"] + 1e-7 * abs(exact["lp"])
    assert exact["bound"] == pytest.approx(exact["lp"], rel=1e-6)
