"""The one HiGHS adapter: settings mapped to HiGHS options in one place, a typed result.

Time limit, relative gap, threads and seed are settings. At the time limit the best plan
found is accepted with its gap when `allow_nonoptimal` is set (the default); progress is
reported through a callback and a solve can be cancelled from another thread.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, Literal, TypeVar

import highspy
import numpy as np

from optimizer.model.core import LinearModel

Backend = Literal["pyomo", "matrix"]
ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SolverSettings:
    # wall-clock budget of one `optimize` call, model building included: HiGHS gets what
    # the phases before it leave (at least 1 s), so a plan may come a little late, never early
    time_limit_s: float = 60.0
    mip_rel_gap: float = 5e-3  # prices and forecasts are not more accurate than 0.5%
    threads: int = 1
    seed: int = 0
    backend: Backend = "pyomo"
    allow_nonoptimal: bool = True
    mip_start: bool = True  # hand HiGHS the greedy (or previous) plan as a first incumbent
    tight: bool = True  # disaggregated x <= y rows (tighter LP relaxation, more rows)
    # inference devices: "exact" keeps them integer in the MILP; "round" solves them
    # continuous, rounds them up afterwards and re-solves the LP with every integer fixed
    # (optimizer/model/rounding.py) with the large-instance strategy; "auto" takes it when
    # there are more than exact_device_limit of them, or more than exact_job_hour_limit
    # job-option hours (the exact model's job columns): a year of 3,400 jobs on one site,
    # no inference (487k), did not come back from HiGHS' MIP setup in 14 min, and M's
    # exact model (108k) stayed at its start for 60 s (issue 16); the limit is assumed
    integer_devices: Literal["auto", "exact", "round"] = "auto"
    exact_device_limit: int = 4000
    exact_job_hour_limit: int = 100_000
    # with devices rounded, jobs whose gang is at most this share of the site's devices of
    # their type are solved continuous first and rounded to whole gangs after
    relax_gang_share: float = 0.02
    # column generation over job options (large instances): options per job to start
    # with (the cheapest by estimate, plus those of the first incumbent), and a cap on rounds
    initial_options_per_job: int = 3
    # ... fewer (down to one) where their hours in window would pass this, and the pricing
    # LPs without the x <= y rows where one per job still does: the first LP, the only
    # bound, grows with them (issue 17: the 20,000-job week's first LP was not solved in
    # 709 s at 551k hours, 3 per job; 103 s at 184k, 1 per job; 26 s at 184k without
    # those rows. The default scenario has 23k, a 3,000-job week 87k). None: no cap
    initial_window_hours: int | None = 100_000
    pricing_rounds: int = 8
    # large instances (issue 16): stage 1 (the job MILP with devices continuous) stops at
    # this relative gap on its own model (None: at mip_rel_gap); its better incumbents do
    # not survive rounding to whole devices, so the time goes to the completion step
    stage1_gap: float | None = 0.03
    # ... and after this share of the budget (None: whatever the budget leaves): measured
    # under load, stage 1 sat at its root with a 12-65 % gap on its own model and its
    # rounded incumbent lost to the rounded LP (issue 16, bench/results/speed-2026-12-05.md)
    stage1_share: float | None = 0.2
    # ... and once HiGHS has found this many incumbents after the start it accepted (None:
    # no such stop; 0: the incumbent HiGHS makes of the start, rounded, is stage 1's plan).
    # Measured 2026-12-06 (bench/results/stage1-stop-2026-12-06.md): on the default scenario
    # cold and warm (three what-ifs) and on M, every plan came from that incumbent (or the
    # warm start); HiGHS' first better one came 4.8-9.0 s in and never won, and it found
    # nothing after it. Stopping at the start: the same plans, 9-18 s sooner
    stage1_incumbents: int | None = 0
    # after rounding, improve the best plan while the budget lasts: unplaced jobs inserted
    # where devices can be freed, jobs moved one at a time (`optimizer.heuristics`)
    completion: bool = True
    # churn-aware completion (issue 12): seconds for the LPs that share each class of merged
    # services' devices among its services with their own replica starts priced
    # (`optimizer.model.replicas`; per rounding pass, of which there are one or two); a
    # class not solved in time is split in proportion to demand; 0: that split only.
    # Under load 8 on 2 cores the default scenario's six classes took 24 s
    replica_share_s: float = 40.0
    # ... with this many class LPs solved side by side (each with `threads` HiGHS threads);
    # None: one per core free when the sharing starts (`lp_workers`: the cores less the
    # load average's other work). Measured with 2 on 2 cores: a completion 0.69-0.79x the
    # time for the same plan (bench/results/workers-2026-12-06.md)
    lp_workers: int | None = None
    # ... and seconds for the MILPs per service that take away the whole devices it does
    # not need once rounded up (`replicas.trim_devices`); 0: none taken away. Off by
    # default: on the default scenario 30 s of it took 0.4 % off the cost (load 3)
    replica_trim_s: float = 0.0
    # a warm re-solve (`optimize(..., warm_start=...)`) returns the previous plan repaired
    # and completed, with pricing's bound (pricing stopped as soon as that proves it), and
    # runs stage 1 only if that plan is not within the previous plan's gap of the bound
    warm_skip_stage1: bool = True
    # the pricing LPs: dual simplex, or interior point without crossover (issue 16: 2x
    # faster on L's first LP), stopped at `planner._ipm_tolerance` (looser than HiGHS' own:
    # about a fifth fewer iterations); a round's bound is the Lagrangian of its row duals
    # (`dual_bound.lagrangian`, valid for any duals), so a solve stopped short cannot
    # overstate it.
    # "auto": interior point where the first LP is over `initial_window_hours` (the
    # 20,000-job week's first round: 61 s against 131 s with the simplex), where they keep
    # replica starts (`pricing_churn`) or where the LP has over `planner.IPM_MIN_NONZEROS`
    # nonzeros (L's first LP: 25.5 s against 132 s), else the simplex
    pricing_solver: Literal["auto", "simplex", "ipm"] = "auto"
    # the pricing LPs with every job option preemptible, for their value, bound and guidance
    # only (stage 1 and every plan keep each job's contiguity): a weaker relaxation, still
    # one. "auto": where the first LP is over `initial_window_hours` on a horizon over a
    # week (where long blocks are counted by a chain, docs/model.md): a year of 3,400
    # contiguous jobs on one site solved its first LP in 175 s, 44-45 s relaxed, its
    # value 5 % lower (issue 16)
    pricing_contiguity: Literal["auto", "exact", "relaxed"] = "auto"
    # replica starts (and their minimum up-time) in the pricing LPs after the first, per
    # class of merged services: a tighter relaxation (issue 16: M's bound 194,747 -> 211,946
    # CNY, its gap 18.0 % -> 8.2 % for the same plan), time-coupled, so solved by interior
    # point with pricing_solver "auto" (the dual simplex did not solve M's LP with them in
    # its 35 s share); the first round without them keeps a short budget's bound (M at
    # 10 s). Pricing took 20.6 s instead of 6.3 on M at 60 s. "auto": where there are
    # services and churn costs anything
    pricing_churn: Literal["auto", "on", "off"] = "auto"
    # with a share, the churn-aware completion (an interior-point LP, time-coupled) gets
    # what the budget leaves, at least this share of it, and is cut there, the plain
    # rounding standing. Default None: no limit, the pass runs to its end (34-185 s past
    # the budget under load, issue 16), because a cut costs more than it saves: +51 % of
    # the objective on M for 4-17 s (bench/results/speed-2026-12-05-evening.md)
    churn_aware_share: float | None = None
    presolve: bool = True
    # short jobs planned as flexible load, packed into shared one-hour lanes
    # (optimizer/flexible.py): "auto" when there are many of them, "off": every job is an
    # individual decision
    flexible_jobs: Literal["auto", "on", "off"] = "auto"
    # the dominance guard (optimizer/guard.py, issue 11): where the plan chosen does not
    # dominate every baseline at equal work on cost, emissions both ways and curtailment, at
    # most this many completions of its jobs with carbon and curtailment weighed more; the
    # cheapest that dominates them all is returned instead. 0: off
    dominance_guard_rounds: int = 8
    # ... after the time limit: the first completion runs unless expected (as long as the
    # churn-aware pass took) to end past that clock, the others while the guard has spent
    # less than this and less than `time_limit_s` (measured: 2 completions took 88 s under
    # load 8; 76 s for all at load 3 after a 240 s solve)
    dominance_guard_s: float = 180.0
    # the whole call within `time_limit_s` (issue 17: the 20,000-job week planned with a
    # bound within 300 s): stage 1 gets what the budget leaves after the churn-aware pass
    # expected to follow it (skipped if little), the churn-aware pass and each of the
    # guard's completions start only where expected to end within the budget (their
    # expected time measured in the same run), and short jobs' lanes keep a share for their
    # disaggregation. Off: those phases run past the limit by their own rules above, which
    # on the default scenario pays (the churn-aware pass: 386k -> 249k CNY)
    finish_by_limit: bool = False
    log_to_console: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SolveResult:
    status: str  # optimal | feasible | infeasible | interrupted | error
    termination: str  # HiGHS model status, verbatim
    objective: float | None
    bound: float | None
    gap: float | None
    x: np.ndarray | None  # values in model column order
    nodes: int = 0
    mip_start_accepted: bool | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    # the last improving solutions HiGHS found before `x` (model column order, oldest first)
    earlier: list[np.ndarray] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {
            "termination": self.termination,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "nodes": self.nodes,
            "mip_start_accepted": self.mip_start_accepted,
        }


_first_highs = [True]


def _construct_quietly() -> highspy.Highs:
    """HiGHS prints a banner on stdout the first time a solver is built in a process;
    keep it out of the CLI's output and the service's logs."""
    if not _first_highs[0]:
        return highspy.Highs()
    _first_highs[0] = False
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def lp_workers(settings: SolverSettings) -> int:
    """How many independent LPs to solve side by side: `settings.lp_workers`, or (None)
    the usable cores less the load average's other work (this process's own thread
    counted as free), at least 1."""
    if settings.lp_workers is not None:
        return max(1, settings.lp_workers)
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:  # no load average on this platform: take no core for granted
        return 1
    return max(1, round(usable_cores() - others))


def core_free(settings: SolverSettings) -> bool:
    """Whether a second core is free for work beside a solve's own (`lp_workers`)."""
    return lp_workers(settings) >= 2


