"""Sweeps: one parameter over many values, each a `sweep_point` run queued as one batch
through `service.runs.queue_runs`, and the curve read back with its Pareto flags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from sqlalchemy.orm import Session

from optimizer.whatif import POLICY_LEVERS, GreenScale, Overrides, PriceChange
from service import scenarios
from service.errors import NotFound, ProblemTooLarge, request_problem
from service.models import Run, Sweep, utcnow
from service.repo import sweeps as repo
from service.runs import QueuedRun, Submitter, queue_runs, refuse_if_full
from service.settings import Settings
from service.whatif.base import resolve_base
from service.whatif.checks import check_overrides, settings_problems
from service.whatif.requests import SweepRequest
from service.whatif.results import PlanKpis, plan_kpis

SweepState = Literal["running", "done", "partial", "failed"]
# two sweep points whose cost or emissions differ by less than this share are taken as equal
# for the Pareto flags (solver noise must not make one dominate the other)
PARETO_REL_TOL = 1e-9


# ----------------------------------------------------------------------------- creating
def point_overrides(base: Overrides, parameter: str, value: float) -> Overrides:
    """The overrides of one sweep point: the base's with the swept parameter set (a policy
    value replaces the base's; a multiplier is one more change at every site, whole horizon,
    on top of the base's)."""
    if parameter in POLICY_LEVERS:
        return base.model_copy(update={parameter: value})
    if parameter == "price_multiplier":
        changes = [*base.price_changes, PriceChange(multiplier=value)]
        return base.model_copy(update={"price_changes": changes})
    if parameter == "green_scaling":
        scaling = [*base.green_scaling, GreenScale(multiplier=value)]
        return base.model_copy(update={"green_scaling": scaling})
    raise ValueError(f"unknown sweep parameter {parameter!r}")


