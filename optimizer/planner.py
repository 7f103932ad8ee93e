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
from optimizer.model.rounding import fix_integers, round_devices
from optimizer.plan import Plan, Schedule, assemble_plan
from optimizer.scenario.types import Scenario
from optimizer.solve import ProgressFn, SolverSettings, new_highs, resolve_fixed, solve_loaded

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
    n_devices = m.vars["v_devices"].size
    rounding = settings.integer_devices == "round" or (
        settings.integer_devices == "auto" and n_devices > settings.exact_device_limit
    )
    m.vars["v_devices"].integer = not rounding
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

    start_sched = _schedule_of(warm_start) or _best_start(sc, baseline_scheds["greedy"])
    start = solution_from_schedule(m, d, start_sched)
    phase("solve")
    res = solve_loaded(h, m, col_map, settings, start=start, progress=progress, cancel=cancel)
    timings["solve"] = res.timings_s["solve"]
    if res.status == "interrupted":
        raise SolveCancelled("the solve was cancelled")

    solver: dict[str, Any] = res.info() | {
        "settings": settings.as_dict(),
        "fixed_cost_cny": m.fixed_cost,
        "integer_devices": "rounded" if rounding else "exact",
    }
    x, status = res.x, res.status
    if rounding and x is not None and status in ("optimal", "feasible"):
        phase("rounding")
        t = time.perf_counter()
        x, status = _round_and_resolve(h, m, d, col_map, x, res, solver, settings)
        timings["rounding"] = time.perf_counter() - t

    phase("extract")
    t = time.perf_counter()
    # the solver sees only what decisions can change; put the fixed penalties back
    for key in ("objective_cny", "bound_cny"):
        if solver[key] is not None:
            solver[key] += m.fixed_cost
    if x is not None and status in ("optimal", "feasible"):
        sched = schedule_from_solution(m, d, x)
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


def _round_and_resolve(
    h: Any,
    m: Any,
    d: Any,
    col_map: Any,
    x: Any,
    res: Any,
    solver: dict[str, Any],
    settings: SolverSettings,
) -> tuple[Any, str]:
    """Whole inference devices, then the LP of everything else with every integer fixed.

    The objective is the re-solved LP's; the bound stays the relaxed MILP's dual bound,
    valid for the full MILP; the gap is recomputed from the two.
    """
    devices = round_devices(m, d, x)
    lb, ub = fix_integers(m, x, devices)
    x2, obj2, term = resolve_fixed(h, m, col_map, lb, ub)
    solver["rounding_termination"] = term
    if x2 is None or obj2 is None:
        # cannot happen with devices rounded within capacity and power; keep the relaxed
        # plan's jobs and fall back honestly rather than report a plan we cannot check
        return None, "fallback"
    solver["relaxed_objective_cny"] = solver["objective_cny"]
    solver["objective_cny"] = obj2
    bound = solver["bound_cny"]
    gap = (obj2 - bound) / abs(obj2) if bound is not None and obj2 else None
    solver["gap"] = gap
    optimal = res.status == "optimal" and gap is not None and gap <= settings.mip_rel_gap
    return x2, "optimal" if optimal else "feasible"


def _best_start(sc: Scenario, greedy: Schedule) -> Schedule:
    """The better of the greedy plan and a big-jobs-first greedy, as HiGHS' first incumbent."""
    big = plan_baseline(sc, "greedy", order="big_first")
    objective = {
        id(s): assemble_plan(sc, s, status="start").summary["objective_cny"] for s in (greedy, big)
    }
    return min((greedy, big), key=lambda s: objective[id(s)])


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
