"""The optimizer's entry point: a `Scenario` in, a `Plan` out.

Build, hand-over, solve and extract are separate, timed phases; the greedy and
carbon-agnostic baselines are planned alongside; the best of three greedy plans seeds HiGHS
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

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import highspy
import numpy as np
import pandas as pd

from optimizer import choose, flexible, guard
from optimizer.baselines import plan_baseline, repair_start
from optimizer.heuristics import (
    compact_pauses,
    insert_unplaced,
    lp_guided_jobs,
    relax_small_jobs,
)
from optimizer.model import dual_bound, matrix_backend, pricing, pyomo_backend
from optimizer.model.build import build_from_sets
from optimizer.model.core import LinearModel
from optimizer.model.energy import TIEBREAK_CNY_PER_T
from optimizer.model.extract import (
    jobs_from_solution,
    services_and_energy_from_solution,
    solution_from_schedule,
)
from optimizer.model.jobs import chains_long_blocks
from optimizer.model.replicas import share_among_services, trim_devices
from optimizer.model.rounding import (
    device_bounds,
    disaggregate,
    hold_through_dips,
    round_devices,
)
from optimizer.model.sets import JobOptions, ModelData, all_job_options, build_sets
from optimizer.plan import (
    Plan,
    Schedule,
    assemble_plan,
    busy_devices,
    schedule_from_plan,
)
from optimizer.plan.assemble import facility_mw, plan_objective, site_energy
from optimizer.rules import (
    device_busy_mw,
    replica_changes,
    replica_min_up_hours,
    replica_start_cost_cny,
)
from optimizer.scenario.types import Scenario
from optimizer.solve import (
    Beside,
    ProgressFn,
    SolverSettings,
    core_free,
    interrupt_when,
    lp_workers,
    new_highs,
    resolve_fixed,
    solve_loaded,
    solve_relaxation,
    warm_beside,
)
from optimizer.units import KG_PER_T

BASELINES = ("greedy", "carbon_agnostic")
# CNY: a plan this close to its bound is proven whatever the gap asked for (HiGHS' own
# `mip_abs_gap` default, which ends its MIP the same way)
GAP_ABS_CNY = 1e-6
log = logging.getLogger(__name__)


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
    extra_baselines: dict[str, Schedule] | None = None,
    baseline_schedules: Beside[dict[str, Schedule]] | None = None,
) -> Plan:
    """Plan `sc`: solve the MILP and report its KPIs beside the baselines'.

    `baseline_schedules`: the `BASELINES` for `sc` from the caller (the lanes of
    `flexible.plan_flexible`, which states them on the original jobs after), else planned
    here (`plan_baselines`); a warm re-solve with a core free queues them on the thread
    beside pricing's long first LP (`Beside`).

    The plan returned is the best, by the objective with penalties, of the solver's plan,
    the start handed to it and every baseline (`optimizer.choose`); `extra_baselines` (e.g.
    the cost-only optimiser's plan, `optimize_beside_cost_only`) are reported and compete too
    (with short jobs planned in lanes they are reported and compared, not competing: a
    schedule of the scenario's own jobs does not fit the lanes, `flexible.plan_flexible`).
    """
    settings = settings or SolverSettings()
    flex = flexible.plan_flexible(
        sc, settings, optimize, plan_baselines, progress=progress, cancel=cancel,
        warm_start=warm_start, validate_s=validate_s, extra_baselines=extra_baselines,
    )  # fmt: skip
    if flex is not None:
        return flex  # short jobs planned as flexible load (optimizer/flexible.py)
    t_all = time.perf_counter()
    timings: dict[str, float] = {"validate": validate_s}

    def phase(name: str) -> None:
        if progress is not None:
            progress({"phase": name, "elapsed_s": time.perf_counter() - t_all})

    phase("baselines")
    t = time.perf_counter()
    pending = baseline_schedules
    if pending is None:
        pending = plan_baselines(sc, settings, warm_start)
    if not pending.beside:
        pending.result()  # here and now: a cold solve's start is the best greedy plan
    timings["baselines"] = time.perf_counter() - t

    phase("build")
    t = time.perf_counter()
    every = all_job_options(sc)
    d = build_sets(sc, tight=settings.tight, all_options=every)
    too_large = _large_instance(d, settings)  # why, or None
    rounding = settings.integer_devices == "round" or (
        settings.integer_devices == "auto" and too_large is not None
    )
    timings["build_arrays"] = time.perf_counter() - t
    phase("start")
    t = time.perf_counter()
    start_sched = _start(sc, warm_start, lambda: pending.result()["greedy"])
    timings["start"] = time.perf_counter() - t
    solver: dict[str, Any] = {
        "settings": settings.as_dict(),
        "integer_devices": "rounded" if rounding else "exact",
        "large_instance": too_large,
    }
    warm_gap = _warm_gap(settings, warm_start)
    if warm_start is not None:
        solver["warm"] = {
            "reference_gap": _reference_gap(warm_start),
            "settles_for": warm_gap,
            "guard_weights": _guard_weights(warm_start),
            "starts_lp_s": _starts_lp_s(warm_start),
        }
    duals = _Duals(previous=_pricing_duals(warm_start))
    if rounding:
        sched, status, termination, m = _solve_rounding(
            sc,
            every,
            settings,
            start_sched,
            solver,
            timings,
            phase,
            progress,
            cancel,
            t_all,
            warm_gap=warm_gap,
            previous=_schedule_of(sc, warm_start) if settings.warm_skip_stage1 else None,
            duals=duals,
            at_first_lp=pending.start,
        )
    else:
        sched, status, termination, m = _solve_exact(
            d, settings, start_sched, solver, timings, phase, progress, cancel, t_all
        )
    timings["build"] = timings["build_arrays"] + timings.get("build_pyomo", 0.0)

    phase("extract")
    t = time.perf_counter()
    baseline_scheds = pending.result()  # the wait for them, where planned beside the solve
    timings["baselines"] += time.perf_counter() - t
    t = time.perf_counter()
    # the solver sees only what decisions can change; put the penalties no decision can
    # change (work that can run nowhere) back, so objective and bound compare with the plan's
    solver["fixed_cost"] = m.fixed_cost
    plan = _returned_plan(
        sc,
        settings,
        m,
        (sched, status, termination),
        solver,
        start_sched,
        {**baseline_scheds, **(extra_baselines or {})},
        t_all + settings.time_limit_s,
    )
    if duals.kept is not None:
        plan = dataclasses.replace(plan, pricing_duals=duals.kept)
    timings["extract"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all + validate_s
    plan.summary["timings_s"] = timings
    return plan


def _solve_exact(
    d: ModelData,
    settings: SolverSettings,
    start_sched: Schedule,
    solver: dict[str, Any],
    timings: dict[str, float],
    phase: Callable[[str], None],
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    t_all: float,
) -> tuple[Schedule | None, str, str, LinearModel]:
    """The whole MILP with whole devices, solved by HiGHS from `start_sched` (small sizes)."""
    t = time.perf_counter()
    m = build_from_sets(d)
    timings["build_arrays"] += time.perf_counter() - t
    h, col_map = _hand_over(m, settings, timings)
    phase("solve")
    h.setOptionValue("time_limit", _remaining(settings, t_all))
    start = solution_from_schedule(m, d, start_sched)
    res = solve_loaded(h, m, col_map, settings, start=start, progress=progress, cancel=cancel)
    timings["solve"] = res.timings_s["solve"]
    if res.status == "interrupted":
        raise SolveCancelled("the solve was cancelled")
    solver |= res.info()
    sched = None
    if res.x is not None and res.status in ("optimal", "feasible"):
        sched = Schedule.empty(d.sc)
        jobs_from_solution(m, d, res.x, sched)
        services_and_energy_from_solution(m, d, res.x, sched)
    return sched, res.status, res.termination, m


def _returned_plan(
    sc: Scenario,
    settings: SolverSettings,
    m: LinearModel,
    solved: tuple[Schedule | None, str, str],
    solver: dict[str, Any],
    start_sched: Schedule,
    baselines: dict[str, Schedule],
    deadline: float,
) -> Plan:
    """The plan `optimize` returns: the best by objective (penalties included) of the
    solver's plan, the start it was handed and every baseline (`optimizer.choose.pick`),
    with whether it dominates each baseline at equal work (`solver.dominance`).

    `summary.origin` says which came back (`improved`, `start`, `baseline:<name>`); with a
    plan other than the solver's, the solver's objective and gap are the returned plan's
    (its own objective is kept as `solver.solver_objective`), and the status says whether
    that plan is within the gap asked for (`fallback` if HiGHS returned no plan at all).
    Where it does not dominate every baseline, the dominance guard may replace it (`_guarded`).
    """
    sched, status, termination = solved
    found: list[choose.Candidate] = []
    if sched is not None:
        found.append(_candidate(sc, choose.IMPROVED, sched))
    named = {n: _candidate(sc, choose.baseline_origin(n), b) for n, b in baselines.items()}
    found += [*named.values(), _candidate(sc, choose.START, start_sched)]
    best = choose.pick_keeping_rules(sc, found)
    solver["origin_objectives"] = {c.origin: c.objective for c in found}
    best = _guarded(sc, settings, best, named, solver, deadline, passed_over=found)
    base_kpis = {n: c.plan.kpis.as_dict() for n, c in named.items()}
    solver["dominance"] = choose.dominance_report(sc, best, named)
    if best.schedule is not sched:
        tiebreak = TIEBREAK_CNY_PER_T * best.plan.summary["emissions_t"]
        solver["solver_objective"] = solver.get("objective")
        # on the solver's terms (decisions only, the ties-go-green term in), as its own
        solver["objective"] = best.objective - m.fixed_cost + tiebreak
        gap = _gap(solver["objective"], solver.get("bound"))
        solver["gap"] = gap if np.isfinite(gap) else None
        if sched is None or status == "fallback":
            status = "fallback"
            solver["fallback_reason"] = (
                f"HiGHS returned no plan ({termination}); this is the {best.origin} plan"
            )
        else:
            status = "optimal" if gap <= settings.mip_rel_gap else "feasible"
    for key in ("objective", "bound"):
        if solver.get(key) is not None:
            solver[key] += m.fixed_cost
    _remove_tiebreak(sc, best.schedule, solver)
    plan = assemble_plan(
        sc, best.schedule, status=status, solver=solver, model_size=m.size(), planner="milp"
    )
    plan.summary["origin"] = best.origin
    plan.summary["baselines"] |= base_kpis
    return plan


def _guarded(
    sc: Scenario,
    settings: SolverSettings,
    best: choose.Candidate,
    baselines: dict[str, choose.Candidate],
    solver: dict[str, Any],
    deadline: float,
    passed_over: Sequence[choose.Candidate] = (),
) -> choose.Candidate:
    """`best`, or the plan the dominance guard finds (`optimizer.guard`: origin `guard`)
    if `best` does not dominate every baseline at equal work and one does: around its jobs
    first, then around those of the cheapest candidates `passed_over` doing its work.

    After the budget, on a clock of its own, none of its completions started where it is
    expected to end past that clock; with `finish_by_limit`, within the budget (`deadline`),
    each job plan's completions only where expected to end within its share. A completion is
    expected to take as long as the churn-aware pass did (the same LPs), or a plain
    completion."""
    if settings.dominance_guard_rounds <= 0 or not baselines:
        return best
    churn = _churn_priced(sc)

    def complete(shadow: Scenario, jobs: Schedule) -> Schedule | None:
        return _complete(shadow, jobs, settings, churn_aware=churn)

    round_s = expected = None
    took = solver.get("completion_s", {})
    measured = took.get("churn_aware" if churn else "plain")
    if settings.finish_by_limit:
        t_end = deadline
        round_s = measured or took.get("estimate", 0.0)
    else:
        # at most as long again as the solve's own budget: a short what-if stays short; no
        # completion starts that is expected to take longer than what is left of that
        t_end = time.perf_counter() + min(settings.dominance_guard_s, settings.time_limit_s)
        expected = measured
    others = sorted(
        (
            c
            for c in passed_over
            if c is not best and choose.does_work_of(c.plan.summary, best.plan.summary)
        ),
        key=lambda c: c.objective,
    )[: guard.OTHERS]
    # a warm re-solve searches from the weights that made the previous plan dominate; where
    # the solver's plan is its jobs completed at those weights, that plan is the first try
    seed = solver.get("warm", {}).get("guard_weights")
    made = seed is not None and best.origin == choose.IMPROVED
    made = made and solver.get("plan_weights") == seed
    found, record = guard.repair(
        sc, best, baselines, complete, settings.dominance_guard_rounds, t_end, others, round_s,
        seed, seed_made=made, expected_s=expected,
    )  # fmt: skip
    record["from"] = best.origin
    solver["guard"] = record
    if found is None:
        return best
    solver["origin_objectives"][found.origin] = found.objective
    return found


def _guard_weights(warm: Plan | Schedule) -> dict[str, float] | None:
    """The weights of the guard's plan a previous plan is (`summary.origin` `guard`): the
    cheapest valid try that dominated every baseline (`solver.guard.tries`); else None."""
    if not isinstance(warm, Plan) or warm.summary.get("origin") != guard.GUARD:
        return None
    tries = [
        t
        for t in warm.summary.get("solver", {}).get("guard", {}).get("tries", [])
        if t.get("valid") and t.get("dominates") and all(t["dominates"].values())
    ]
    if not tries:
        return None
    best = min(tries, key=lambda t: float(t.get("cost", np.inf)))
    return {k: float(best["weights"][k]) for k in guard.WEIGHED}


def _pricing_duals(warm: Plan | Schedule | None) -> pd.DataFrame | None:
    """The previous plan's `pricing_duals` (None: a bare schedule, or a plan without them)."""
    if not isinstance(warm, Plan) or warm.pricing_duals.empty:
        return None
    return warm.pricing_duals


def _starts_lp_s(warm: Plan | Schedule) -> float | None:
    """How long the previous solve's first pricing LP with replica starts took, s (from its
    `solver.job_options.per_round`, whose times count from pricing's start); None for a bare
    schedule or where no such round was solved."""
    if not isinstance(warm, Plan):
        return None
    before = 0.0
    for r in warm.summary.get("solver", {}).get("job_options", {}).get("per_round", []):
        if r.get("starts"):
            return float(r["s"]) - before
        before = float(r["s"])
    return None


def _candidate(sc: Scenario, origin: str, sched: Schedule) -> choose.Candidate:
    # a plan without a solver's bound, as a baseline's is (the validator may check it)
    return choose.Candidate(origin, sched, assemble_plan(sc, sched, status="baseline"))


def _large_instance(d: ModelData, settings: SolverSettings) -> str | None:
    """Why `d` is too large for the exact MILP (`solver.large_instance`), or None: more
    whole inference devices than `exact_device_limit`, or more job-option hours (the job
    columns of the exact model) than `exact_job_hour_limit`."""
    devices = _device_count(d)
    if devices > settings.exact_device_limit:
        return f"{devices:,} inference devices > {settings.exact_device_limit:,}"
    hours = int(d.opts.window_hours.sum())
    if hours > settings.exact_job_hour_limit:
        return f"{hours:,} job-option hours > {settings.exact_job_hour_limit:,}"
    return None


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


@dataclasses.dataclass
class _Duals:
    """Pricing LP row duals (`optimizer.model.dual_bound`): the previous plan's, which a warm
    re-solve bounds with before its first LP, and those the plan returned keeps (of the LP
    that gave the better bound)."""

    previous: pd.DataFrame | None = None
    kept: pd.DataFrame | None = None


@dataclasses.dataclass
class _Run:
    """What the phases of the large-instance strategy share: the scenario, settings, clock,
    the plans completed so far (objective, schedule, name) and the record of each one."""

    sc: Scenario
    every: Any
    settings: SolverSettings
    solver: dict[str, Any]
    timings: dict[str, float]
    t_all: float
    candidates: list[tuple[float, Schedule, str]] = dataclasses.field(default_factory=list)
    tried: dict[str, float | None] = dataclasses.field(default_factory=dict)
    plain_s: float = 0.0  # the longest plain completion so far, s (`finish_by_limit`)
    duals: _Duals = dataclasses.field(default_factory=_Duals)
    # the candidates completed on the previous guard plan's shadow scenario (`_warm_shadow`)
    on_shadow: set[str] = dataclasses.field(default_factory=set)
    # set where pricing proved the kept plan: the completion beside it stops (`_Stopped`)
    stop_beside: threading.Event = dataclasses.field(default_factory=threading.Event)

    def add(self, name: str, jobs: Schedule, m: LinearModel) -> None:
        """Complete job plan `jobs` (inference and energy around it) as candidate `name`."""
        t = time.perf_counter()
        done = _complete(self.sc, jobs, self.settings)
        self.plain_s = max(self.plain_s, time.perf_counter() - t)
        if done is not None:
            self.candidates.append((_objective(self.sc, done, m), done, name))
        self.tried[name] = self.candidates[-1][0] if done is not None else None

    def best(self) -> tuple[float, Schedule, str] | None:
        return min(self.candidates, key=lambda c: c[0]) if self.candidates else None


@dataclasses.dataclass
class _Priced:
    """Pricing's outcome: the last relaxed model, its LP solution (None: not solved in
    time), the bound (-inf: none), the options priced in and whether the LP relaxed
    contiguity or kept replica starts."""

    m: LinearModel
    d: ModelData
    x: np.ndarray | None
    bound: float
    active: np.ndarray
    relaxed: bool  # solved with every option preemptible (`pricing_contiguity`)
    starts: bool  # with replica starts priced (`pricing_churn`)

    @property
    def stage1_own(self) -> bool:
        """Whether `m` can be stage 1's model where its LP was not solved in time: not where
        it relaxed contiguity or kept replica starts."""
        return not (self.relaxed or self.starts)


def _solve_rounding(
    sc: Scenario,
    every: Any,
    settings: SolverSettings,
    start_sched: Schedule,
    solver: dict[str, Any],
    timings: dict[str, float],
    phase: Any,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    t_all: float,
    warm_gap: float | None = None,
    previous: Schedule | None = None,
    duals: _Duals | None = None,
    at_first_lp: Callable[[Executor], None] | None = None,
) -> tuple[Schedule | None, str, str, LinearModel]:
    """The large-instance strategy: price options in, branch only where rounding is hard.

    1. Column generation (`_price`): the LP relaxation over a subset of the job options,
       extended with every option the duals price below zero. Its Lagrangian bound is a
       valid bound for the full MILP, and the only one reported.
    2. A warm re-solve first tries the previous plan as it stands: its jobs repaired for
       the change, its inference devices kept where they still fit, flows and energy
       re-solved (`_complete_kept`). Then the start (greedy, or the previous plan repaired)
       and the LP rounded (`optimizer.heuristics`) are completed with inference and energy
       re-solved around them with whole devices (`_complete`). Once the best is within the
       gap asked for (a warm re-solve: `_warm_gap`'s), the rest is skipped.
    3. Stage 1 (`_stage1`), over the options priced in: the MILP with inference devices
       continuous and small jobs continuous, to `stage1_gap` on its own model; its
       incumbents rounded and completed.
    4. Completion (`_improve`): the best plan's unplaced jobs inserted where room can be
       made; then the winner completed churn-aware. The gap is measured against step 1.
    """
    run = _Run(sc, every, settings, solver, timings, t_all, duals=duals or _Duals())
    solver["candidates"] = run.tried
    enough = settings.mip_rel_gap if warm_gap is None else warm_gap
    kept = None if previous is None else _kept_plan(run, start_sched, previous)
    # started as pricing's first LP is (none where the previous plan's duals prove the kept
    # plan before it: nothing would use it)
    started: list[Future[tuple[Schedule | None, str, float]] | None] = []

    def start_beside(long_lp: bool) -> None:
        # one thread beside pricing, its work in turn: the caller's (a warm re-solve's
        # baselines, `Beside`, 1.3-1.7 s on the default scenario), only beside the long first
        # LP (with the replica starts): beside a short one the completion fills the thread,
        # and the baselines ran into the solve's own Python after it (at 10 s, the outage
        # what-if 12.3 s against 10.3 s, bench/results/warm-2026-12-07-baselines-ungated-10s.md);
        # then the completion (5.2-6.9 s), wanted once pricing ends where it does not prove the
        # kept plan, and stopped where it does (`_Run.stop_beside`). Completion first, the
        # price what-if waited 0.8-1.7 s for the baselines after pricing
        # (bench/results/warm-2026-12-07-patterns-60s.md). None is started where no core is
        # free
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beside-pricing")
        if at_first_lp is not None and long_lp:
            at_first_lp(pool)
        if previous is not None:
            started.append(_warm_beside_pricing(run, start_sched, pool))
        pool.shutdown(wait=False)  # the thread ends with its work

    # a warm re-solve stops pricing once its bound proves the kept plan within `enough`
    priced = _price(
        run, start_sched, phase, None if kept is None else (kept[0], enough), start_beside
    )
    beside = started[0] if started else None
    if kept is not None:
        run.candidates.append((kept[0] - priced.m.fixed_cost, kept[1], "previous_kept"))
        run.tried["previous_kept"] = run.candidates[-1][0]

    def good() -> bool:
        best = run.best()
        return best is not None and _within(best[0], priced.bound, enough)

    term = "previous plan repaired"
    if previous is not None and not good():
        _warm_completed(run, priced.m, start_sched, beside)
        term = "previous plan repaired and completed"
    elif beside is not None:
        # pricing proved the kept plan: the completion beside it is stopped and left out, so
        # the plan is the one made where no core was free; waited for, so that no solve
        # outlives the call
        run.stop_beside.set()
        _, status, took = beside.result()
        _beside_record(run, took, used=False, status=status)
    spent = time.perf_counter() - t_all > settings.time_limit_s
    if good() or (previous is not None and spent and run.candidates):
        # the previous plan, repaired (its devices kept, or completed anew), is as close to
        # the bound as the previous plan was to its own, or the budget is spent: no
        # rounding, no stage 1 (issue 16 item 2)
        return _finish(run, priced.m, priced.bound, term, stage1_ran=False)
    m, d, reserve = _stage1_model(run, priced)
    phase("rounding")
    t = time.perf_counter()
    if previous is None:
        run.add("greedy_start", _jobs_only(sc, start_sched), m)
    if priced.x is not None and not good():
        run.add("lp_rounded", lp_guided_jobs(priced.m, priced.d, priced.x, reserve), m)
    timings["rounding"] = timings.get("rounding", 0.0) + time.perf_counter() - t
    if not good():
        _improve(run, m)
    if good():
        # the rounded LP (or the previous plan, repaired) is within the gap asked for
        term = "LP relaxation rounded" if warm_gap is None else "previous plan repaired"
        return _finish(run, m, priced.bound, term, stage1_ran=False)
    res = _stage1(run, m, d, start_sched, phase, progress, cancel)
    term = "stage 1 skipped: budget" if res is None else res.termination
    if res is not None:  # None: no time left for it in the budget (`finish_by_limit`)
        _improve(run, m)
    if not run.candidates:
        return None, "fallback", term, m
    return _finish(run, m, priced.bound, term, stage1_ran=res is not None and res.x is not None)


def _warm_completed(
    run: _Run,
    m: LinearModel,
    start_sched: Schedule,
    beside: Future[tuple[Schedule | None, str, float]] | None = None,
) -> None:
    """A warm re-solve whose kept plan missed its gap: the repaired job plan completed as a
    cold solve's winner is, churn-aware where churn is priced (its paused jobs compacted,
    `_complete(churn_aware=True)`), as candidate `warm_start_churn_aware`, before any
    rounding or stage 1: in the default scenario's what-ifs that plan won (price, outage),
    and stage 1's plans never did (bench/results/speed-2026-12-05-evening.md).

    `beside`: that completion, started beside pricing (`_warm_beside_pricing`) and waited
    for here; `solver.warm.beside_pricing` has its own seconds.

    With `finish_by_limit` it gets what the budget leaves (its device-sharing LPs a quarter
    of that) and is cut there (`status` `cut`): the kept plan, or the cold path's plain
    completions, stand. Its record ends up in `solver.churn_aware.warm_start` (`_finish`)."""
    sc = run.sc
    if not _churn_priced(sc):
        run.add("warm_start", _jobs_only(sc, start_sched), m)
        return
    t = time.perf_counter()
    if beside is None:
        done, status, took = _warm_completion(run, start_sched, run.settings)
    else:
        done, status, took = beside.result()
    name = "warm_start_churn_aware"
    w = _warm_weights(run)
    if done is not None:
        run.candidates.append((_objective(sc, done, m), done, name))
        if w is not None:
            run.on_shadow.add(name)
    run.tried[name] = run.candidates[-1][0] if done is not None else None
    # the wall time it added: beside pricing, only the wait for it once pricing ended
    run.timings["churn_aware"] = time.perf_counter() - t
    run.solver["churn_aware"] = {"status": status, "plan": "warm_start", "guard_weights": w}
    if beside is not None:
        _beside_record(run, took, used=True)
    if status == "cut":
        run.solver["churn_aware"]["note"] = (
            "the warm start's churn-aware completion ran out of what the budget left "
            "(finish_by_limit)"
        )
        log.warning("%s", run.solver["churn_aware"]["note"])


def _warm_completion(
    run: _Run, start_sched: Schedule, settings: SolverSettings, stop: threading.Event | None = None
) -> tuple[Schedule | None, str, float]:
    """`_warm_completed`'s completion (the plan, `done`/`failed`/`cut`/`stopped`, its
    seconds); reads `run` and writes nothing to it, so that it can run beside pricing, where
    `stop` stops it (`_Stopped`)."""
    sc = run.sc
    jobs = _jobs_only(sc, start_sched)
    t = time.perf_counter()
    deadline = None
    if settings.finish_by_limit:
        deadline = run.t_all + settings.time_limit_s
        settings = _sharing_within(settings, max(deadline - t, 0.0))

    def left_now() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    shadow, _ = _warm_shadow(run)
    try:
        done = _complete(
            shadow,
            compact_pauses(sc, jobs),
            settings,
            churn_aware=True,
            time_limit_s=left_now(),
            stop=stop,
        )
        if done is None:
            # compacting pauses checks devices, not power: on the +5 % jobs what-if the first
            # LP around the compacted jobs had no solution (0.2 s), around the jobs as they
            # were it had
            done = _complete(
                shadow, jobs, settings, churn_aware=True, time_limit_s=left_now(), stop=stop
            )
        status = "done" if done else "failed"
    except _Stopped:
        done, status = None, "stopped"
    except _OutOfTime:
        done, status = None, "cut"
    return done, status, time.perf_counter() - t


def _warm_beside_pricing(
    run: _Run, start_sched: Schedule, pool: Executor
) -> Future[tuple[Schedule | None, str, float]] | None:
    """A warm re-solve's churn-aware completion of the repaired job plan, queued on `pool`,
    the thread beside pricing, where a second core is free (`lp_workers`): it does not depend on
    pricing, and both are mostly HiGHS, which lets go of the GIL while it solves. Its
    device-sharing LPs then take one worker (pricing holds the other core). None: not
    churn-aware (the plain completion takes under a second), or no core free; it then runs
    after pricing, and only where pricing did not prove the kept plan."""
    if not _churn_priced(run.sc) or not core_free(run.settings):
        return None
    one = dataclasses.replace(run.settings, lp_workers=1)
    return pool.submit(_warm_completion, run, start_sched, one, run.stop_beside)


def _beside_record(run: _Run, seconds: float, *, used: bool, status: str | None = None) -> None:
    """`solver.warm.beside_pricing`: the seconds of the completion run beside pricing
    (`_warm_beside_pricing`), whether it was used (left out where pricing proved the kept
    plan) and, left out, how it ended (`stopped` where that stopped it in time)."""
    run.solver["warm"]["beside_pricing"] = {"s": round(seconds, 2), "used": used}
    if status is not None:
        run.solver["warm"]["beside_pricing"]["status"] = status


def _warm_shadow(run: _Run) -> tuple[Scenario, dict[str, float] | None]:
    """Where a warm re-solve's churn-aware completions run, and the weights: a previous plan
    the guard made is followed as the guard made it, on the shadow scenario of the weights
    that made it dominate (one completion instead of the plain one and then the guard's
    first, the guard running only where it no longer dominates); else the scenario itself."""
    w = _warm_weights(run)
    return (run.sc if w is None else guard.shadow_scenario(run.sc, w)), w


def _warm_weights(run: _Run) -> dict[str, float] | None:
    """The guard weights of the previous plan a warm re-solve starts from (`_guard_weights`)."""
    weights: dict[str, float] | None = run.solver.get("warm", {}).get("guard_weights")
    return weights


def _kept_plan(
    run: _Run, start_sched: Schedule, previous: Schedule
) -> tuple[float, Schedule] | None:
    """A warm re-solve's first plan, made before pricing so that pricing can stop as soon as
    its bound proves this plan good enough: the previous plan's jobs as repaired
    (`start_sched`) with its inference devices kept (`_complete_kept`), and its objective
    with penalties (None, recorded as such, if its LP has no solution)."""
    t = time.perf_counter()
    kept = _complete_kept(run.sc, start_sched, previous, run.settings)
    out = None
    if kept is not None:
        out = plan_objective(run.sc, kept), kept
    run.tried["previous_kept"] = None  # set to its objective on the solver's terms once priced
    run.timings["rounding"] = time.perf_counter() - t
    return out


def _price(
    run: _Run,
    start_sched: Schedule,
    phase: Any,
    incumbent: tuple[float, float] | None = None,
    before_lp: Callable[[bool], None] | None = None,
) -> _Priced:
    """Column generation over job options (`optimizer.model.pricing`), within its share of
    the budget; records what it priced in, its bound and each round under `solver`.

    `incumbent` (a warm re-solve's kept plan: its objective with penalties, and the gap it
    settles for): pricing stops at the first round whose bound (valid whenever pricing
    stops) proves that plan within that gap; each LP round costs 2-5 s on the default
    scenario, most of a warm what-if's time. A warm re-solve has a bound before its first
    LP, from the previous plan's duals (`_warm_dual_bound`), and no LP is solved where that
    proves the plan. `before_lp` is called once, as the first LP is about to be built, with
    whether it has the replica starts (the long one: on the default scenario's warm
    what-ifs pricing took 7.4-11.1 s with them at 60 s, 3.4-4.6 s without at 10 s,
    bench/results/warm-2026-12-07-baselines-*.md)."""
    sc, settings, every, t_all = run.sc, run.settings, run.every, run.t_all
    opts_all = every[0]
    gang = np.array([j.gang for j in sc.jobs], dtype=np.int64)
    phase("pricing")
    t = time.perf_counter()
    active, per_job, fits = pricing.initial_subset(
        sc,
        opts_all,
        gang,
        settings.initial_options_per_job,
        _options_of(opts_all, start_sched),
        settings.initial_window_hours,
    )
    # still over the cap with one option per job: the pricing LPs leave out the x <= y rows
    # (a weaker relaxation, still one: issue 17's 20,000-job week solved its first LP in
    # 26 s without them, 103 s with them, its value 14 % lower)
    tight = settings.tight and fits
    large = per_job < settings.initial_options_per_job or (settings.tight and not fits)
    # replica starts in the pricing LPs after the first: a tighter bound (time-coupled, so
    # by interior point), the first LP's bound kept where its budget is short (M at 10 s)
    churn = settings.pricing_churn == "on" or (
        settings.pricing_churn == "auto" and bool(sc.services) and _churn_priced(sc)
    )
    relaxed = settings.pricing_contiguity == "relaxed" or (
        settings.pricing_contiguity == "auto" and large and chains_long_blocks(sc.hours)
    )
    # every option that can run preemptible: a relaxation, so the LP value and the
    # Lagrangian bound, its reduced costs taken the same way, bound the MILP; the LP only
    # guides rounding, which keeps each job's own contiguity
    lp_opts = pricing.contiguity_relaxed(sc, opts_all, gang) if relaxed else opts_all
    bound = -np.inf
    rounds = 0
    per_round: list[dict[str, float]] = []
    stop: str | None = None
    solved: tuple[LinearModel, ModelData, np.ndarray, bool] | None = None
    # a warm re-solve whose previous solve's LP with the starts took well under the first
    # LP's share now goes straight to it: the round without them only kept a short budget's
    # bound (the default scenario: 3 s of a warm what-if's 10 s of pricing)
    starts_s = run.solver.get("warm", {}).get("starts_lp_s")
    # the duals the plan keeps: those of whichever gave the best bound (the LP's own, or
    # the previous plan's on it), with that bound
    best: tuple[float, pd.DataFrame | tuple[LinearModel, np.ndarray] | None] = (-np.inf, None)
    warm = _warm_dual_bound(run, lp_opts, active, gang, tight=tight, starts=churn)
    value = None if warm is None else warm[0]
    if warm is not None and value is not None:
        # a bound before any LP: where it proves the kept plan, no LP is solved at all
        bound, m, d = value, warm[1], warm[2]
        best = (bound, run.duals.previous)
        starts, x_lp, interior = churn, None, False
        if incumbent is not None and _within(incumbent[0] - m.fixed_cost, bound, incumbent[1]):
            stop = WARM_PROVEN
    while stop is None:
        # pricing may take at most ~45% of the time (the first LP, which gives the only
        # bound there is, up to 60%): a plan must still be made after it
        share = PRICING_SHARE if rounds else FIRST_LP_SHARE
        budget = share * settings.time_limit_s - (time.perf_counter() - t_all)
        if not rounds:
            # the only bound there is: it keeps FIRST_LP_MIN_SHARE of the budget however
            # long the phases before it took (issue 16: under load a 10 s budget left it
            # ~2 s, and the plan came without a bound); stage 1, stopped early, pays for it
            budget = max(budget, FIRST_LP_MIN_SHARE * settings.time_limit_s)
        with_starts = churn and (
            rounds > 0 or (starts_s is not None and STARTS_FIRST_MARGIN * starts_s <= budget)
        )
        if not rounds and before_lp is not None:
            before_lp(with_starts)
        if rounds and _expected_round_s(per_round, with_starts) > budget:
            # it would be cut by its share and discarded: the options entering stay in, and
            # the last LP solved stands, as after a cut round, without waiting for the cut
            stop = ROUND_NOT_IN_SHARE
            break
        starts = with_starts  # set only for a round that runs: the last solved one's after
        m, d = _pricing_lp(run, lp_opts.subset(active), tight=tight, starts=starts)
        nonzeros = m.size()["nonzeros"]
        interior = settings.pricing_solver == "ipm" or (
            settings.pricing_solver == "auto" and (large or starts or nonzeros > IPM_MIN_NONZEROS)
        )
        h, col_map = pricing_highs(m, settings, interior=interior, time_limit_s=budget)
        x_lp, z = solve_relaxation(h, m, col_map, interior=interior, stopped=True)
        rounds += 1
        if x_lp is None or z is None:
            break
        solved = m, d, x_lp, starts
        optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        # the round's bound: the Lagrangian of its duals, valid for any duals (an interior
        # point's stopped short of HiGHS' tolerance too); z only where L is unbounded and
        # the LP was solved to optimality
        y = dual_bound.usable(m, np.asarray(h.getSolution().row_dual, dtype=float))
        out = np.flatnonzero(~active)
        own, rc, _ = dual_bound.bound_of(m, sc, y, lp_opts, active, gang)
        if own is None:
            lower = z if optimal else -np.inf
            own = pricing.lagrangian_bound(
                lower, lp_opts.subset(~active), rc[~active], len(sc.jobs)
            )
        if own > best[0]:
            best = (own, (m, y))
        bound = max(bound, own)
        entering = out[rc[out] < -pricing.RC_TOL]
        per_round.append(
            {
                "s": round(time.perf_counter() - t, 2),
                "lp": z,
                "bound": bound,
                "starts": starts,
                "nonzeros": nonzeros,
                "ipm": interior,
                "optimal": optimal,  # False: an interior point stopped at _ipm_tolerance
            }
        )
        stop = _pricing_stop(
            settings,
            time.perf_counter() - t_all,
            rounds,
            entering.size,
            z,
            bound,
            incumbent,
            m.fixed_cost,
            churn and not starts,
        )
        if stop is not None:
            break
        active[entering] = True
    run.timings["pricing"] = time.perf_counter() - t
    run.solver |= {
        "serving_units": int(d.unit_demand.shape[0]),
        "job_options": {
            "all": int(opts_all.size),
            "initial_per_job": per_job,
            "tight": tight,
            "lp_solver": "ipm" if interior else "simplex",  # the last round's, solved or not
            "contiguity_relaxed": relaxed,
            # whether the bound had them: a round with them was solved
            "replica_starts": any(r["starts"] for r in per_round),
            "priced_in": int(active.sum()),
            "rounds": rounds,
            "stopped": stop or "no LP solution in time",
            "per_round": per_round,
        },
        "lp_bound": bound if np.isfinite(bound) else None,
    }
    if warm is not None:
        run.solver["job_options"]["warm_duals"] = warm[3]
    kept = best[1]
    run.duals.kept = dual_bound.keyed(kept[0], sc, kept[1]) if isinstance(kept, tuple) else kept
    if x_lp is None and solved is not None:
        # a later round cut by its share of the budget: the last LP solved stands (its
        # solution rounds as well; the bound is from every round)
        m, d, x_lp, starts = solved
    return _Priced(m, d, x_lp, bound, active, relaxed, starts)


def pricing_highs(
    m: LinearModel, settings: SolverSettings, *, interior: bool, time_limit_s: float
) -> tuple[highspy.Highs, np.ndarray]:
    """A pricing round's LP `m` loaded into HiGHS as the round solves it: by interior point
    without crossover at `_ipm_tolerance` where `interior`, the job decisions' unit bounds
    opened (`pricing.open_unit_bounds`), within `time_limit_s` (1 s at least); and its
    column map."""
    h = new_highs(settings)
    h.setOptionValue("time_limit", max(1.0, time_limit_s))
    if interior:
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
        h.setOptionValue("ipm_optimality_tolerance", _ipm_tolerance(settings))
    col_map = matrix_backend.to_highs(m, h)
    lb, ub = pricing.open_unit_bounds(m)
    h.changeColsBounds(
        col_map.size, np.arange(col_map.size, dtype=np.int32), lb[col_map], ub[col_map]
    )
    return h, col_map


def _ipm_tolerance(settings: SolverSettings, stop_of_close: float | None = None) -> float:
    """The pricing LPs' interior-point optimality tolerance: `stop_of_close` (None:
    `IPM_STOP_OF_CLOSE`) of the close pricing resolves (`PRICING_CLOSE` x the gap asked
    for), HiGHS' own at least."""
    of_close = IPM_STOP_OF_CLOSE if stop_of_close is None else stop_of_close
    return max(HIGHS_IPM_TOLERANCE, of_close * PRICING_CLOSE * settings.mip_rel_gap)


def _pricing_lp(
    run: _Run, options: JobOptions, *, tight: bool, starts: bool
) -> tuple[LinearModel, ModelData]:
    """A pricing round's LP over job `options` (services merged by class, devices
    continuous, replica starts where `starts`) and its sets."""
    d = build_sets(
        run.sc,
        tight=tight,
        aggregate_services=True,
        options=options,
        all_options=run.every,
        price_replica_starts=starts,
        price_pauses=False,
    )
    m = build_from_sets(d)
    m.vars["v_devices"].integer = False
    return m, d


def _warm_dual_bound(
    run: _Run,
    opts: JobOptions,
    active: np.ndarray,
    gang: np.ndarray,
    *,
    tight: bool,
    starts: bool,
) -> tuple[float | None, LinearModel, ModelData, dict[str, Any]] | None:
    """A warm re-solve's bound before its first LP (`optimizer.model.dual_bound`): the
    previous plan's pricing duals on this scenario's pricing LP over the options `active`
    (built as the first round with `starts` would be; None: no finite bound), that LP, its
    sets and the record for `solver.job_options.warm_duals`. None: the previous plan has
    no duals."""
    table = run.duals.previous
    if table is None:
        return None
    t = time.perf_counter()
    m, d = _pricing_lp(run, opts.subset(active), tight=tight, starts=starts)
    value, info = dual_bound.warm_bound(m, run.sc, table, opts, active, gang)
    info |= {"bound": value, "starts": starts, "s": round(time.perf_counter() - t, 2)}
    return value, m, d, info


def _expected_round_s(per_round: list[dict[str, Any]], starts: bool) -> float:
    """How long the next pricing round is expected to take (model built and LP solved), s:
    as long as the last one (options only join, so a round is no smaller than the one
    before), `STARTS_ROUND_FACTOR` times that where the next one adds replica starts; 0 (it
    starts) before the first."""
    if not per_round:
        return 0.0
    last = per_round[-1]
    took = float(last["s"] - (per_round[-2]["s"] if len(per_round) > 1 else 0.0))
    return took * (STARTS_ROUND_FACTOR if starts and not last["starts"] else 1.0)


def _pricing_stop(
    settings: SolverSettings,
    elapsed_s: float,
    rounds: int,
    entering: int,
    z: float,
    bound: float,
    incumbent: tuple[float, float] | None,
    fixed_cost: float,
    starts_next: bool,
) -> str | None:
    """Why pricing stops after this round (None: it goes on), as `job_options.stopped`:
    `elapsed_s` since the solve started, `rounds` solved, `entering` options priced in by
    the last, `z` its value, `bound` the bound so far, `incumbent` a warm re-solve's kept plan
    and the gap it settles for (`fixed_cost` is in its objective, not in the LP's).

    `starts_next`: the next round would add replica starts (`pricing_churn`). They, not new
    options, raise its bound, so neither a round without options entering, nor a bound close
    to this LP, nor a warm plan this LP cannot prove ends pricing; its share of the budget,
    `pricing_rounds` and a warm plan proven still do."""
    if entering == 0 and not starts_next:
        return "no option prices in"
    if rounds >= settings.pricing_rounds:
        return "pricing_rounds"
    if elapsed_s > PRICING_SHARE * settings.time_limit_s:
        return "its share of the budget"
    if incumbent is not None:
        plan, enough = incumbent[0] - fixed_cost, incumbent[1]
        if _within(plan, bound, enough):
            return WARM_PROVEN
        # not proven: the warm path improves the plan instead. Another round without new
        # replica starts raises the bound by at most what separates it from this LP's
        # value (the options entering only lower that), for a full LP (7-8 s on the
        # default scenario); settling `mip_rel_gap` above the previous gap, an unchanged
        # kept plan is not short of it by a hair: on the outage what-if two more rounds
        # took 15 s for 48 CNY of bound (bench/results/warm-2026-12-07-settle-60s.md)
        return None if starts_next else WARM_NOT_PROVEN
    # the bound is within a small part of the gap asked for: more rounds would tighten it by
    # less than that, at the cost of a full LP each
    if not starts_next and z - bound <= PRICING_CLOSE * settings.mip_rel_gap * abs(z):
        return "bound close to the LP"
    return None


def _stage1_model(run: _Run, priced: _Priced) -> tuple[LinearModel, ModelData, np.ndarray | None]:
    """Stage 1's model over the options priced in, with the devices its LP solution rounds
    to held in reserve (and what that reserve is)."""
    sc, settings = run.sc, run.settings
    if priced.x is None and priced.stage1_own:
        m, d = priced.m, priced.d
        relax_small_jobs(m, d, settings.relax_gang_share)
        return m, d, None
    # no LP solution (and the LP not stage 1's own model): stage 1 is built, no reserve kept
    reserve, reserve_mw, device_cny, mw_cny = (
        (None, None, None, None)
        if priced.x is None
        else _rounding_reserve(sc, priced.m, priced.d, priced.x)
    )
    # stage 1 keeps room to round inference to whole devices later: one device (and its
    # power, as far as the connection has any to spare) per service the LP serves from a
    # fraction of a device. A restriction, not a relaxation: the bound is pricing's.
    d = build_sets(
        sc,
        tight=settings.tight,
        aggregate_services=True,
        options=run.every[0].subset(priced.active),
        all_options=run.every,
        reserve_devices=reserve,
        reserve_mw=reserve_mw,
        reserve_device_cny=device_cny,
        reserve_mw_cny=mw_cny,
        price_replica_starts=False,  # priced when the chosen job plan is completed
    )
    m = build_from_sets(d)
    m.vars["v_devices"].integer = False
    relax_small_jobs(m, d, settings.relax_gang_share)
    return m, d, reserve


def _stage1(
    run: _Run,
    m: LinearModel,
    d: ModelData,
    start_sched: Schedule,
    phase: Any,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> Any | None:
    """Stage 1's MILP to `stage1_gap` on its own model, from the start; its last incumbent
    and earlier ones (while the budget lasts) rounded and completed as candidates.

    With `finish_by_limit`, it gets what the budget leaves after the churn-aware pass
    expected to follow (`_churn_aware_estimate`), and is skipped (None, recorded in
    `solver.stage1`) when that is under `STAGE1_MIN_SHARE` of the budget or under the
    longest pricing round: its model is the pricing LP's with more options, tighter and
    integer, and HiGHS overran its limit on the weeks by 57-69 s (the 20,000-job week's
    stage 1 took 104 s of a 35 s limit, its pricing round 68 s)."""
    settings, t_all = run.settings, run.t_all
    after = 0.15 * settings.time_limit_s  # to round and complete the plan after the solve
    if settings.finish_by_limit:
        after = max(after, _churn_aware_estimate(run))
        left = settings.time_limit_s - after - (time.perf_counter() - t_all)
        need = _stage1_need(
            settings, run.solver.get("job_options", {}), run.timings.get("pricing", 0.0)
        )
        if left < need:
            run.solver["stage1"] = {
                "skipped": f"{max(left, 0.0):.1f} s left in the budget after {after:.1f} s "
                f"kept for the phases after it, under the {need:.1f} s it needs "
                "(finish_by_limit)"
            }
            return None
    phase("build")
    h, col_map = _hand_over(m, settings, run.timings)
    phase("solve")
    limit = _remaining(settings, t_all, keep=after)
    if settings.stage1_share is not None:
        limit = min(limit, max(MIN_SOLVE_S, settings.stage1_share * settings.time_limit_s))
    h.setOptionValue("time_limit", limit)
    # its better incumbents do not survive rounding to whole devices (issue 16): stop early
    gap = settings.mip_rel_gap if settings.stage1_gap is None else settings.stage1_gap
    h.setOptionValue("mip_rel_gap", max(settings.mip_rel_gap, gap))
    start = solution_from_schedule(m, d, start_sched)
    res = solve_loaded(
        h,
        m,
        col_map,
        settings,
        start=start,
        progress=progress,
        cancel=cancel,
        keep_earlier=EARLIER_INCUMBENTS,
        stop_after=settings.stage1_incumbents,
    )
    run.timings["solve"] = res.timings_s["solve"]
    if res.status == "interrupted":
        raise SolveCancelled("the solve was cancelled")
    # HiGHS' dual bound holds for the options priced in only, so it is not reported
    run.solver["stage1"] = res.info()  # the stop asked for is in `solver.settings`
    if res.x is not None:
        phase("rounding")
        t = time.perf_counter()
        # the last incumbent first; earlier ones while the budget lasts: a better stage-1
        # objective does not always round to a better plan (whole devices cost what the
        # relaxed stage 1 does not see)
        for i, x in enumerate([res.x, *reversed(res.earlier)]):
            if i and time.perf_counter() - t_all > settings.time_limit_s:
                break
            name = "stage1_rounded" if i == 0 else f"stage1_earlier_{i}"
            run.add(name, lp_guided_jobs(m, d, x), m)
        run.timings["rounding"] += time.perf_counter() - t
    return res


def _stage1_need(settings: SolverSettings, priced: dict[str, Any], pricing_s: float) -> float:
    """The time stage 1 needs under `finish_by_limit`, s: `STAGE1_MIN_SHARE` of the budget,
    and at least the pricing rounds solved (`priced`: `solver.job_options`); where pricing
    solved none, at least the time its cut first LP ran (`pricing_s`), since stage 1's model
    is that LP's with more options, tighter and integer. Without that, a year of 3,400 jobs
    whose first LP was cut at 69 s of 120 ran stage 1 for 58.6 s and came back at 161 s
    (2026-12-07)."""
    rounds = priced.get("per_round", [])
    floor = [STAGE1_MIN_SHARE * settings.time_limit_s, *(r["s"] for r in rounds)]
    if priced and not rounds:
        floor.append(pricing_s)
    return max(floor)


def _improve(run: _Run, m: LinearModel) -> None:
    """The completion step (`settings.completion`): the unplaced jobs of every plan that
    has some inserted where room can be made (`heuristics.insert_unplaced`), each completed
    as a candidate (`<name>_inserted`), best first while the budget lasts.

    Not only the best: on the default scenario with churn priced the best was the greedy
    start (1 job unplaced), while the rounded LP, also 1 job short, completed 5.5k CNY
    (2.6 %) cheaper without churn costs once its job was inserted (2026-12-05, issue 12)."""
    if not run.settings.completion:
        return
    t = time.perf_counter()
    short = [c for c in sorted(run.candidates, key=lambda c: c[0]) if (c[1].job_site < 0).any()]
    for i, (_, sched, name) in enumerate(short):
        key = f"{name}_inserted"
        if key in run.tried:
            continue
        if i and time.perf_counter() - run.t_all > run.settings.time_limit_s:
            break  # the best one is always tried
        jobs = insert_unplaced(run.sc, _jobs_only(run.sc, sched))
        if jobs is not None:
            run.add(key, jobs, m)
    run.timings["completion"] = run.timings.get("completion", 0.0) + time.perf_counter() - t


def _finish(
    run: _Run, m: LinearModel, bound: float, termination: str, *, stage1_ran: bool
) -> tuple[Schedule | None, str, str, LinearModel]:
    """The winner completed churn-aware, then the best candidate with pricing's bound and
    gap; the greedy start is flagged a fallback when stage 1 found nothing."""
    # recorded too: what the guard expects a completion to take
    estimate = _churn_aware_estimate(run) if run.settings.finish_by_limit else None
    warm = run.solver.pop("churn_aware", None)  # the warm start's pass (`_warm_completed`)
    _complete_churn_aware(run, m, estimate)
    if warm is not None:
        run.solver.setdefault("churn_aware", {})["warm_start"] = warm
    objective, sched, source = min(run.candidates, key=lambda c: c[0])
    final_bound = bound if np.isfinite(bound) else None
    gap = _gap(objective, final_bound)
    run.solver |= {
        "objective": objective,
        "bound": final_bound,
        "gap": gap if np.isfinite(gap) else None,  # no bound proven in time: no gap claimed
        "termination": termination,
        "plan_source": source,
    }
    if source in run.on_shadow:  # the guard's first try at these weights would make it again
        run.solver["plan_weights"] = _warm_weights(run)
    ran = "stage1" in run.solver and "skipped" not in run.solver["stage1"]
    if ran and not stage1_ran and source == "greedy_start":
        # HiGHS found nothing in time: this is the greedy plan, completed, and says so
        run.solver["fallback_reason"] = (
            f"HiGHS returned no plan ({termination}); this is the greedy plan"
        )
        return sched, "fallback", termination, m
    return sched, "optimal" if gap <= run.settings.mip_rel_gap else "feasible", termination, m


def _churn_priced(sc: Scenario) -> bool:
    """Whether replica starts or a minimum up-time cost anything: only then is there a
    churn-aware pass, and the guard's completions are churn-aware."""
    return replica_start_cost_cny(sc) > 0 or replica_min_up_hours(sc) > 1


def _churn_aware_estimate(run: _Run) -> float:
    """How long the churn-aware pass is expected to take, s: `CHURN_AWARE_PER_PLAIN` times
    the longest plain completion this run measured (0 where churn is not priced). Both
    are recorded in `solver.completion_s`, where the pass adds what it took."""
    estimate = CHURN_AWARE_PER_PLAIN * run.plain_s if _churn_priced(run.sc) else 0.0
    run.solver.setdefault("completion_s", {}).update(plain=run.plain_s, estimate=estimate)
    return estimate


PRICING_SHARE = 0.45
STARTS_ROUND_FACTOR = 3.0
"""A pricing round adding replica starts is expected to take this many times the round
without them before it: measured 2.5x on the default scenario cold (3.3 s, then 8.5 s;
bench/results/warm-2026-12-06-workers.json) and 2.9x on M (3.8 s, then 10.9 s;
pricing-skip-2026-12-07-speed.jsonl); on the 3,000-job trace week over 2.4x (34 s, then cut
after 82 s; pricing-skip-2026-12-07-trace-week.jsonl). Rounded up, not down: that round tightens the bound and changes no plan
(bench/results/pricing-churn-2026-12-06.md), so one not started costs the gap reported, while
one started and cut costs the phases after it their time (on the trace week the churn-aware
pass)."""
WARM_PROVEN = "warm plan within its gap"
"""`job_options.stopped` where the bound proves a warm re-solve's kept plan within its gap (the
previous plan's duals may, before any LP: `_warm_dual_bound`)."""
WARM_NOT_PROVEN = "warm plan not within its gap"
"""`job_options.stopped` where a round with the replica starts does not prove it: the warm
path improves the plan instead (`_pricing_stop`)."""
ROUND_NOT_IN_SHARE = "the next round not expected to end within its share"
"""`job_options.stopped` where the next round is expected to take longer than its share of the
budget has left (`_expected_round_s`): on M at 60 s a third round started with 9.5 s left
after a 10.9 s round, was cut, and bought nothing (2026-12-07)."""
FIRST_LP_SHARE = 0.6
FIRST_LP_MIN_SHARE = 0.35  # the first pricing LP's time, at least, whatever came before it
# the pricing LPs by interior point (`pricing_solver` "auto") where they have more nonzeros
# than this: L's first LP (422k) took 132 s by the dual simplex and 25.5 s by interior point,
# the default scenario's (138k) 3.1 s and 3.4 s, M's (123k) 3.0 s and 3.8 s (one solve at a
# time, load 0.9-1.0, 2026-12-06; the threshold between them assumed)
IPM_MIN_NONZEROS = 250_000
# a warm re-solve prices with replica starts from its first round where this many times
# what the previous solve's LP with them took fits in the first LP's budget now (assumed:
# the same LP took 8.8-12.3 s on M under the loads of one afternoon)
STARTS_FIRST_MARGIN = 2.0
EARLIER_INCUMBENTS = 2  # stage-1 incumbents completed besides the last one, time permitting
PRICING_CLOSE = 0.25  # stop pricing once LP value - bound <= this x mip_rel_gap x LP value
# the pricing LPs by interior point stop at a relative primal-dual gap of this x
# PRICING_CLOSE x mip_rel_gap (1.25e-4 at the default gap; HiGHS' own 1e-8 at least), a
# tenth of what the rule above resolves: on the default scenario's LPs with replica starts
# (cold, and warm after each what-if; 158-180k nonzeros) 48-51 interior-point iterations
# instead of 61-62, 0.84-0.94x the time, the Lagrangian bound of their duals 1.1-2.6 CNY
# (of 83-94k) below the exact solve's (bench/results/ipm-tolerance-2026-12-07.md)
IPM_STOP_OF_CLOSE = 0.1
HIGHS_IPM_TOLERANCE = 1e-8  # HiGHS' default ipm_optimality_tolerance
EPS_MW = 1e-9  # power below this is no excess
TOP_UP_GAIN = 1e-6  # devices are topped up above a kept plan's if its LP gains more (relative)
MIN_SOLVE_S = 1.0  # HiGHS gets at least this (or the whole budget, if less)
# `finish_by_limit`: the churn-aware pass is expected to take this many times the longest
# plain completion (measured 23-28x on the 3,000- and 20,000-job weeks,
# bench/results/trace-week-2026-12-06-finish.md), and stage 1 is skipped with less
# than this share of the budget left before it (assumed)
CHURN_AWARE_PER_PLAIN = 25.0
STAGE1_MIN_SHARE = 0.05


def _remaining(settings: SolverSettings, t_all: float, keep: float = 0.0) -> float:
    """HiGHS' time limit: what the wall-clock budget leaves, less `keep` for the phases
    after the solve."""
    left = settings.time_limit_s - keep - (time.perf_counter() - t_all)
    return max(min(MIN_SOLVE_S, settings.time_limit_s), left)


def _rounding_reserve(
    sc: Scenario, m: LinearModel, d: ModelData, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Devices [site, type, hour] and MW [site, hour] that rounding the inference of LP
    solution `x` to whole devices per service would take (one per fractional device), and
    what using them anyway costs: the unmet demand of one device of the dearest unit served
    there, per device-hour and per MW-hour."""
    devices, _ = disaggregate(m, d, x)
    fractional = (devices - np.floor(devices + 1e-6)) > 1e-6
    reserve = np.minimum(fractional.sum(axis=0), sc.capacity)
    mw_per_device = device_busy_mw(sc)  # [s, a]
    dev = m.vars["v_devices"]
    used = dev.values(x) > 1e-6
    u, s, a, h = (dev.index[c][used] for c in ("unit", "site", "accelerator", "hour"))
    throughput = {
        (int(uu), int(ss), int(aa)): t
        for uu, ss, aa, t in zip(
            d.uopt_unit, d.uopt_site, d.uopt_acc, d.uopt_throughput, strict=True
        )
    }
    per_device = np.array(
        [throughput[(int(uu), int(ss), int(aa))] for uu, ss, aa in zip(u, s, a, strict=True)]
    )
    device_cny = np.zeros(sc.capacity.shape)
    np.maximum.at(
        device_cny, (s, a, h), per_device * d.unit_unmet_cny[u] if u.size else np.zeros(0)
    )
    mw_cny = np.max(device_cny / np.maximum(mw_per_device[:, :, None], 1e-12), axis=1)
    return reserve, _reserve_mw(sc, reserve, np.zeros_like(reserve)), device_cny, mw_cny


def _remove_tiebreak(sc: Scenario, sched: Schedule, solver: dict[str, Any]) -> None:
    """Take the ties-go-green term (energy.TIEBREAK_CNY_PER_T x the plan's contract-based
    emissions) out of the solver's objective and bound, so both compare with the plan's
    objective, which reports no such cost; it is kept under `solver.tiebreak`."""
    emis_t = float(site_energy(sc, sched).emis_kg.sum()) / KG_PER_T
    solver["tiebreak"] = TIEBREAK_CNY_PER_T * emis_t
    for key in ("objective", "bound"):
        if solver.get(key) is not None:
            solver[key] -= solver["tiebreak"]


def _reserve_mw(sc: Scenario, reserve: np.ndarray, busy: np.ndarray) -> np.ndarray:
    """MW [site, hour] that `reserve` more busy devices [site, type, hour] would draw, as far
    as the grid connection has any to spare beside `busy` devices (the rest idle)."""
    spare = np.maximum(sc.grid_limit_mw[:, None] - facility_mw(sc, busy)[1], 0.0)
    want = np.einsum("sah,sa->sh", reserve, device_busy_mw(sc))
    return np.minimum(want, spare)


def _options_of(opts: JobOptions, sched: Schedule) -> np.ndarray:
    """Mask of the options a schedule uses."""
    key = {
        (int(j), int(s), int(a)): i
        for i, (j, s, a) in enumerate(zip(opts.job, opts.site, opts.acc, strict=True))
    }
    mask = np.zeros(opts.size, dtype=bool)
    for j in range(sched.job_site.size):
        i = key.get((j, int(sched.job_site[j]), int(sched.job_acc[j])))
        if i is not None:
            mask[i] = True
    return mask


def _gap(objective: float, bound: float | None) -> float:
    """Relative gap; below 1 CNY of objective on the solver's terms, absolute in CNY: a plan
    with nothing left to decide (every cost a constant, `fixed_cost`) has objective 0 there,
    and its bound of 0 proves it (inf there left a bound without a gap, which the validator
    rejects)."""
    if bound is None:
        return float("inf")
    return max(0.0, (objective - bound) / max(abs(objective), 1.0))


def _within(objective: float, bound: float | None, enough: float) -> bool:
    """Whether `bound` proves `objective` within the gap `enough` (`_gap`), or within
    `GAP_ABS_CNY` of it: with `mip_rel_gap` 0 an optimal kept plan was otherwise never
    proven, its bound a rounding error under it (299.9999999999999 against 300 CNY)."""
    return _gap(objective, bound) <= enough or (
        bound is not None and objective - bound <= GAP_ABS_CNY
    )


def _objective(sc: Scenario, sched: Schedule, m: LinearModel) -> float:
    """A plan's objective on the solver's terms (without penalties no decision can change)."""
    return plan_objective(sc, sched) - m.fixed_cost


def _jobs_only(sc: Scenario, sched: Schedule) -> Schedule:
    out = Schedule.empty(sc)
    out.job_site[:] = sched.job_site
    out.job_acc[:] = sched.job_acc
    out.job_hours = [h.copy() for h in sched.job_hours]
    return out


def _complete_churn_aware(run: _Run, m: LinearModel, estimate: float | None) -> None:
    """The best candidate's job plan, its paused jobs run in one block where that pays
    (`compact_pauses`), completed again with replica starts priced in the inference LP
    (`_complete(churn_aware=True)`), added as a candidate of its own.

    Candidates are compared completed without them (their LP is block-diagonal by hour and
    solves in seconds); the time-coupled LP is solved once, for the plan that wins. It gets
    what the budget leaves, at least `settings.churn_aware_share` of it (issue 16: under load
    it took 34-185 s, past any budget); cut there, the plain rounding of the winner stands
    and `solver.churn_aware` says so (`status`: `done`, `cut`, `failed`, `not_needed`).
    A warm re-solve completes it on the previous guard plan's weights (`_warm_shadow`).
    """
    sc, settings = run.sc, run.settings
    if not _churn_priced(sc):
        return
    # the job plan to complete churn-aware: the best without its replica starts, which the
    # churn-aware completion decides anew (completed without them priced, a plan starts
    # ~110k devices, and their cost, +-5k between plans, drowned the job plans' difference)
    start_cny = replica_start_cost_cny(sc)
    _, sched, name = min(
        run.candidates,
        key=lambda c: c[0] - start_cny * replica_changes(c[1].svc_devices)[0].sum(),
    )
    if name == "previous_kept" or name.endswith("_churn_aware"):
        # the previous plan's devices (already rounded churn-aware, and kept as such), or
        # a plan completed churn-aware already (`_warm_completed`)
        run.solver["churn_aware"] = {"status": "not_needed", "plan": name}
        return
    t = time.perf_counter()
    share = settings.churn_aware_share
    left = settings.time_limit_s - (t - run.t_all)
    limit = None if share is None else max(left, share * settings.time_limit_s)
    if estimate is not None:  # `finish_by_limit`
        if left < estimate:
            run.solver["churn_aware"] = {
                "status": "skipped",
                "plan": name,
                "note": f"expected to take {estimate:.1f} s, {max(left, 0.0):.1f} s left in "
                f"the budget (finish_by_limit); {name} comes without replica starts priced "
                "in its inference LP (the plain rounding)",
            }
            log.warning("%s", run.solver["churn_aware"]["note"])
            return
        limit = left
        settings = _sharing_within(settings, left)
    key = f"{name}_churn_aware"
    shadow, w = _warm_shadow(run)
    try:
        done = _complete(
            shadow, compact_pauses(sc, sched), settings, churn_aware=True, time_limit_s=limit
        )
        status = "done" if done is not None else "failed"
    except _OutOfTime:
        done, status = None, "cut"
    if done is not None:
        run.candidates.append((_objective(sc, done, m), done, key))
        if w is not None:
            run.on_shadow.add(key)
    run.tried[key] = run.candidates[-1][0] if done is not None else None
    took = time.perf_counter() - t
    # beside a warm start's pass (`_warm_completed`), whose time is in it too
    run.timings["churn_aware"] = run.timings.get("churn_aware", 0.0) + took
    run.solver["churn_aware"] = {"status": status, "plan": name, "time_limit_s": limit}
    if w is not None:
        run.solver["churn_aware"]["guard_weights"] = w
    run.solver.setdefault("completion_s", {})["churn_aware"] = took
    if status == "cut":
        floor = "" if settings.finish_by_limit or share is None else f", at least {share:.0%} of it"
        run.solver["churn_aware"]["note"] = (
            f"the churn-aware completion ran out of its {limit:.1f} s (what the budget left"
            f"{floor}); {name} comes without replica starts priced in its inference LP "
            "(the plain rounding)"
        )
        log.warning("%s", run.solver["churn_aware"]["note"])


def _sharing_within(settings: SolverSettings, left: float) -> SolverSettings:
    """`settings` for a churn-aware completion within `left` seconds (`finish_by_limit`):
    the LPs sharing devices among services get at most a quarter of it per rounding pass
    (one or two)."""
    return dataclasses.replace(settings, replica_share_s=min(settings.replica_share_s, left / 4))


class _Stopped(RuntimeError):
    """A completion beside pricing stopped from outside (`_Run.stop_beside`): pricing proved
    the kept plan, so nothing will use it. Raised between its steps and where its HiGHS
    solve was interrupted."""


def _check(stop: threading.Event | None) -> None:
    """`_Stopped` where `stop` is set."""
    if stop is not None and stop.is_set():
        raise _Stopped("pricing proved the kept plan")


class _OutOfTime(RuntimeError):
    """A time-limited completion (`_complete(time_limit_s=...)`) ran out of its time."""


def _no_options(sc: Scenario) -> tuple[JobOptions, list[list[str]], np.ndarray, np.ndarray]:
    """`all_options` for a model around a fixed job plan: no job options at all."""
    n = len(sc.jobs)
    return JobOptions.empty(), [[] for _ in sc.jobs], np.zeros(n), np.zeros(n)


def _complete_kept(
    sc: Scenario, jobs: Schedule, previous: Schedule, settings: SolverSettings
) -> Schedule | None:
    """Job plan `jobs` with the previous plan's inference devices kept (issue 16: a what-if
    changes little, and the previous devices were already rounded and made churn-aware),
    cut back where the jobs or a capacity change leave no room for them (`_kept_devices`);
    flows, energy and battery re-solved as an LP around them. Where the change leaves demand
    short (an outage, new jobs on the devices inference had), devices are topped up above
    the kept ones (`_top_up`) if that plan's LP is cheaper. None if no LP has a solution
    (e.g. a grid connection the change narrowed)."""
    if previous.svc_devices.shape != (len(sc.services), *sc.capacity.shape):
        return None
    job_use = busy_devices(sc, _jobs_only(sc, jobs))
    whole = _kept_devices(sc, job_use, previous.svc_devices)
    d2 = build_sets(
        sc, fixed_job_use=job_use, all_options=_no_options(sc), price_replica_starts=False
    )
    m2 = build_from_sets(d2)
    h2, cm2 = _hand_over(m2, dataclasses.replace(settings, backend="matrix"), {})
    x2, z2, _ = resolve_fixed(h2, m2, cm2, *device_bounds(m2, d2, whole))
    if x2 is None:
        # jobs the change moved (an outage) can leave a site's kept devices over its power:
        # cut them back to what the firm supply carries, then top up elsewhere
        whole = _within_power(sc, job_use, whole)
        x2, z2, _ = resolve_fixed(h2, m2, cm2, *device_bounds(m2, d2, whole))
    # (deciding every device anew in the hours the change cut into instead: outage
    # 416k CNY against 370k, +5 % jobs 396k against 253k, the replica starts unpriced here)
    topped = _top_up(m2, d2, h2, cm2, job_use, whole, z2)
    if topped is not None:
        x2 = topped
    if x2 is None:
        return None
    sched = _jobs_only(sc, jobs)
    services_and_energy_from_solution(m2, d2, x2, sched)
    return sched


def _kept_devices(sc: Scenario, job_use: np.ndarray, devices: np.ndarray) -> np.ndarray:
    """Previous whole devices [service, site, type, hour] cut back where jobs `job_use`
    [site, type, hour] and the capacity leave no room for them, the services with most
    devices there first."""
    whole = np.maximum(devices, 0).astype(np.int64).copy()
    over = job_use + whole.sum(axis=0) - sc.capacity.astype(np.int64)
    for s, a, h in zip(*np.nonzero(over > 0), strict=True):
        excess = int(over[s, a, h])
        for k in np.argsort(-whole[:, s, a, h], kind="stable"):
            cut = min(excess, int(whole[k, s, a, h]))
            whole[k, s, a, h] -= cut
            excess -= cut
            if excess <= 0:
                break
    return whole


def _within_power(sc: Scenario, job_use: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Whole devices [service, site, type, hour] cut back, most power-hungry type first and
    the services with most devices first, until each site-hour's facility power (jobs and
    devices busy, the rest idle) fits its firm supply (`Scenario.firm_supply_limit_mw`)."""
    out = whole.copy()
    mw = device_busy_mw(sc)  # [site, type] busy over idle, facility MW per device
    busy = job_use + out.sum(axis=0)
    over = facility_mw(sc, busy)[1] - sc.firm_supply_limit_mw
    for s, h in zip(*np.nonzero(over > EPS_MW), strict=True):
        excess = float(over[s, h])
        for a in np.argsort(-mw[s], kind="stable"):
            for k in np.argsort(-out[:, s, a, h], kind="stable"):
                if excess <= EPS_MW or mw[s, a] <= 0:
                    break
                cut = min(int(out[k, s, a, h]), int(np.ceil(excess / mw[s, a])))
                out[k, s, a, h] -= cut
                excess -= cut * mw[s, a]
    return out


def _top_up(
    m2: LinearModel,
    d2: ModelData,
    h2: Any,
    cm2: np.ndarray,
    job_use: np.ndarray,
    floor: np.ndarray,
    z_kept: float | None,
) -> np.ndarray | None:
    """The solution of the loaded whole-device model `m2` with devices `floor` or more
    [service, site, type, hour] (the kept ones): the
    LP with devices continuous above them, rounded up to whole devices (`round_devices`)
    and solved again with them fixed; None unless the relaxed LP gains over the kept plan's
    LP (`z_kept`, None: none solved) and the rounded plan's LP, with the replica starts it
    adds priced, beats it. Block-diagonal by
    hour (replica starts not priced): ~1 s on the default scenario."""
    lb, ub = device_bounds(m2, d2, floor)
    free_lb, free_ub = m2.bounds()
    cols = m2.vars["v_devices"].cols()
    ub[cols] = free_ub[cols]
    x1, z1, _ = resolve_fixed(h2, m2, cm2, lb, ub)
    if x1 is None or z1 is None:
        return None
    if z_kept is not None and z1 >= z_kept - TOP_UP_GAIN * abs(z_kept):
        return None  # nothing short that more devices would serve
    devices, flows = disaggregate(m2, d2, x1)
    whole, _ = round_devices(d2, job_use, np.maximum(devices, floor), flows)
    x2, z2, _ = resolve_fixed(h2, m2, cm2, *device_bounds(m2, d2, whole))
    if x2 is None or z2 is None:
        return None
    # the LP leaves replica starts out: the topped-up plan must pay for the ones it adds
    # (an unchanged plan's LP gained 0.3 % by 512 device-hours more and lost it thrice in
    # starts)
    start_cny = replica_start_cost_cny(d2.sc)
    added = replica_changes(whole)[0].sum() - replica_changes(floor)[0].sum()
    if z_kept is not None and z2 + start_cny * added >= z_kept:
        return None
    return x2


def _complete(
    sc: Scenario,
    jobs: Schedule,
    settings: SolverSettings,
    *,
    churn_aware: bool = False,
    time_limit_s: float | None = None,
    stop: threading.Event | None = None,
) -> Schedule | None:
    """Inference and energy around a fixed job plan: an LP with devices continuous (services
    merged), whole devices from it, then the LP of flows, energy and battery with them fixed.

    `churn_aware`: replica starts priced in the first LP (time-coupled: solved by interior
    point, whose centred solution also rounds without flip-flopping between equal sites).

    Where whole devices leave demand short (the relaxed LP shared the last device and the
    last kilowatts of a full site among services), the LP is solved again with room held
    back for rounding each service up, and rounded again.

    `time_limit_s` bounds the relaxed LPs (the slow part when churn-aware): one cut by it
    raises `_OutOfTime`; the second pass is skipped when the first used it up (its rounding
    stands). The LPs with devices fixed always finish.

    `stop`: once set, `_Stopped` between steps, and the relaxed LP interrupted.
    """
    jobs = _jobs_only(sc, jobs)
    every = _no_options(sc)
    # these are auxiliary LPs around a decided job plan: they go straight to HiGHS whatever
    # the backend of the main solve (timed as a whole under "rounding")
    stage: dict[str, float] = {}
    direct = dataclasses.replace(settings, backend="matrix")
    job_use = busy_devices(sc, jobs)  # the schedule holds jobs only
    reserve: np.ndarray | None = None
    reserve_mw: np.ndarray | None = None
    deadline = None if time_limit_s is None else time.perf_counter() + time_limit_s
    for attempt in range(2):
        left = None if deadline is None else deadline - time.perf_counter()
        if attempt == 1 and left is not None and left <= 0:
            break  # no time for the second pass: the first one's rounding stands
        _check(stop)
        # the relaxed LP shares a full site's last devices and power among services; the
        # second pass holds back one device per service there, and its power as far as the
        # grid connection has any to spare, the room that rounding each of them up takes
        d1 = build_sets(
            sc,
            aggregate_services=True,
            fixed_job_use=job_use,
            all_options=every,
            reserve_devices=reserve,
            reserve_mw=reserve_mw,
            price_replica_starts=churn_aware,
        )
        try:
            relaxed = _relaxed_devices(
                d1, direct, stage, churn_aware=churn_aware, limit=left, stop=stop
            )
        except _OutOfTime:
            if attempt == 0:
                raise
            break  # the second pass ran out of time: the first one's rounding stands
        if relaxed is None:
            return None
        m1, x1 = relaxed
        d2 = build_sets(sc, fixed_job_use=job_use, all_options=every, price_replica_starts=False)
        _check(stop)
        if churn_aware and settings.replica_share_s > 0:
            devices, flows, _ = share_among_services(
                m1, d1, x1, d2, replica_start_cost_cny(sc), replica_min_up_hours(sc),
                settings.replica_share_s, settings.threads, lp_workers(settings),
            )  # fmt: skip
        else:
            devices, flows = disaggregate(m1, d1, x1)
        whole, missing = round_devices(d2, job_use, devices, flows)
        if attempt == 1 or not missing.any():
            break
        fractional = (devices - np.floor(devices + 1e-6)) > 1e-6
        reserve = np.minimum(fractional.sum(axis=0), sc.capacity - job_use)
        reserve_mw = _reserve_mw(sc, reserve, job_use)
    _check(stop)
    m2 = build_from_sets(d2)
    tries = _churn_aware_tries(sc, d2, job_use, whole, settings) if churn_aware else [whole]
    for fixed in tries:
        h2, cm2 = _hand_over(m2, direct, stage)
        x2, _, _ = resolve_fixed(h2, m2, cm2, *device_bounds(m2, d2, fixed))
        if x2 is not None:
            break
    if x2 is None:
        return None
    sched = _jobs_only(sc, jobs)
    services_and_energy_from_solution(m2, d2, x2, sched)
    return sched


def _churn_aware_tries(
    sc: Scenario, d2: ModelData, job_use: np.ndarray, whole: np.ndarray, settings: SolverSettings
) -> list[np.ndarray]:
    """Whole devices to complete with, first that works: held through short dips (and
    trimmed, `settings.replica_trim_s`), else as rounded. Devices held draw idle power;
    where that breaks a grid connection (or a contract sharing it) the plan without them is
    the fallback."""
    start_cny = replica_start_cost_cny(sc)
    tries = [hold_through_dips(sc, job_use, whole, start_cny), whole]
    if settings.replica_trim_s > 0:
        trimmed, _ = trim_devices(
            d2, tries[0], start_cny, replica_min_up_hours(sc), settings.replica_trim_s,
            settings.threads,
        )  # fmt: skip
        tries.insert(0, trimmed)
    return tries


def _relaxed_devices(
    d1: ModelData,
    settings: SolverSettings,
    stage: dict[str, float],
    *,
    churn_aware: bool,
    limit: float | None,
    stop: threading.Event | None = None,
) -> tuple[LinearModel, np.ndarray] | None:
    """`_complete`'s first LP (devices continuous, the job plan fixed) solved within `limit`
    seconds (None: no limit): the model and its solution, None if it has none;
    `_OutOfTime` if the limit cut it, `_Stopped` where `stop` interrupted it. Churn-aware,
    it is time-coupled: interior point."""
    m1 = build_from_sets(d1)
    m1.vars["v_devices"].integer = False
    h1, cm1 = _hand_over(m1, settings, stage)
    if churn_aware:
        h1.setOptionValue("solver", "ipm")
        h1.setOptionValue("run_crossover", "off")
    if stop is not None:
        interrupt_when(h1, stop.is_set)
    x1, _, _ = resolve_fixed(h1, m1, cm1, *m1.bounds(), time_limit_s=limit)
    _check(stop)
    if x1 is None and h1.getModelStatus() == highspy.HighsModelStatus.kTimeLimit:
        raise _OutOfTime(f"the relaxed inference LP took over {max(limit or 0.0, 0.0):.2f} s")
    return None if x1 is None else (m1, x1)


def _best_start(sc: Scenario, greedy: Schedule) -> Schedule:
    """The best of the greedy plan and two big-jobs-first greedies, as HiGHS' first
    incumbent (a gang that needs a site's whole fleet only fits if it comes first)."""
    starts = [greedy] + [
        plan_baseline(sc, "greedy", order=order) for order in ("big_first", "largest_first")
    ]
    objective = [plan_objective(sc, s) for s in starts]
    return starts[int(np.argmin(objective))]


def plan_baselines(
    sc: Scenario, settings: SolverSettings, warm: Plan | Schedule | None
) -> Beside[dict[str, Schedule]]:
    """The `BASELINES` to plan for `sc`: for a warm re-solve where a second core is free
    (`warm_beside`), queued on the thread beside pricing's first LP where that is the long
    one (`_solve_rounding`; on the default scenario's lanes they take 1.4-1.6 s) and waited
    for once the plan is chosen; else here."""

    def plan() -> dict[str, Schedule]:
        return {name: plan_baseline(sc, name) for name in BASELINES}  # type: ignore[arg-type]

    return Beside(plan, beside=warm_beside(settings, warm))


def _start(sc: Scenario, warm: Plan | Schedule | None, greedy: Callable[[], Schedule]) -> Schedule:
    """HiGHS' first incumbent: a previous plan made fit for today's data if there is one
    (plan stability), else the best of three greedy plans (`greedy`: the greedy baseline,
    asked for only then)."""
    previous = _schedule_of(sc, warm)
    if previous is None:
        return _best_start(sc, greedy())
    return repair_start(sc, previous)


def _reference_gap(warm: Plan | Schedule) -> float | None:
    """The least gap proven along the chain of warm re-solves `warm` ends: its own summary's
    `gap` and the reference it was itself measured against (`solver.warm.reference_gap`), as
    a stored plan carries both; None: no gap (a bare schedule, or no bound in its time)."""
    if not isinstance(warm, Plan):
        return None
    warm_record = (warm.summary.get("solver") or {}).get("warm") or {}
    gaps = [warm.summary.get("gap"), warm_record.get("reference_gap")]
    finite = [float(g) for g in gaps if isinstance(g, (int, float)) and np.isfinite(g)]
    return min(finite) if finite else None


def _warm_gap(settings: SolverSettings, warm: Plan | Schedule | None) -> float | None:
    """The gap a warm re-solve settles for: the least gap its chain of plans proved
    (`_reference_gap`) plus `mip_rel_gap`, the closeness the user asked for (a kept plan
    short of the previous gap by less paid for stage 1, for a plan 0.11 % cheaper, with
    half the outage what-if's time: docs/solving.md "Warm re-solves"); `stage1_gap` (else
    `mip_rel_gap`), at least `mip_rel_gap`, for a previous plan without a gap. None for a
    cold solve or with `warm_skip_stage1` off.

    The chain's least gap, not the previous plan's own: a nightly re-solve that settled
    `mip_rel_gap` above its reference would otherwise pass that on, and each night's plan
    could be proven a little less well than the last."""
    if warm is None or not settings.warm_skip_stage1:
        return None
    reference = _reference_gap(warm)
    if reference is not None:
        return reference + settings.mip_rel_gap
    own = settings.mip_rel_gap if settings.stage1_gap is None else settings.stage1_gap
    return max(settings.mip_rel_gap, own)


def _schedule_of(sc: Scenario, warm: Plan | Schedule | None) -> Schedule | None:
    if warm is None:
        return None
    if isinstance(warm, Schedule):
        return warm
    if warm.schedule is not None and warm.summary.get("scenario_fingerprint") == sc.fingerprint:
        return warm.schedule
    return schedule_from_plan(sc, warm)  # a stored plan, or one made for other data


COST_ONLY = "cost_only"
"""The cost-only optimiser baseline (see `cost_only_plan`): a second full solve, so not
among the `BASELINES` every plan carries; `optimize_beside_cost_only` adds it."""


def cost_only_scenario(sc: Scenario) -> Scenario:
    """`sc` as a buyer without a green optimiser would plan it: no carbon price, contracted
    green priced like grid energy (its price per MWh used = the grid price, no resale) and
    no green-share minimum, so nothing steers work towards green."""
    pol = dataclasses.replace(
        sc.policy, carbon_price_cny_per_t=0.0, min_green_share=0.0, carbon_budget_t=None
    )
    sites = tuple(
        dataclasses.replace(s, min_green_share=0.0, green_resale_cny_per_mwh=0.0) for s in sc.sites
    )
    return dataclasses.replace(
        sc, policy=pol, sites=sites, green_price_cny_per_mwh=sc.grid_price_cny_per_mwh
    )


def cost_only_plan(sc: Scenario, settings: SolverSettings | None = None) -> Plan:
    """The cost-only optimiser baseline: the same planner on `cost_only_scenario(sc)`, its
    placements then costed on `sc` with green dispatched first (as the other baselines)."""
    plan = optimize(cost_only_scenario(sc), settings)
    assert plan.schedule is not None
    sched = dataclasses.replace(plan.schedule, green_mw=None)
    return assemble_plan(sc, sched, status="baseline", planner=COST_ONLY)


def optimize_beside_cost_only(
    sc: Scenario, settings: SolverSettings | None = None, **kwargs: Any
) -> Plan:
    """`optimize(sc)` with the cost-only optimiser's plan (`cost_only_plan`) beside the other
    baselines, reported and competing as they do (two full solves)."""
    base = cost_only_plan(sc, settings)
    assert base.schedule is not None
    return optimize(sc, settings, extra_baselines={COST_ONLY: base.schedule}, **kwargs)


def baseline_plan(sc: Scenario, name: str) -> Plan:
    """One baseline as a full plan (tables and KPIs)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return assemble_plan(sc, plan_baseline(sc, name), status="baseline", planner=name)  # type: ignore[arg-type]
