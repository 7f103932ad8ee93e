"""The optimizer's entry point: a `Scenario` in, a checked-ready `Plan` out.

Build, hand-over, solve and extract are separate, timed phases; the greedy and
carbon-agnostic baselines are planned alongside, the greedy plan seeds HiGHS as a first
incumbent (or a previous plan does, for a warm re-solve), and if HiGHS finds no plan at
all the greedy plan is returned, flagged `fallback`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from optimizer.baselines import plan_baseline
from optimizer.model import matrix_backend, pyomo_backend
from optimizer.model.build import build_model
from optimizer.model.extract import schedule_from_solution, solution_from_schedule
from optimizer.plan import Plan, Schedule, assemble_plan
from optimizer.scenario.types import Scenario
from optimizer.solve import ProgressFn, SolverSettings, new_highs, solve_loaded

BASELINES = ("greedy", "carbon_agnostic")


class SolveCancelled(RuntimeError):
    """The solve was cancelled before it produced a plan."""


def optimize(
    sc: Scenario,
    settings: SolverSettings | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    warm_start: Plan | Schedule | None = None,
    validate_s: float = 0.0,
) -> Plan:
    """Plan `sc`: solve the MILP and report its KPIs beside the baselines'."""
    settings = settings or SolverSettings()
    t_all = time.perf_counter()
    timings: dict[str, float] = {"validate": validate_s}

    def phase(name: str) -> None:
        if progress is not None:
            progress({"phase": name, "elapsed_s": time.perf_counter() - t_all})

    phase("baselines")
    t = time.perf_counter()
    baseline_scheds = {name: plan_baseline(sc, name) for name in BASELINES}  # type: ignore[arg-type]
    timings["baselines"] = time.perf_counter() - t

    phase("build")
    t = time.perf_counter()
    m, d = build_model(sc, tight=settings.tight)
    timings["build_arrays"] = time.perf_counter() - t
    h = new_highs(settings)
    if settings.backend == "pyomo":
        t = time.perf_counter()
        pm = pyomo_backend.to_pyomo(m)
        timings["build_pyomo"] = time.perf_counter() - t
        phase("handover")
        t = time.perf_counter()
        col_map = pyomo_backend.to_highs(m, pm, h)
        timings["handover"] = time.perf_counter() - t
        del pm
    else:
        phase("handover")
        t = time.perf_counter()
        col_map = matrix_backend.to_highs(m, h)
        timings["handover"] = time.perf_counter() - t
    timings["build"] = timings["build_arrays"] + timings.get("build_pyomo", 0.0)

    start_sched = _schedule_of(warm_start) or baseline_scheds["greedy"]
    start = solution_from_schedule(m, d, start_sched)
    phase("solve")
    res = solve_loaded(h, m, col_map, settings, start=start, progress=progress, cancel=cancel)
    timings["solve"] = res.timings_s["solve"]
    if res.status == "interrupted":
        raise SolveCancelled("the solve was cancelled")

    phase("extract")
    t = time.perf_counter()
    solver: dict[str, Any] = res.info() | {
        "settings": settings.as_dict(),
        "fixed_cost_cny": m.fixed_cost,
    }
    # the solver sees only what decisions can change; put the fixed penalties back
    for key in ("objective_cny", "bound_cny"):
        if solver[key] is not None:
            solver[key] += m.fixed_cost
    if res.x is not None and res.status in ("optimal", "feasible"):
        sched = schedule_from_solution(m, d, res.x)
        status = res.status
    else:
        sched = baseline_scheds["greedy"]
        status = "fallback"
        solver["fallback_reason"] = (
            f"HiGHS returned no plan ({res.termination}); this is the greedy plan"
        )
    plan = assemble_plan(
        sc, sched, status=status, solver=solver, model_size=m.size(), planner="milp"
    )
    timings["extract"] = time.perf_counter() - t
    for name, bs in baseline_scheds.items():
        bp = assemble_plan(sc, bs, status="baseline", planner=name)
        plan.summary["baselines"][name] = bp.kpis()
    timings["total"] = time.perf_counter() - t_all + validate_s
    plan.summary["timings_s"] = timings
    return plan


def _schedule_of(warm: Plan | Schedule | None) -> Schedule | None:
    if warm is None:
        return None
    if isinstance(warm, Schedule):
        return warm
    return warm.schedule


def baseline_plan(sc: Scenario, name: str) -> Plan:
    """One baseline as a full plan (tables and KPIs)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return assemble_plan(sc, plan_baseline(sc, name), status="baseline", planner=name)  # type: ignore[arg-type]
