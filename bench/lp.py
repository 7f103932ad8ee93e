"""The LP relaxation of the model: `build_model`, every integer relaxed, solved by HiGHS.

Its optimum is a lower bound on every plan's objective (the MILP's, the baselines'); the
benchmark reports it beside them, with the cost, emissions and green share of its
(fractional, so not checkable) solution. It lives here for now; if the service wants a
bound without a MILP solve, it belongs in `optimizer.solve`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from optimizer.model import matrix_backend
from optimizer.model.build import build_model
from optimizer.model.core import LinearModel
from optimizer.scenario.types import Scenario
from optimizer.solve import SolverSettings, new_highs, solve_loaded

KG_PER_T = 1000.0
# cost categories of the objective that the plans' total_cost counts; the others
# (unplaced work, unmet demand, policy violations) are its penalty
COST_CATEGORIES = ("grid_energy", "green_energy", "carbon", "migration", "data_transfer")
ENERGY_CATEGORIES = ("grid_energy", "green_energy")


def lp_relaxation(sc: Scenario, settings: SolverSettings) -> dict[str, Any]:
    """Solve the LP relaxation of `sc`'s model; its bound, timings and KPIs."""
    t = time.perf_counter()
    m, _ = build_model(sc, tight=settings.tight)
    for block in m.vars.values():
        block.integer = False
    build_s = time.perf_counter() - t
    h = new_highs(settings)
    t = time.perf_counter()
    col_map = matrix_backend.to_highs(m, h)
    handover_s = time.perf_counter() - t
    res = solve_loaded(h, m, col_map, settings)
    out: dict[str, Any] = {
        "termination": res.termination,
        "status": res.status,
        "timings_s": {"build": build_s, "handover": handover_s, "solve": res.timings_s["solve"]},
        "model_size": m.size(),
        "objective": None,
        "bound": None,
        "kpis": None,
    }
    if res.x is None or res.objective is None:
        return out
    # the solver sees only what decisions can change; the fixed penalties are added back as
    # the planner does, so the bound compares with the plans' objective
    out["objective"] = res.objective + m.fixed_cost
    out["bound"] = out["objective"] if res.status == "optimal" else None
    out["kpis"] = lp_kpis(sc, m, res.x)
    out["kpis"]["objective"] = out["objective"]
    out["kpis"]["penalty"] = out["objective"] - out["kpis"]["total_cost"]
    return out


def lp_kpis(sc: Scenario, m: LinearModel, x: np.ndarray) -> dict[str, Any]:
    """Cost, emissions (both accountings) and green share of a fractional solution, computed
    as `optimizer.plan` computes them for a plan: grid and green per site and hour."""
    costs = m.cost_breakdown(x)
    out: dict[str, Any] = {
        "total_cost": float(sum(costs.get(c, 0.0) for c in COST_CATEGORIES)),
        "energy_cost": float(sum(costs.get(c, 0.0) for c in ENERGY_CATEGORIES)),
    }
    grid = _values(m, "v_grid_mw", x)
    green = _values(m, "v_green_mw", x)
    fac = _values(m, "v_facility_mw", x)
    if grid is None or green is None or fac is None:
        out.update(emissions_t=None, emissions_location_t=None, green_share=None)
        return out
    ci = np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float).reshape(-1)  # site-major, as v_grid_mw
    out["emissions_t"] = float(np.dot(grid, ci) / KG_PER_T)
    out["emissions_location_t"] = float(np.dot(grid + green, ci) / KG_PER_T)
    out["green_share"] = float(green.sum() / fac.sum()) if fac.sum() > 0 else 0.0
    out["grid_mwh"] = float(grid.sum())
    out["green_mwh"] = float(green.sum())
    return out


def _values(m: LinearModel, name: str, x: np.ndarray) -> np.ndarray | None:
    block = m.vars.get(name)
    return None if block is None else np.maximum(block.values(x), 0.0)