def value_problems(parameter: str, values: Sequence[float]) -> list[dict[str, Any]]:
    """Each value checked as the override it becomes, located at `values[i]`; repeats."""
    problems = []
    for i, v in enumerate(values):
        if parameter in POLICY_LEVERS:
            found = [p.message for p in Overrides.read({parameter: v}).problems]
        else:
            item = {"multiplier": v}
            key = "price_changes" if parameter == "price_multiplier" else "green_scaling"
            found = [p.message for p in Overrides.read({key: [item]}).problems]
        problems += [request_problem(f"values[{i}]", m) for m in found]
    seen: dict[float, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            problems.append(request_problem(f"values[{i}]", f"repeats values[{seen[v]}]"))
        seen.setdefault(v, i)
    return problems


def _check_length(n: int, settings: Settings) -> None:
    room = min(settings.whatif_max_sweep_points, settings.queue_limit)
    if n <= room:
        return
    which = (
        "whatif_max_sweep_points"
        if settings.whatif_max_sweep_points <= settings.queue_limit
        else "queue_limit"
    )
    # 422, not 429: a sweep longer than the whole queue would never fit, however long the
    # client waited
    raise ProblemTooLarge(
        f"a sweep of {n} values is larger than this server takes",
        problems=[
            request_problem(
                "values",
                f"{n} values: more than the limit of {room} ({which}, GREENOPT_{which.upper()})",
            )
        ],
    )


def create_sweep(
    session: Session,
    request: SweepRequest,
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
) -> Sweep:
    """Check a sweep completely, then store it and one queued `sweep_point` run per value
    (lowest priority first in line after planner and nightly runs). The whole sweep must fit
    in the run queue: QueueFull otherwise, and nothing is stored (the sweep row goes with
    the transaction). No commit."""
    _check_length(len(request.values), settings)
    refuse_if_full(session, settings=settings, n=len(request.values))
    base = resolve_base(
        session, scenario_version_id=request.scenario_version_id, base_plan_id=request.base_plan_id
    )
    solve, problems = settings_problems(settings, request.settings)
    problems += value_problems(request.parameter, request.values)
    # the base overrides applied once; the swept value changes no size
    check_overrides(
        scenarios.scenario_of(session, base.version), request.overrides, settings, problems
    )
    assert solve is not None  # check_overrides raised for any problem found
    values = sorted(request.values)
    sweep = repo.add(
        session,
        created_at=utcnow(),
        created_by=actor,
        scenario_version_id=base.version.id,
        base_plan_id=base.plan_id,
        parameter=request.parameter,
        values=values,
        overrides=request.overrides.to_json(),
        settings=solve,
        note=request.note,
    )
    points = [
        QueuedRun(
            kind="sweep_point",
            scenario_version_id=base.version.id,
            overrides=point_overrides(request.overrides, request.parameter, v),
            settings=solve,
            note=f"sweep {sweep.id}: {request.parameter} = {v:g}",
            priority=settings.sweep_priority,
            warm_start_plan_id=base.plan_id,
            sweep_id=sweep.id,
        )
        for v in values
    ]
    queue_runs(session, points, settings=settings, runner=runner, actor=actor)
    return sweep


# ----------------------------------------------------------------------------- reading
def sweep_state(counts: dict[str, int]) -> SweepState:
    """running while any point is queued or running; then done (every point succeeded),
    failed (none did) or partial."""
    if counts.get("queued", 0) or counts.get("running", 0):
        return "running"
    ok = counts.get("succeeded", 0)
    total = sum(counts.values())
    return "done" if ok == total else "failed" if ok == 0 else "partial"


def pareto_front(xy: Sequence[tuple[float, float] | None]) -> list[bool | None]:
    """For each (cost, emissions) point: on the front (no other point costs no more, emits
    no more and is better in one, up to PARETO_REL_TOL), or None for no point."""

    def less(a: float, b: float) -> bool:
        return a < b - PARETO_REL_TOL * max(abs(a), abs(b), 1.0)

    flags: list[bool | None] = []
    for i, a in enumerate(xy):
        if a is None:
            flags.append(None)
            continue
        dominated = any(
            b is not None
            and j != i
            and not less(a[0], b[0])
            and not less(a[1], b[1])
            and (less(b[0], a[0]) or less(b[1], a[1]))
            for j, b in enumerate(xy)
        )
        flags.append(not dominated)
    return flags


@dataclass
class SweepPoint:
    """One value of a sweep: its run and, once solved, its plan's numbers."""

    value: float
    run_id: int | None = None
    state: str | None = None
    error: str | None = None
    plan_id: int | None = None
    status: str | None = None
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    total_cost: float | None = None
    energy_cost: float | None = None
    carbon_cost: float | None = None
    penalty: float | None = None
    cost_excl_carbon: float | None = None
    emissions_t: float | None = None
    emissions_location_t: float | None = None
    green_share: float | None = None
    unplaced: int | None = None
    pareto: bool | None = None
    pareto_location: bool | None = None

    @classmethod
    def of(cls, value: float, run: Run | None, kpis: PlanKpis | None) -> SweepPoint:
        numbers = {k: getattr(kpis, k) for k in _POINT_KPIS} if kpis is not None else {}
        return cls(
            value=value,
            run_id=run.id if run is not None else None,
            state=run.state if run is not None else None,
            error=run.error if run is not None else None,
            plan_id=kpis.id if kpis is not None else None,
            **numbers,
        )


# the numbers a sweep point shows of its plan: the point's fields that `PlanKpis` has
_POINT_KPIS = tuple(
    f.name
    for f in fields(SweepPoint)
    if f.name in {k.name for k in fields(PlanKpis)}
    or isinstance(getattr(PlanKpis, f.name, None), property)
)


def _flag(points: list[SweepPoint]) -> None:
    """Set each point's Pareto flags: cost is `cost_excl_carbon`, so a higher carbon
    price does not count against its own point, and unplaced work counts through its
    penalty; emissions each accounting on its own."""
    for key, emissions in (("pareto", "emissions_t"), ("pareto_location", "emissions_location_t")):
        xy = [
            (p.cost_excl_carbon, getattr(p, emissions))
            if p.cost_excl_carbon is not None and getattr(p, emissions) is not None
            else None
            for p in points
        ]
        for p, flag in zip(points, pareto_front(xy), strict=True):
            setattr(p, key, flag)


@dataclass
class SweepSummary:
    """A sweep, its state and how many points are in each run state."""

    id: int
    state: SweepState
    parameter: str
    values: list[float]
    scenario_version_id: int
    base_plan_id: int | None
    overrides: dict[str, Any]
    settings: dict[str, Any]
    note: str
    created_by: str
    created_at: dt.datetime
    counts: dict[str, int]
    links: dict[str, str]
    points: list[SweepPoint] = field(default_factory=list)

    @classmethod
    def of(cls, sweep: Sweep, counts: dict[str, int]) -> SweepSummary:
        return cls(
            id=sweep.id,
            state=sweep_state(counts),
            parameter=sweep.parameter,
            values=list(sweep.values),
            scenario_version_id=sweep.scenario_version_id,
            base_plan_id=sweep.base_plan_id,
            overrides=sweep.overrides,
            settings=sweep.settings,
            note=sweep.note,
            created_by=sweep.created_by,
            created_at=sweep.created_at,
            counts=counts,
            links={"self": f"/what-if/sweep/{sweep.id}"},
        )


def sweep_view(session: Session, sweep_id: int) -> SweepSummary:
    """A sweep and its curve: one point per value, in value order, with the run's state and
    its plan's numbers, and the Pareto flags of each accounting."""
    sweep = repo.get(session, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}")
    runs: list[Run] = list(repo.runs_of(session, sweep.id))
    found = repo.plans_by_id(session, [r.plan_id for r in runs if r.plan_id is not None])
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    out = SweepSummary.of(sweep, counts)
    # runs were created in the order of the (sorted) values, in one transaction
    for i, v in enumerate(sweep.values):
        run = runs[i] if i < len(runs) else None
        plan = found.get(run.plan_id) if run is not None and run.plan_id is not None else None
        kpis = plan_kpis(plan) if plan is not None else None
        out.points.append(SweepPoint.of(float(v), run, kpis))
    out.points.sort(key=lambda p: p.value)
    _flag(out.points)
    return out


def list_sweeps(session: Session, *, offset: int, limit: int) -> tuple[list[SweepSummary], int]:
    """Sweeps, newest first, each with its state and run counts (no curve)."""
    rows, total = repo.page(session, offset=offset, limit=limit)
    counts = repo.run_states(session, [s.id for s in rows])
    return [SweepSummary.of(s, counts.get(s.id, {})) for s in rows], total