def warm_beside(settings: SolverSettings, warm: object) -> bool:
    """Whether a solve plans its baselines on the thread beside pricing (`Beside`): a
    warm re-solve (`warm` not None: its start is the previous plan, so nothing needs the
    baselines before a plan is chosen) where a second core is free (`core_free`). A cold
    solve starts from the best greedy plan and plans them first."""
    return warm is not None and core_free(settings)


_T = TypeVar("_T")


class Beside(Generic[_T]):
    """Work a solve needs only at its end (its baselines), queued from `start` on the
    thread the solve runs beside pricing (`_solve_rounding`), before a warm re-solve's
    completion (queued after it, they were waited for behind a completion nothing used):
    that thread holds the second core while HiGHS holds the first, and lets go of the GIL
    while it solves. Two tries that ran it otherwise bought
    nothing (bench/results/warm-2026-12-07-baselines-*.md): on a thread of its own from the
    solve's start it took the GIL from the solve's own Python (the outage what-if's start
    0.5 -> 1.8 s); on its own thread from the first LP it made three busy threads on
    two cores (pricing 7.3-8.8 -> 9.7-11.1 s). Where not `beside`, or never started (no LP
    solved), it runs here when its `result` is first asked for. `after`: work this one
    waits for, whose `start` queues it too, as beside as it is."""

    def __init__(
        self, work: Callable[[], _T], *, beside: bool = False, after: Beside[Any] | None = None
    ) -> None:
        self._work = work
        self.beside: bool = beside if after is None else after.beside
        self._future: Future[_T] | None = None
        self._then: list[Beside[Any]] = []
        if after is not None:
            after._then.append(self)

    def start(self, pool: Executor) -> None:
        if self.beside and self._future is None:
            self._future = pool.submit(self._work)
        for then in self._then:
            then.start(pool)

    def result(self) -> _T:
        if self._future is None:
            here: Future[_T] = Future()
            here.set_result(self._work())
            self._future = here
        return self._future.result()


