"""The benchmark's measurements, one function per task. Each takes plain data (the size, a
few parameters, a work directory) and returns a JSON-able dict, so the harness can run it
in a fresh subprocess (peak memory per task) or in-process (the test)."""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import changes, handover, lp, machine
from bench.sizes import Size, timed_scenario
from optimizer import SolverSettings, baseline_plan, optimize
from optimizer.model import matrix_backend, pyomo_backend
from optimizer.model.build import build_model
from optimizer.plan import Plan, Schedule
from optimizer.planner import BASELINES
from optimizer.scenario.types import Scenario
from optimizer.solve import new_highs
from optimizer.validate import validate_plan
from optimizer.whatif import apply_overrides

BASE_SCHEDULE = "base-schedule.pkl"  # the MILP plan of a size, for the warm re-solves
TRACE_POINTS = 200  # progress points kept per solve (HiGHS reports every few hundred ms)
SAME_OBJECTIVE_RTOL = 1e-6  # two loads of one model: their LP optima must agree to this
# above this many columns the builds task compares the two loads array by array only:
# solving both LP relaxations would take as long as the lp task, twice (minutes at L)
LP_CHECK_MAX_VARIABLES = 200_000


def settings_for(size: Size, **changes_: Any) -> SolverSettings:
    """The benchmark's solver settings: one thread (the 2-core target machine, other work
    beside it), a fixed seed, the size's gap target and generous time limit."""
    base: dict[str, Any] = {
        "time_limit_s": size.time_limit_s,
        "mip_rel_gap": size.gap_target,
        "threads": 1,
        "seed": 0,
        "backend": "pyomo",
    }
    return SolverSettings(**(base | changes_))


# ----------------------------------------------------------------------------- plans
def check(sc: Scenario, plan: Plan) -> dict[str, Any]:
    """The independent validator's verdict on `plan`."""
    report = validate_plan(sc, plan)
    return {
        "validated": report.ok,
        "violations": len(report.violations),
        "first_violations": [str(v) for v in report.violations[:5]],
        "check_s": report.elapsed_s,
    }


def plan_record(sc: Scenario, plan: Plan) -> dict[str, Any]:
    """KPIs of a plan and the validator's verdict on it."""
    return {"status": plan.status, "kpis": plan.kpis.as_dict(), **check(sc, plan)}


# the planner's timing entries, grouped into the phases the benchmark reports; entries it
# adds later land in "other" until they are named here, so the phases still add up
PHASE_KEYS: dict[str, tuple[str, ...]] = {
    "validate": ("validate",),
    "baselines": ("baselines", "start"),  # the start: two more greedy plans, the best kept
    "build": ("build_arrays", "build_pyomo"),
    "handover": ("handover",),
    "solve": ("relaxation", "solve"),  # every HiGHS solve before the plan is extracted
    "extract": ("rounding", "extract"),  # rounding includes its LP re-solve
}
NOT_PHASES = ("build", "total", "check")  # sums or what comes after optimize()


def phases(timings: dict[str, float]) -> dict[str, float]:
    """The benchmark's phases from the planner's timings, plus `other` (unnamed entries).

    `build` sums the array build and the Pyomo model build of every model the planner made
    (two when it rounds devices), `handover` every hand-over; the planner's own `build`
    entry is taken before the second model and would undercount.
    """
    out = {name: sum(timings.get(k, 0.0) for k in keys) for name, keys in PHASE_KEYS.items()}
    named = {k for keys in PHASE_KEYS.values() for k in keys} | set(NOT_PHASES)
    out["other"] = sum(v for k, v in timings.items() if k not in named)
    return out


def solver_value(solver: dict[str, Any], key: str) -> Any:
    """`key` of the planner's solver summary, or of a sub-summary (e.g. its MIP solve's)."""
    if solver.get(key) is not None:
        return solver[key]
    for v in solver.values():
        if isinstance(v, dict) and v.get(key) is not None:
            return v[key]
    return None


