"""The optimizer's entry point: a `Scenario` in, a `Plan` out.

Build, hand-over, solve and extract are separate, timed phases; the greedy and
carbon-agnostic baselines are planned alongside; the better of two greedy plans seeds HiGHS
as a first incumbent (or a previous plan does, for a warm re-solve); if HiGHS finds no plan
at all the greedy plan is returned, flagged `fallback`.

Two solve strategies (`SolverSettings.integer_devices`):

* exact: the whole MILP in one solve, inference devices integer.
* round (large instances): the MILP with inference devices continuous and interchangeable
  services merged, giving the job plan and a valid bound; then devices are rounded to whole
  ones (`optimizer.model.rounding`) and the rest re-solved as an LP with the job plan and
  the devices fixed. The gap is measured between the final plan and the first solve's bound.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from optimizer.baselines import plan_baseline
from optimizer.heuristics import lp_guided_jobs, relax_small_jobs
from optimizer.model import matrix_backend, pyomo_backend
from optimizer.model.build import build_from_sets
from optimizer.model.core import LinearModel
from optimizer.model.extract import (
    jobs_from_solution,
    services_and_energy_from_solution,
    solution_from_schedule,
)
from optimizer.model.rounding import device_bounds, disaggregate, round_devices
from optimizer.model.sets import JobOptions, ModelData, all_job_options, build_sets
from optimizer.plan import Plan, Schedule, assemble_plan, busy_devices, schedule_from_plan
from optimizer.scenario.types import Scenario
from optimizer.solve import (
    ProgressFn,
    SolverSettings,
    new_highs,
    resolve_fixed,
    solve_loaded,
)

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
    every = all_job_options(sc)
    d = build_sets(sc, tight=settings.tight, all_options=every)
    n_devices = _device_count(d)
    rounding = settings.integer_devices == "round" or (
        settings.integer_devices == "auto" and n_devices > settings.exact_device_limit
    )
    if rounding:
        d = build_sets(sc, tight=settings.tight, aggregate_services=True, all_options=every)
    m = build_from_sets(d)
    m.vars["v_devices"].integer = not rounding
    timings["build_arrays"] = time.perf_counter() - t
    h, col_map = _hand_over(m, settings, timings)
    timings["build"] = timings["build_arrays"] + timings.get("build_pyomo", 0.0)

    start_sched = _schedule_of(sc, warm_start) or _best_start(sc, baseline_scheds["greedy"])
    solver: dict[str, Any] = {
        "settings": settings.as_dict(),
        "integer_devices": "rounded" if rounding else "exact",
        "serving_units": int(d.unit_demand.shape[0]),
    }
    if rounding:
        sched, status, termination = _solve_rounding(
            sc,
            m,
            d,
            h,
            col_map,
            settings,
            start_sched,
            solver,
            timings,
            phase,
            progress,
            cancel,
            t_all,
        )
    else:
        phase("solve")
        start = solution_from_schedule(m, d, start_sched)
        res = solve_loaded(h, m, col_map, settings, start=start, progress=progress, cancel=cancel)
        timings["solve"] = res.timings_s["solve"]
        if res.status == "interrupted":
            raise SolveCancelled("the solve was cancelled")
        solver |= res.info()
        status, termination = res.status, res.termination
        sched = None
        if res.x is not None and status in ("optimal", "feasible"):
            sched = Schedule.empty(sc)
            jobs_from_solution(m, d, res.x, sched)
            services_and_energy_from_solution(m, d, res.x, sched)

    phase("extract")
    t = time.perf_counter()
    # the solver sees only what decisions can change; put the penalties no decision can
    # change (work that can run nowhere) back, so objective and bound compare with the plan's
    solver["fixed_cost_cny"] = m.fixed_cost
    for key in ("objective_cny", "bound_cny"):
        if solver[key] is not None:
            solver[key] += m.fixed_cost
    if sched is None:
        sched = baseline_scheds["greedy"]
        status = "fallback"
        solver["fallback_reason"] = (
            f"HiGHS returned no plan ({termination}); this is the greedy plan"
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


def _device_count(d: ModelData) -> int:
    """Inference device variables of the whole-device model (unit options x hours served)."""
    served = d.unit_demand.sum(axis=1) > 0  # [unit, hour]
    return int(served[d.uopt_unit].sum())


def _hand_over(
    m: LinearModel, settings: SolverSettings, timings: dict[str, float]
) -> tuple[Any, np.ndarray]:
    h = new_highs(settings)
    if settings.backend == "pyomo":
        t = time.perf_counter()
        pm = pyomo_backend.to_pyomo(m)
        timings["build_pyomo"] = timings.get("build_pyomo", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        col_map = pyomo_backend.to_highs(m, pm, h)
    else:
        t = time.perf_counter()
        col_map = matrix_backend.to_highs(m, h)
    timings["handover"] = timings.get("handover", 0.0) + time.perf_counter() - t
    return h, col_map


def _solve_rounding(
    sc: Scenario,
    m: LinearModel,
    d: ModelData,
    h: Any,
    col_map: np.ndarray,
    settings: SolverSettings,
    start_sched: Schedule,
    solver: dict[str, Any],
    timings: dict[str, float],
    phase: Any,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    t_all: float,
) -> tuple[Schedule | None, str, str]:
    """The large-instance strategy: branch only where rounding is hard.

    Stage 1 is the MILP with the inference devices continuous (services merged) and the
    jobs small against their site's fleet (`relax_gang_share`) continuous too: HiGHS
    branches only on the big gangs, whose packing the LP cannot tell. Its dual bound is a
    valid bound for the full MILP. Its solution is then rounded: the big gangs as HiGHS
    placed them, the small jobs guided by their relaxed values (`optimizer.heuristics`);
    every job plan is completed the same way (`_complete`), inference and energy re-solved
    around it with whole devices. The greedy start, completed alike, is kept if better.
    """
    relax_small_jobs(m, d, settings.relax_gang_share)
    candidates: list[tuple[float, Schedule, str]] = []
    phase("rounding")
    t = time.perf_counter()
    done = _complete(sc, _jobs_only(sc, start_sched), settings)
    if done is not None:
        candidates.append((_objective(sc, done, m), done, "greedy_start"))
    timings["rounding"] = time.perf_counter() - t

    phase("solve")
    n = col_map.size
    h.changeColsIntegrality(
        n, np.arange(n, dtype=np.int32), m.integrality()[col_map].astype(np.uint8)
    )
    reserve = 0.15 * settings.time_limit_s  # to round and complete the plan after the solve
    h.setOptionValue(
        "time_limit", max(1.0, settings.time_limit_s - reserve - (time.perf_counter() - t_all))
    )
    start = solution_from_schedule(m, d, start_sched)
    res = solve_loaded(h, m, col_map, settings, start=start, progress=progress, cancel=cancel)
    timings["solve"] = res.timings_s["solve"]
    if res.status == "interrupted":
        raise SolveCancelled("the solve was cancelled")
    solver["stage1"] = res.info()
    bound = res.bound
    if res.x is not None:
        phase("rounding")
        t = time.perf_counter()
        done = _complete(sc, lp_guided_jobs(m, d, res.x), settings)
        timings["rounding"] += time.perf_counter() - t
        if done is not None:
            candidates.append((_objective(sc, done, m), done, "stage1_rounded"))
    if not candidates:
        return None, "fallback", res.termination
    objective, sched, source = min(candidates, key=lambda c: c[0])
    gap = _gap(objective, bound)
    solver |= {
        "objective_cny": objective,
        "bound_cny": bound,
        "gap": gap,
        "termination": res.termination,
        "plan_source": source,
    }
    return sched, "optimal" if gap <= settings.mip_rel_gap else "feasible", res.termination


def _gap(objective: float, bound: float | None) -> float:
    if bound is None or not objective:
        return float("inf")
    return max(0.0, (objective - bound) / abs(objective))


def _objective(sc: Scenario, sched: Schedule, m: LinearModel) -> float:
    """A plan's objective on the solver's terms (without penalties no decision can change)."""
    return float(assemble_plan(sc, sched, status="check").summary["objective_cny"]) - m.fixed_cost


def _jobs_only(sc: Scenario, sched: Schedule) -> Schedule:
    out = Schedule.empty(sc)
    out.job_site[:] = sched.job_site
    out.job_acc[:] = sched.job_acc
    out.job_hours = [h.copy() for h in sched.job_hours]
    return out


def _complete(sc: Scenario, jobs: Schedule, settings: SolverSettings) -> Schedule | None:
    """Inference and energy around a fixed job plan: an LP with devices continuous (services
    merged), whole devices from it, then the LP of flows, energy and battery with them fixed."""
    job_use = busy_devices(sc, jobs)  # the schedule holds jobs only
    every = (
        JobOptions.empty(),
        [[] for _ in sc.jobs],
        np.zeros(len(sc.jobs)),
        np.zeros(len(sc.jobs)),
    )
    d1 = build_sets(sc, aggregate_services=True, fixed_job_use=job_use, all_options=every)
    m1 = build_from_sets(d1)
    m1.vars["v_devices"].integer = False
    stage: dict[str, float] = {}  # timed as a whole under "rounding"
    h1, cm1 = _hand_over(m1, settings, stage)
    x1, _, _ = resolve_fixed(h1, m1, cm1, *m1.bounds())
    if x1 is None:
        return None
    devices, flows = disaggregate(m1, d1, x1)
    d2 = build_sets(sc, fixed_job_use=job_use, all_options=every)
    whole = round_devices(d2, job_use, devices, flows)
    m2 = build_from_sets(d2)
    h2, cm2 = _hand_over(m2, settings, stage)
    x2, _, _ = resolve_fixed(h2, m2, cm2, *device_bounds(m2, d2, whole))
    if x2 is None:
        return None
    sched = _jobs_only(sc, jobs)
    services_and_energy_from_solution(m2, d2, x2, sched)
    return sched


def _best_start(sc: Scenario, greedy: Schedule) -> Schedule:
    """The better of the greedy plan and a big-jobs-first greedy, as HiGHS' first incumbent."""
    big = plan_baseline(sc, "greedy", order="big_first")
    objective = {
        id(s): assemble_plan(sc, s, status="start").summary["objective_cny"] for s in (greedy, big)
    }
    return min((greedy, big), key=lambda s: objective[id(s)])


def _schedule_of(sc: Scenario, warm: Plan | Schedule | None) -> Schedule | None:
    if warm is None:
        return None
    if isinstance(warm, Schedule):
        return warm
    if warm.schedule is not None and warm.summary.get("scenario_fingerprint") == sc.fingerprint:
        return warm.schedule
    return schedule_from_plan(sc, warm)  # a stored plan, or one made for other data


def baseline_plan(sc: Scenario, name: str) -> Plan:
    """One baseline as a full plan (tables and KPIs)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return assemble_plan(sc, plan_baseline(sc, name), status="baseline", planner=name)  # type: ignore[arg-type]