def new_highs(settings: SolverSettings) -> highspy.Highs:
    h = _construct_quietly() if not settings.log_to_console else highspy.Highs()
    h.setOptionValue("output_flag", bool(settings.log_to_console))
    h.setOptionValue("time_limit", float(settings.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(settings.mip_rel_gap))
    h.setOptionValue("threads", int(settings.threads))
    h.setOptionValue("random_seed", int(settings.seed))
    h.setOptionValue("presolve", "on" if settings.presolve else "off")
    return h


def solve_loaded(
    h: highspy.Highs,
    m: LinearModel,
    col_map: np.ndarray,
    settings: SolverSettings,
    *,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    keep_earlier: int = 0,
    stop_after: int | None = None,
) -> SolveResult:
    """Solve the model already passed to `h`. `col_map[i]` is the model column of HiGHS column i.

    `keep_earlier`: also return up to this many of the improving solutions found before the
    last one (a heuristic that rounds the solution afterwards may do better from one of them).
    `stop_after`: stop HiGHS once it has found this many incumbents besides the start it
    accepted (at least one), at its next look at the interrupt callback (between steps: a
    step may bring more than one); `termination` then says how many, the status `feasible`.
    """
    t0 = time.perf_counter()
    accepted = (
        _set_start(h, m, col_map, start) if start is not None and settings.mip_start else None
    )
    # at least one incumbent: without a start accepted, the first HiGHS finds
    stop_at = None if stop_after is None else max(1, stop_after + int(bool(accepted)))
    found, n_found = _subscribe(
        h, progress=progress, cancel=cancel, keep_earlier=keep_earlier, stop_at=stop_at
    )
    h.run()
    t1 = time.perf_counter()
    ms = h.getModelStatus()
    termination = h.modelStatusToString(ms)
    if ms == highspy.HighsModelStatus.kInterrupt and not (cancel is not None and cancel.is_set()):
        termination = f"stopped at incumbent {n_found[0]}"  # `stop_after`, not a user
    info = h.getInfo()
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    objective = float(info.objective_function_value) if has_sol else None
    is_mip = bool(m.integrality().any())
    bound = _finite(info.mip_dual_bound) if is_mip else objective
    gap = _finite(info.mip_gap) if is_mip and has_sol else (0.0 if has_sol else None)
    status = _status(ms, has_sol=has_sol, settings=settings, cancel=cancel)
    x = None
    earlier: list[np.ndarray] = []
    if has_sol:
        x, earlier = _solutions(h, m, col_map, found, keep_earlier)
        if status == "optimal" and gap is not None and gap < 0:
            gap = 0.0
    return SolveResult(
        status=status,
        termination=termination,
        objective=objective,
        bound=bound,
        gap=gap,
        x=x,
        nodes=int(getattr(info, "mip_node_count", 0) or 0),
        mip_start_accepted=accepted,
        timings_s={"solve": t1 - t0},
        earlier=earlier,
    )


def _set_start(
    h: highspy.Highs, m: LinearModel, col_map: np.ndarray, start: tuple[np.ndarray, np.ndarray]
) -> bool:
    """Hand HiGHS a (partial) start given in model columns; whether it took it."""
    pos = np.full(m.n_cols, -1, dtype=np.int64)
    pos[col_map] = np.arange(col_map.size)
    cols, vals = start
    hc = pos[cols]
    ok = hc >= 0
    set_status = h.setSolution(int(ok.sum()), hc[ok].astype(np.int32), vals[ok].astype(np.float64))
    return bool(set_status == highspy.HighsStatus.kOk)


def _subscribe(
    h: highspy.Highs,
    *,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    keep_earlier: int,
    stop_at: int | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """Wire HiGHS's callbacks: progress reports, cancellation (and a stop once `stop_at`
    incumbents are found, the accepted start counted), and the improving solutions kept (the
    list returned fills while HiGHS runs), and how many incumbents came in."""
    last = [0.0]
    n_found = [0]

    def on_progress(e: Any, always: bool = False) -> None:
        now = time.perf_counter()
        # logging events are thinned out; a new incumbent is always reported, else the
        # last one before a quiet stretch would never show
        if progress is not None and (always or now - last[0] >= 0.25):
            last[0] = now
            out = e.data_out
            progress(
                {
                    "phase": "solve",
                    "elapsed_s": float(out.running_time),
                    "objective": _finite(out.mip_primal_bound),
                    "bound": _finite(out.mip_dual_bound),
                    "gap": _finite(out.mip_gap),
                    "nodes": int(out.mip_node_count),
                }
            )

    found: list[np.ndarray] = []

    def on_improving(e: Any) -> None:
        found.append(np.array(e.data_out.mip_solution, dtype=float))
        del found[: -(keep_earlier + 1)]

    def on_count(e: Any) -> None:
        n_found[0] += 1

    def stopping() -> bool:
        return (cancel is not None and cancel.is_set()) or (
            stop_at is not None and n_found[0] >= stop_at
        )

    if progress is not None:
        h.cbMipImprovingSolution.subscribe(lambda e: on_progress(e, always=True))
        h.cbMipLogging.subscribe(on_progress)
    if keep_earlier > 0:
        h.cbMipImprovingSolution.subscribe(on_improving)
    if stop_at is not None:
        h.cbMipImprovingSolution.subscribe(on_count)
    if cancel is not None or stop_at is not None:
        # the LPs' too: a MIP looks at its own callback only between steps (a year on one
        # site: stage 1 stopped at its start in 62.8 s with them, 87.8 s without, once each;
        # bench/results/stage1-stop-2026-12-06.md)
        interrupt_when(h, stopping)
    return found, n_found


def _status(
    ms: Any, *, has_sol: bool, settings: SolverSettings, cancel: threading.Event | None
) -> str:
    """The result's status from HiGHS's model status (accepting a non-optimal incumbent only
    when the settings allow it)."""
    if ms == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    if cancel is not None and cancel.is_set():
        return "interrupted"
    if has_sol and settings.allow_nonoptimal:
        return "feasible"
    if ms in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        return "infeasible"
    return "error" if not has_sol else "feasible_rejected"


def _solutions(
    h: highspy.Highs,
    m: LinearModel,
    col_map: np.ndarray,
    found: list[np.ndarray],
    keep_earlier: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The final solution and up to `keep_earlier` distinct earlier incumbents, in model
    columns."""
    vals = np.asarray(h.getSolution().col_value, dtype=float)
    x = np.zeros(m.n_cols)
    x[col_map] = vals
    earlier: list[np.ndarray] = []
    for sol in found:
        if sol.size == col_map.size and not np.allclose(sol, vals, atol=1e-6):
            xe = np.zeros(m.n_cols)
            xe[col_map] = sol
            earlier.append(xe)
    return x, (earlier[-keep_earlier:] if keep_earlier else [])


def interrupt_when(h: highspy.Highs, should: Callable[[], bool]) -> None:
    """Interrupt `h`'s solves (simplex, interior point, MIP) at their next look at HiGHS'
    interrupt callback once `should()` is true (the model status then says interrupted)."""

    def on_interrupt(e: Any) -> None:
        if should():
            e.interrupt()

    h.cbSimplexInterrupt.subscribe(on_interrupt)
    h.cbIpmInterrupt.subscribe(on_interrupt)
    h.cbMipInterrupt.subscribe(on_interrupt)


def resolve_fixed(
    h: highspy.Highs,
    m: LinearModel,
    col_map: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    time_limit_s: float | None = None,
) -> tuple[np.ndarray | None, float | None, str]:
    """Re-solve the loaded model as an LP with new column bounds (integers fixed by them).
    Without `time_limit_s` it must finish (an LP with every decision fixed); with one, a
    solve cut by it returns no solution (`h.getModelStatus()` says why)."""
    n = col_map.size
    idx = np.arange(n, dtype=np.int32)
    h.changeColsBounds(n, idx, lb[col_map].astype(np.float64), ub[col_map].astype(np.float64))
    h.changeColsIntegrality(n, idx, np.zeros(n, dtype=np.uint8))
    h.setOptionValue("time_limit", 1e9 if time_limit_s is None else max(time_limit_s, 0.0))
    h.run()
    term = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None, None, term
    x = np.zeros(m.n_cols)
    x[col_map] = np.asarray(h.getSolution().col_value, dtype=float)
    return x, float(info.objective_function_value), term


def solve_relaxation(
    h: highspy.Highs,
    m: LinearModel,
    col_map: np.ndarray,
    *,
    interior: bool = False,
    stopped: bool = False,
) -> tuple[np.ndarray | None, float | None]:
    """The LP relaxation of the loaded model (integrality dropped): its solution and value
    (`interior`: solved by interior point without crossover, see `SolverSettings`).

    Its value is a valid lower bound on the MILP. The caller restores integrality to go on
    with the MILP on the same loaded model.

    `stopped` (with `interior`): an interior-point solve that stopped at a loosened
    `ipm_optimality_tolerance` short of HiGHS' own (its status then unknown, with primal and
    dual values) is returned as well, its value the primal's objective as it stands: near
    the optimum, not a bound. The caller takes the bound from the row duals
    (`dual_bound.lagrangian`, valid for any duals).
    """
    n = col_map.size
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
    h.run()
    status = h.getModelStatus()
    solution = h.getSolution()
    short = (
        stopped
        and interior
        and status == highspy.HighsModelStatus.kUnknown
        and solution.value_valid
        and solution.dual_valid
    )
    if status != highspy.HighsModelStatus.kOptimal and not short:
        return None, None
    x = np.zeros(m.n_cols)
    x[col_map] = np.asarray(solution.col_value, dtype=float)
    z = float(h.getInfo().objective_function_value)
    if interior and not short:
        # an interior solution is optimal within tolerances only: take the value down by
        # the relative primal-dual objective error HiGHS reports, so a bound may use it
        err = float(getattr(h.getInfo(), "primal_dual_objective_error", 0.0))
        z -= abs(z) * (err if math.isfinite(err) and err > 0 else 0.0)
    return x, z


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) and abs(v) < 1e29 else None