class Trace:
    """The planner's progress events, stamped with wall time since `optimize` was called."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.points: list[dict[str, Any]] = []

    def __call__(self, ev: dict[str, Any]) -> None:
        self.points.append(
            {
                "wall_s": time.perf_counter() - self.t0,
                "phase": ev.get("phase"),
                "objective": ev.get("objective"),
                "bound": ev.get("bound"),
                "gap": ev.get("gap"),
            }
        )

    def first_gap_at_most(self, target: float) -> float | None:
        for p in self.points:
            if p["phase"] == "solve" and p["gap"] is not None and p["gap"] <= target:
                return float(p["wall_s"])
        return None

    def thinned(self) -> list[dict[str, Any]]:
        pts = self.points
        if len(pts) <= TRACE_POINTS:
            return pts
        keep = np.unique(np.linspace(0, len(pts) - 1, TRACE_POINTS).round().astype(int))
        return [pts[i] for i in keep]


def solve_record(
    sc: Scenario, settings: SolverSettings, validate_s: float, **kwargs: Any
) -> tuple[Plan, dict[str, Any]]:
    """`optimize` with a progress trace; the plan, and what the benchmark records of it."""
    trace = Trace()
    t = time.perf_counter()
    plan = optimize(sc, settings, progress=trace, validate_s=validate_s, **kwargs)
    wall_s = time.perf_counter() - t + validate_s
    s = plan.summary
    solver = dict(s.get("solver", {}))
    solver.pop("settings", None)
    timings = dict(s.get("timings_s", {}))
    limit = settings.time_limit_s
    gap = solver.get("gap")
    rec: dict[str, Any] = {
        "settings": settings.as_dict(),
        "status": plan.status,
        "timings_s": timings,
        "phases_s": phases(timings),
        "wall_s": wall_s,
        "model_size": s.get("model_size"),
        "solver": solver,
        "objective": solver.get("objective"),
        "bound": solver.get("bound"),
        "gap": gap,
        "reached_gap_target": gap is not None and gap <= settings.mip_rel_gap + 1e-12,
        # HiGHS' own stop: its gap on the model it solved (the relaxed one when the planner
        # rounds devices afterwards), reached this long after optimize() was called
        "solver_gap_target_at_s": trace.first_gap_at_most(settings.mip_rel_gap),
        # the time limit is optimize()'s wall-clock budget (model building included)
        "over_budget_s": max(0.0, wall_s - validate_s - limit),
        "mip_start_accepted": solver_value(solver, "mip_start_accepted"),
        "optimizer_digest": machine.optimizer_digest(),
        "trace": trace.thinned(),
    }
    rec["plan"] = plan_record(sc, plan)
    rec["timings_s"]["check"] = rec["plan"]["check_s"]
    return plan, rec


def solved(
    sc: Scenario, settings: SolverSettings, validate_s: float, **kwargs: Any
) -> dict[str, Any]:
    """What the benchmark records of a solve (`solve_record` without the plan)."""
    return solve_record(sc, settings, validate_s, **kwargs)[1]


# ----------------------------------------------------------------------------- tasks
def task_milp(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    """The production path (Pyomo build) to the size's gap target; every plan validated."""
    sc, pre = timed_scenario(size)
    out: dict[str, Any] = {"scenario": _scenario_info(sc, pre)}
    out["rss_after_setup_mib"] = machine.current_rss_mib()
    plan, rec = solve_record(sc, settings_for(size), pre["validate"])
    out["milp"] = rec
    out["peak_rss_mib"] = machine.peak_rss_mib()  # before the baselines' own re-assembly
    plans: dict[str, Any] = {"milp": rec["plan"]}
    for name in BASELINES:
        bp = baseline_plan(sc, name)
        plans[name] = plan_record(sc, bp)
        # the planner's summary carries the same baseline's KPIs: they must agree
        summary_cost = plan.summary["baselines"][name]["total_cost"]
        plans[name]["matches_planner_summary"] = bool(
            np.isclose(summary_cost, bp.kpis.total_cost, rtol=1e-9, atol=1e-6)
        )
    out["plans"] = plans
    if plan.schedule is not None:
        with open(workdir / f"{size.name}-{BASE_SCHEDULE}", "wb") as f:
            pickle.dump({"fingerprint": sc.fingerprint, "schedule": plan.schedule}, f)
    return out


def task_at_target_time(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    """What is reached when the planner's wall-clock budget is the target time, less the
    scenario's validation (the target counts model building and validation)."""
    sc, pre = timed_scenario(size)
    assert size.target_s is not None
    budget = size.target_s - pre["validate"]
    rec = solved(sc, settings_for(size, time_limit_s=budget), pre["validate"])
    rec["target_s"] = size.target_s
    rec["within_target_s"] = size.target_s is not None and rec["wall_s"] <= size.target_s
    return {"at_target_time": rec, "peak_rss_mib": machine.peak_rss_mib()}


def task_matrix(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    """The same solve with the direct matrix build (backend="matrix")."""
    sc, pre = timed_scenario(size)
    rec = solved(sc, settings_for(size, backend="matrix"), pre["validate"])
    return {"matrix": rec, "peak_rss_mib": machine.peak_rss_mib()}


def task_builds(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    """One `build_model` model loaded into HiGHS both ways, timed; are the loads the same?

    The planner's runs time the builds inside a whole solve; this isolates them on the one
    model object. The two loaded HiGHS models are compared array by array (costs, bounds,
    integrality, the column-wise matrix), and on models up to `LP_CHECK_MAX_VARIABLES`
    both LP relaxations are solved as well: their optima must agree.
    """
    sc, _ = timed_scenario(size)
    t = time.perf_counter()
    m, _d = build_model(sc)
    arrays_s = time.perf_counter() - t
    settings = settings_for(size)
    h_mat = new_highs(settings)
    t = time.perf_counter()
    matrix_backend.to_highs(m, h_mat)
    matrix_handover_s = time.perf_counter() - t
    t = time.perf_counter()
    pm = pyomo_backend.to_pyomo(m)
    pyomo_build_s = time.perf_counter() - t
    h_pyo = new_highs(settings)
    t = time.perf_counter()
    col_map = pyomo_backend.to_highs(m, pm, h_pyo)
    pyomo_handover_s = time.perf_counter() - t
    del pm
    dims = {name: handover._dims(h) for name, h in (("matrix", h_mat), ("pyomo", h_pyo))}
    identical = bool(
        np.array_equal(col_map, np.arange(m.n_cols)) and same_loaded_model(h_mat, h_pyo)
    )
    lp_opt: dict[str, float | None] = {"matrix": None, "pyomo": None}
    if m.n_cols <= LP_CHECK_MAX_VARIABLES:
        for name, h in (("matrix", h_mat), ("pyomo", h_pyo)):
            n = h.getLp().num_col_
            h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
            h.setOptionValue("time_limit", float(size.time_limit_s))
            h.run()
            lp_opt[name] = float(h.getInfo().objective_function_value)
    pyomo_total = arrays_s + pyomo_build_s + pyomo_handover_s
    matrix_total = arrays_s + matrix_handover_s
    lp_p, lp_m = lp_opt["pyomo"], lp_opt["matrix"]
    rel = abs(lp_p - lp_m) / max(1.0, abs(lp_m)) if lp_p is not None and lp_m is not None else None
    return {
        "builds": {
            "model_size": m.size(),
            "build_arrays_s": arrays_s,
            "pyomo": {
                "build_pyomo_s": pyomo_build_s,
                "handover_s": pyomo_handover_s,
                "build_plus_handover_s": pyomo_total,
                "loaded": dims["pyomo"],
                "lp_objective": lp_p,
            },
            "matrix": {
                "handover_s": matrix_handover_s,
                "build_plus_handover_s": matrix_total,
                "loaded": dims["matrix"],
                "lp_objective": lp_m,
            },
            "ratio_build_plus_handover": pyomo_total / matrix_total if matrix_total > 0 else None,
            "identical_loaded_model": identical,
            # identical loads have the same optimum by construction; solved where affordable
            "same_lp_optimum": identical if rel is None else rel <= SAME_OBJECTIVE_RTOL,
            "lp_objective_rel_diff": rel,
        },
        "peak_rss_mib": machine.peak_rss_mib(),
    }


def same_loaded_model(a: Any, b: Any) -> bool:
    """Whether two `highspy.Highs` hold the same model, array by array."""
    la, lb = a.getLp(), b.getLp()
    if la.a_matrix_.format_ != lb.a_matrix_.format_:
        return False
    pairs = [
        (getattr(la, f), getattr(lb, f))
        for f in (
            "col_cost_",
            "col_lower_",
            "col_upper_",
            "row_lower_",
            "row_upper_",
            "integrality_",
        )
    ] + [
        (getattr(la.a_matrix_, f), getattr(lb.a_matrix_, f)) for f in ("start_", "index_", "value_")
    ]
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def task_lp(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    sc, _ = timed_scenario(size)
    return {
        "lp_relaxation": lp.lp_relaxation(sc, settings_for(size)),
        "peak_rss_mib": machine.peak_rss_mib(),
    }


def task_reopt(size: Size, workdir: Path, *, change: str, **_: Any) -> dict[str, Any]:
    """The instance after `change`, solved cold and warm from the MILP task's plan."""
    sc, pre = timed_scenario(size)
    prev = _base_schedule(size, sc, workdir)
    ov = changes.overrides_for(change, sc, size)
    t = time.perf_counter()
    changed = apply_overrides(sc, ov)
    apply_s = time.perf_counter() - t
    settings = settings_for(size)
    cold = solved(changed, settings, apply_s)
    mapping = "the previous plan as given (optimize(changed, warm_start=previous))"
    raw_error = None
    try:
        warm = solved(changed, settings, apply_s, warm_start=prev)
    except Exception as e:
        # optimize() reads the previous schedule by job position and fails when jobs were
        # added; record that and warm-start from the plan re-indexed by job id instead
        raw_error = f"{type(e).__name__}: {e}"
        mapping = "re-indexed by job id (bench.changes.carry_schedule): the plain one failed"
        warm = solved(
            changed, settings, apply_s, warm_start=changes.carry_schedule(sc, prev, changed)
        )
    return {
        "reopt": {
            "change": change,
            "overrides": ov.model_dump(mode="json", exclude_defaults=True),
            "jobs_before": len(sc.jobs),
            "jobs_after": len(changed.jobs),
            "warm_start_mapping": mapping,
            "warm_start_error": raw_error,
            "cold": cold,
            "warm": warm,
            **ratios(cold, warm),
        },
        "peak_rss_mib": machine.peak_rss_mib(),
    }


def ratios(cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    """warm / cold: HiGHS time, the whole re-plan's wall time, HiGHS' time to the target."""

    def r(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    return {
        "ratio_solve": r(warm["phases_s"]["solve"], cold["phases_s"]["solve"]),
        "ratio_wall": r(warm["wall_s"], cold["wall_s"]),
        "ratio_solver_gap_target": r(
            warm["solver_gap_target_at_s"], cold["solver_gap_target_at_s"]
        ),
        "both_reached_gap_target": bool(cold["reached_gap_target"] and warm["reached_gap_target"]),
    }


def task_handover(size: Size, workdir: Path, **_: Any) -> dict[str, Any]:
    sc, _ = timed_scenario(size)
    m, _d = build_model(sc)
    t = time.perf_counter()
    pm = pyomo_backend.to_pyomo(m)
    build_s = time.perf_counter() - t
    res = handover.compare_handovers(m, pm)
    return {
        "handover": {"model_size": m.size(), "build_pyomo_s": build_s, "paths": res},
        "peak_rss_mib": machine.peak_rss_mib(),
    }


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "milp": task_milp,
    "builds": task_builds,
    "lp": task_lp,
    "at_target_time": task_at_target_time,
    "matrix": task_matrix,
    "reopt": task_reopt,
    "handover": task_handover,
}


def run_task(name: str, size: Size, workdir: Path, **params: Any) -> dict[str, Any]:
    """Run one task; an exception is recorded (with its traceback), never raised, so one
    failing measurement does not lose the rest of a long run."""
    t = time.perf_counter()
    try:
        out = TASKS[name](size, workdir, **params)
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["task_wall_s"] = time.perf_counter() - t
    return out


# ----------------------------------------------------------------------------- helpers
def _scenario_info(sc: Scenario, pre: dict[str, float]) -> dict[str, Any]:
    return {
        "name": sc.name,
        "fingerprint": sc.fingerprint,
        "sites": len(sc.sites),
        "hours": sc.hours,
        "jobs": len(sc.jobs),
        "services": len(sc.services),
        "generate_s": pre["generate"],
        "validate_s": pre["validate"],
    }


def _base_schedule(size: Size, sc: Scenario, workdir: Path) -> Schedule:
    """The MILP task's plan of this instance; solved here if that task left none."""
    path = workdir / f"{size.name}-{BASE_SCHEDULE}"
    if path.is_file():
        with open(path, "rb") as f:
            saved = pickle.load(f)
        if saved["fingerprint"] == sc.fingerprint:
            return saved["schedule"]
    plan = optimize(sc, settings_for(size))
    assert plan.schedule is not None
    return plan.schedule
