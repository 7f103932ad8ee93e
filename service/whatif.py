"""What-if and sweep service functions: a base (the active plan, a stored plan, or a
scenario version) plus `optimizer.whatif.Overrides`, solved as runs of kind `whatif` or
`sweep_point` through the same runner and queue bound as POST /runs, and never activated.

A what-if is checked completely before anything is stored: every fault of the overrides
(malformed or naming a site, zone, accelerator or job that does not exist, rows of added
jobs that fail the scenario's checks) is listed with its field path, and the scenario
after the overrides must stay within the problem-size limits of the settings. The base
plan is what the answer is compared with (`optimizer.diff.diff_plans`) and what the solver
starts from (`runs.warm_start_plan_id`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from optimizer.scenario import InputValidationError, Problem, Scenario
from optimizer.scenario import schema as scenario_schema
from optimizer.whatif import GreenScale, Overrides, PriceChange, apply_overrides
from service import plans, scenarios
from service.db import Database, on_commit
from service.errors import Conflict, InvalidInput, NotFound, ProblemTooLarge, QueueFull
from service.models import Plan, Run, ScenarioVersion, Sweep, utcnow
from service.overrides import overrides_json, parse_overrides
from service.repo import runs as runs_repo
from service.repo import sweeps as repo
from service.runs import (
    FINAL_STATES,
    OverridesField,
    RunRequest,
    SolveSettingsIn,
    Submitter,
    solver_settings,
    submit_run,
)
from service.settings import Settings

log = logging.getLogger("greenopt.whatif")

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers
MAX_SWEEP_VALUES = 1000  # schema-level cap; the setting whatif_max_sweep_points is lower
HIGHLIGHTS = 20  # unplaced workloads and moves shown in a what-if's answer
# polling a run while a what-if request waits: fast at first (a demo solve takes well under
# a second), then four times a second per waiting request
WAIT_POLL_FIRST_S = 0.05
WAIT_POLL_MAX_S = 0.25
# two sweep points whose cost or emissions differ by less than this share are taken as equal
# for the Pareto flags (solver noise must not make one dominate the other)
PARETO_REL_TOL = 1e-9

SweepParameter = Literal[
    "carbon_price_cny_per_t",
    "min_green_share",
    "carbon_budget_t",
    "plan_stability_weight",
    "price_multiplier",
    "green_scaling",
]
POLICY_PARAMETERS = (
    "carbon_price_cny_per_t",
    "min_green_share",
    "carbon_budget_t",
    "plan_stability_weight",
)
SweepState = Literal["running", "done", "partial", "failed"]

_JOB_COLUMNS = frozenset(scenario_schema.JOBS.column_names)
_INDEXED = re.compile(r"^(?P<field>[a-z_]+)\[(?P<i>\d+)\](?P<rest>.*)$")


# ----------------------------------------------------------------------------- requests
class WhatIfRequest(BaseModel):
    """A what-if: a base, overrides, optional solver settings and how long to wait."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "overrides": {
                        "price_changes": [
                            {
                                "multiplier": 2.0,
                                "zones": ["ningxia", "guizhou"],
                                "start": "2025-07-15T08:00:00+08:00",
                                "end": "2025-07-15T20:00:00+08:00",
                            }
                        ]
                    },
                    "settings": {"time_limit_s": 60},
                    "wait_s": 120,
                    "note": "price shock in the west",
                }
            ]
        },
    )
    scenario_version_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="solve this scenario version and compare with its newest plan solved "
        "without overrides (default: the active plan's version, compared with the active plan)",
    )
    base_plan_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="compare with (and start from) this stored plan, solving its scenario "
        "version with these overrides (a what-if plan's own overrides are not carried over)",
    )
    overrides: OverridesField = Field(
        default_factory=dict,
        description="optimizer.whatif.Overrides: price changes, outages and capacity changes, "
        "green scaling, accelerator mix, policy values, jobs added or removed",
    )
    settings: SolveSettingsIn = Field(default_factory=SolveSettingsIn)
    wait_s: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="how long to wait for the plan, s (default: the server's; the query "
        "parameter wins)",
    )
    note: str = Field(default="", max_length=1000)

    def digest(self) -> str:
        """Identifies the question asked (not how long the client waits for the answer), to
        tell a retry from a different request with the same Idempotency-Key."""
        content = {"what-if": self.model_dump(mode="json", exclude={"wait_s"})}
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class _WhatIfRun(RunRequest):
    """The run a what-if becomes. Its idempotency digest is the what-if request's, so a
    retry matches even when the active plan (and so the resolved base) changed meanwhile,
    and a POST /runs with the same key never passes for it."""

    _digest: str = PrivateAttr(default="")

    def digest(self) -> str:
        return self._digest


SweepValue = Annotated[float, Field(allow_inf_nan=False)]


class SweepRequest(BaseModel):
    """One parameter over a list of values, each solved as a what-if."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "parameter": "carbon_price_cny_per_t",
                    "values": [0, 50, 100, 200, 500],
                    "overrides": {"min_green_share": 0.2},
                    "note": "carbon price curve",
                }
            ]
        },
    )
    parameter: SweepParameter = Field(
        description="a policy value (carbon_price_cny_per_t, min_green_share, carbon_budget_t, "
        "plan_stability_weight), or price_multiplier (grid prices at every site x value) or "
        "green_scaling (green supply at every site x value), on top of the base overrides"
    )
    values: list[SweepValue] = Field(
        min_length=1,
        max_length=MAX_SWEEP_VALUES,
        description="the values to solve for, distinct (at most whatif_max_sweep_points and "
        "queue_limit of the server)",
    )
    overrides: OverridesField = Field(
        default_factory=dict, description="base overrides every point shares"
    )
    settings: SolveSettingsIn = Field(default_factory=SolveSettingsIn)
    scenario_version_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="as for POST /what-if"
    )
    base_plan_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="as for POST /what-if"
    )
    note: str = Field(default="", max_length=1000)


# ----------------------------------------------------------------------------- problems
def _problem(column: str | None, message: str) -> dict[str, Any]:
    """A problem of the request body, in the shape of every 422 (`ProblemOut`)."""
    return {
        "file": "request",
        "table": "body",
        "row": None,
        "column": column,
        "hour": None,
        "message": message,
    }


def _path(loc: Sequence[Any], kept: dict[str, list[int]]) -> str:
    """`overrides.capacity_changes[0].site` from a pydantic location, with list positions
    as the client sent them (items found faulty earlier were dropped from the list)."""
    out = "overrides"
    for k, part in enumerate(loc):
        if isinstance(part, int):
            field = str(loc[k - 1]) if k else ""
            index = kept[field][part] if k == 1 and field in kept else part
            out += f"[{index}]"
        else:
            out += f".{part}"
    return out


def _parse(
    data: dict[str, Any],
) -> tuple[Overrides | None, list[dict[str, Any]], dict[str, list[int]]]:
    """Overrides made of the well-formed parts of `data`, a problem for each malformed part,
    and for each list the client's position of every item kept. The well-formed rest is
    still checked against the scenario, so one answer lists every problem."""
    data = dict(data)
    kept = {k: list(range(len(v))) for k, v in data.items() if isinstance(v, list)}
    problems: list[dict[str, Any]] = []
    # every round drops at least one part, so this ends
    for _ in range(1 + len(data) + sum(len(v) for v in kept.values())):
        try:
            return Overrides.model_validate(data), problems, kept
        except ValidationError as exc:
            bad_items: dict[str, set[int]] = {}
            bad_fields: set[str] = set()
            for e in exc.errors():
                loc = tuple(e.get("loc", ()))
                message = str(e.get("msg", "invalid"))
                if not loc:
                    # a model-level check: it names its field in the message
                    named = [f for f in Overrides.model_fields if f in message]
                    if not named:
                        problems.append(_problem("overrides", message))
                        return None, problems, kept
                    loc = (named[0],)
                problems.append(_problem(_path(loc, kept), message))
                field = str(loc[0])
                if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data.get(field), list):
                    bad_items.setdefault(field, set()).add(loc[1])
                else:
                    bad_fields.add(field)
            for field in bad_fields:
                data.pop(field, None)
                kept.pop(field, None)
            for field, bad in bad_items.items():
                if field in bad_fields:
                    continue
                data[field] = [x for i, x in enumerate(data[field]) if i not in bad]
                kept[field] = [p for i, p in enumerate(kept[field]) if i not in bad]
    return None, problems, kept


def _locate(
    p: Problem, *, kept: dict[str, list[int]], base_jobs: int, added: int
) -> dict[str, Any]:
    """An optimizer problem as a problem of the request: faults of the overrides at their
    field path, rows of the jobs table that came from `add_jobs` at their position there."""
    if p.file == "overrides":
        column = p.column or ""
        m = _INDEXED.match(column)
        if m and m["field"] in kept and int(m["i"]) < len(kept[m["field"]]):
            column = f"{m['field']}[{kept[m['field']][int(m['i'])]}]{m['rest']}"
        return _problem(f"overrides.{column}" if column else "overrides", p.message)
    row = int(p.row) if p.row is not None else None
    if (
        p.file == scenario_schema.JOBS.file
        and row is not None
        and base_jobs < row <= base_jobs + added
    ):
        i = row - base_jobs - 1
        index = kept["add_jobs"][i] if "add_jobs" in kept else i
        column = f"overrides.add_jobs[{index}]" + (f".{p.column}" if p.column else "")
        return _problem(column, p.message)
    d = p.as_dict()
    d["row"] = row
    d["table"] = next((t.name for t in scenario_schema.TABLES if t.file == p.file), p.file)
    return d


def _apply(
    sc: Scenario, ov: Overrides, kept: dict[str, list[int]]
) -> tuple[Scenario | None, list[dict[str, Any]]]:
    """`sc` with `ov` applied, or every problem found on the way."""
    known = {j.job_id for j in sc.jobs}
    base_jobs = len(known - set(ov.remove_jobs))
    where = functools.partial(_locate, kept=kept, base_jobs=base_jobs, added=len(ov.add_jobs))
    # columns jobs.csv does not have, named per row (the optimizer names only the column)
    problems = [
        _problem(f"overrides.add_jobs[{kept.get('add_jobs', [])[i]}].{k}", "unknown job column")
        for i, r in enumerate(ov.add_jobs)
        for k in r
        if k not in _JOB_COLUMNS
    ]
    if problems:
        rows = [{k: v for k, v in r.items() if k in _JOB_COLUMNS} for r in ov.add_jobs]
        ov = ov.model_copy(update={"add_jobs": rows})
    try:
        new = apply_overrides(sc, ov)
    except InputValidationError as err:
        problems += [where(p) for p in err.problems]
        if ov.add_jobs and any(p.file == "overrides" for p in err.problems):
            # apply_overrides stops at faults of the overrides before it loads the jobs
            # table: check the added rows on their own so they are listed as well
            jobs_only = Overrides.model_validate(
                {"add_jobs": ov.add_jobs, "remove_jobs": [j for j in ov.remove_jobs if j in known]}
            )
            try:
                apply_overrides(sc, jobs_only)
            except InputValidationError as err2:
                problems += [where(p) for p in err2.problems if p.file != "overrides"]
        return None, problems
    return (None if problems else new), problems


def problem_size(sc: Scenario) -> dict[str, int]:
    """The size of a scenario as the limits count it. `model_cells` estimates the model:
    every (workload, site, accelerator, hour) a job could run in (allowed region, a fleet
    of one of its types, between release and deadline) or a service could be served from
    (a fleet of a type it runs on), before the model prunes any."""
    fleets: dict[str, list[str]] = {}  # accelerator -> residency region of each site having it
    for s in sc.sites:
        for a in sc.accelerator_names:
            if sc.fleet.get((s.site_id, a), 0) > 0:
                fleets.setdefault(a, []).append(s.residency_region)
    cells = 0
    for j in sc.jobs:
        window = max(0, min(j.deadline, sc.hours) - max(j.release, 0))
        regions = set(j.allowed_regions)
        pairs = sum(
            sum(1 for r in fleets.get(a, ()) if not regions or r in regions) for a in j.accelerators
        )
        cells += pairs * window
    for k in sc.services:
        cells += sum(len(fleets.get(a, ())) for a in k.throughput_tokens_per_s) * sc.hours
    return {
        "jobs": len(sc.jobs),
        "services": len(sc.services),
        "sites": len(sc.sites),
        "hours": sc.hours,
        "model_cells": cells,
    }


def check_size(sc: Scenario, settings: Settings) -> dict[str, int]:
    """The scenario's size; ProblemTooLarge naming every limit it exceeds."""
    size = problem_size(sc)
    limits = {
        "jobs": "whatif_max_jobs",
        "services": "whatif_max_services",
        "sites": "whatif_max_sites",
        "hours": "whatif_max_hours",
        "model_cells": "whatif_max_model_cells",
    }
    problems = []
    for what, setting in limits.items():
        limit = int(getattr(settings, setting))
        if size[what] > limit:
            problems.append(
                _problem(
                    "overrides",
                    f"{size[what]} {what.replace('_', ' ')} after the overrides: more than the "
                    f"limit of {limit} ({setting}, GREENOPT_{setting.upper()})",
                )
            )
    if problems:
        raise ProblemTooLarge(
            f"the what-if is larger than this server solves: {len(problems)} limit(s) exceeded",
            problems=problems,
        )
    return size


def check_overrides(
    sc: Scenario, data: dict[str, Any], settings: Settings, extra: Sequence[dict[str, Any]] = ()
) -> Scenario:
    """`sc` with the overrides `data` applied and within the size limits. Raises
    InvalidInput listing every problem (with `extra` ones found by the caller first), or
    ProblemTooLarge."""
    ov, problems, kept = _parse(data)
    problems = [*extra, *problems]
    new: Scenario | None = None
    if ov is not None:
        new, more = _apply(sc, ov, kept)
        problems += more
    if problems or new is None:
        raise InvalidInput(f"{len(problems)} problem(s) in the request", problems=problems)
    check_size(new, settings)
    return new


def _settings_problems(
    settings: Settings, requested: SolveSettingsIn
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    try:
        return solver_settings(settings, requested), []
    except InvalidInput as err:
        return None, list(err.problems)


# ----------------------------------------------------------------------------- the base
@dataclass(frozen=True)
class Base:
    """What a what-if starts from: the scenario version it changes and the plan it is
    compared with and warm-started from (None: no plan of that version to compare with)."""

    version: ScenarioVersion
    plan_id: int | None


def resolve_base(
    session: Session, *, scenario_version_id: int | None, base_plan_id: int | None
) -> Base:
    """The base of a what-if: a given plan, a given scenario version (compared with the
    active plan if it is of that version, else with the version's newest plain plan), or by
    default the active plan."""
    if scenario_version_id is not None and base_plan_id is not None:
        raise InvalidInput(
            "give scenario_version_id or base_plan_id, not both",
            problems=[
                _problem(
                    "base_plan_id",
                    "cannot be given with scenario_version_id: the version is the base plan's",
                )
            ],
        )
    if base_plan_id is not None:
        plan = plans.get_plan(session, base_plan_id)
        return Base(scenarios.get_version(session, plan.scenario_version_id), plan.id)
    active_id = plans.active_plan_id(session)
    if scenario_version_id is not None:
        version = scenarios.get_version(session, scenario_version_id)
        if (
            active_id is not None
            and plans.get_plan(session, active_id).scenario_version_id == version.id
        ):
            return Base(version, active_id)
        plain = repo.newest_plain_plan(session, version.id)
        return Base(version, plain.id if plain is not None else None)
    if active_id is None:
        raise Conflict(
            "no plan is active to ask a what-if of: activate one (POST /runs "
            '{"activate": true}), or name scenario_version_id or base_plan_id'
        )
    plan = plans.get_plan(session, active_id)
    return Base(scenarios.get_version(session, plan.scenario_version_id), plan.id)


# ----------------------------------------------------------------------------- what-ifs
def wait_seconds(settings: Settings, *, query: float | None, body: float | None) -> float:
    """How long a what-if request waits: the query's, else the body's, else the default;
    422 above whatif_max_wait_s."""
    wait = query if query is not None else body if body is not None else settings.whatif_wait_s
    if wait > settings.whatif_max_wait_s:
        raise InvalidInput(
            f"wait_s {wait:g} exceeds the limit of {settings.whatif_max_wait_s:g} s",
            problems=[_problem("wait_s", f"must be at most {settings.whatif_max_wait_s:g}")],
        )
    return float(wait)


def check_whatif(session: Session, request: WhatIfRequest, *, settings: Settings) -> Base:
    """Resolve a what-if's base and check it completely: InvalidInput listing every problem
    of the overrides and solver settings, ProblemTooLarge, NotFound for a base that does not
    exist. Reads only, so it can run before the submitting transaction (on SQLite a write
    transaction holds the database's one write lock)."""
    base = resolve_base(
        session, scenario_version_id=request.scenario_version_id, base_plan_id=request.base_plan_id
    )
    _, extra = _settings_problems(settings, request.settings)
    check_overrides(
        scenarios.scenario_of(session, base.version), request.overrides, settings, extra
    )
    return base


def submit_whatif(
    session: Session,
    request: WhatIfRequest,
    base: Base,
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
    idempotency_key: str | None = None,
) -> tuple[Run, bool]:
    """Queue the run of a what-if checked by `check_whatif` (`submit_run`, kind `whatif`,
    never activated, warm-started from the base plan); (run, True), or (the earlier run,
    False) for a repeated Idempotency-Key. No commit: the caller's unit of work hands the
    run to the runner when it commits."""
    run_request = _WhatIfRun(
        settings=request.settings,
        overrides=request.overrides,
        activate=False,
        scenario_version_id=base.version.id,
        note=request.note,
    )
    run_request._digest = request.digest()
    return submit_run(
        session,
        run_request,
        settings=settings,
        runner=runner,
        actor=actor,
        idempotency_key=idempotency_key,
        kind="whatif",
        warm_start_plan_id=base.plan_id,
    )


async def wait_for_run(
    db: Database,
    run_id: int,
    timeout_s: float,
    *,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> Run:
    """The run once it has finished, or as it stands after `timeout_s` (or when `gone()`
    says the client left). Polls the database, so it sees runs finished by any worker
    process or host, and never blocks the event loop: the reads run in the thread pool."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = WAIT_POLL_FIRST_S
    while True:
        run = await run_in_threadpool(_read_run, db, run_id)
        remaining = deadline - loop.time()
        if run.state in FINAL_STATES or remaining <= 0:
            return run
        if gone is not None and await gone():
            log.info("what-if run %s: the client left before it finished", run_id)
            return run
        await asyncio.sleep(min(delay, remaining))
        delay = min(2 * delay, WAIT_POLL_MAX_S)


def _read_run(db: Database, run_id: int) -> Run:
    with db.read() as s:
        run = runs_repo.get(s, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def get_whatif_run(session: Session, run_id: int) -> Run:
    run = runs_repo.get(session, run_id)
    if run is None or run.kind != "whatif":
        raise NotFound(f"no what-if run {run_id}")
    return run


def plan_kpis(p: Plan) -> dict[str, Any]:
    """A stored plan's headline numbers (both emission accountings, each on its own)."""
    s = p.summary
    return {
        "id": p.id,
        "status": p.status,
        "objective": p.objective,
        "bound": p.bound,
        "gap": p.gap,
        "total_cost": p.total_cost,
        "energy_cost": _num(s.get("energy_cost")),
        "carbon_cost": _num(s.get("carbon_cost")),
        "penalty": _num(s.get("penalty")),
        "emissions_t": p.emissions_t,
        "emissions_location_t": p.emissions_location_t,
        "green_share": p.green_share,
        "placed": _int(s.get("placed")),
        "unplaced": _int(s.get("unplaced")),
        "served_share": _num(s.get("served_share")),
    }


def highlights(ex: dict[str, Any]) -> dict[str, Any]:
    """The headline of `optimizer.diff.explain`: hours each limit binds per site (counted),
    the first unplaced workloads and moves; the whole explanation is at /plans/{id}/explain."""
    binding = {
        site: {limit: len(hours) for limit, hours in limits.items() if hours}
        for site, limits in ex["binding_hours"].items()
    }
    moves = sorted(ex["moves"], key=lambda m: -(_num(m.get("net_saving")) or 0.0))
    return {
        "binding_hours": {s: v for s, v in binding.items() if v},
        "unplaced": ex["unplaced"][:HIGHLIGHTS],
        "unplaced_total": len(ex["unplaced"]),
        "moves": moves[:HIGHLIGHTS],
        "moves_total": len(moves),
        "policy_violations": ex["policy_violations"],
    }


def whatif_result(session: Session, run: Run) -> dict[str, Any]:
    """A what-if run as answered: its state and, once it succeeded, the plan's KPIs, the
    diff against the base plan and the explanation's highlights."""
    base_id = run.warm_start_plan_id
    out: dict[str, Any] = {
        "run_id": run.id,
        "state": run.state,
        "scenario_version_id": run.scenario_version_id,
        "base_plan_id": base_id,
        "overrides": run.overrides,
        "settings": run.settings,
        "progress": run.progress,
        "error": run.error,
        "plan": None,
        "diff": None,
        "explain": None,
        "message": None,
        "links": {"run": f"/runs/{run.id}", "what_if": f"/what-if/{run.id}"},
    }
    if run.state not in FINAL_STATES:
        out["message"] = f"still {run.state}: poll /runs/{run.id} or /what-if/{run.id}"
        return out
    if run.state != "succeeded" or run.plan_id is None:
        out["message"] = f"the what-if run {run.state}: {run.error or 'no plan'}"
        return out
    plan = plans.get_plan(session, run.plan_id)
    out["plan"] = plan_kpis(plan)
    out["explain"] = highlights(plans.explain_plan(session, plan.id))
    out["links"] |= {"plan": f"/plans/{plan.id}", "explain": f"/plans/{plan.id}/explain"}
    if base_id is None:
        out["message"] = (
            f"no plan of scenario version {run.scenario_version_id} solved without overrides "
            "to compare with: solve one (POST /runs) and ask again, or name base_plan_id"
        )
    else:
        out["diff"] = plans.diff(session, base_id, plan.id)
        out["links"]["diff"] = f"/plans/{base_id}/diff/{plan.id}"
    return out


# ----------------------------------------------------------------------------- sweeps
def _point_overrides(base: dict[str, Any], parameter: str, value: float) -> dict[str, Any]:
    """The overrides of one sweep point: the base's with the swept parameter set (a policy
    value replaces the base's; a multiplier is one more change at every site, whole horizon,
    on top of the base's)."""
    out = dict(base)
    if parameter in POLICY_PARAMETERS:
        out[parameter] = value
    elif parameter == "price_multiplier":
        out["price_changes"] = [*(base.get("price_changes") or []), {"multiplier": value}]
    elif parameter == "green_scaling":
        out["green_scaling"] = [*(base.get("green_scaling") or []), {"multiplier": value}]
    else:
        raise ValueError(f"unknown sweep parameter {parameter!r}")
    return out


def _value_problems(parameter: str, values: Sequence[float]) -> list[dict[str, Any]]:
    """Each value checked as the override it becomes, located at `values[i]`."""
    problems = []
    for i, v in enumerate(values):
        try:
            if parameter in POLICY_PARAMETERS:
                Overrides.model_validate({parameter: v})
            elif parameter == "price_multiplier":
                PriceChange.model_validate({"multiplier": v})
            else:
                GreenScale.model_validate({"multiplier": v})
        except ValidationError as exc:
            problems += [_problem(f"values[{i}]", str(e.get("msg"))) for e in exc.errors()]
    seen: dict[float, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            problems.append(_problem(f"values[{i}]", f"repeats values[{seen[v]}]"))
        seen.setdefault(v, i)
    return problems


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
    in the run queue: QueueFull otherwise, and nothing is stored. No commit."""
    n = len(request.values)
    room = min(settings.whatif_max_sweep_points, settings.queue_limit)
    if n > room:
        which = (
            "whatif_max_sweep_points"
            if settings.whatif_max_sweep_points <= settings.queue_limit
            else "queue_limit"
        )
        # 422, not 429: a sweep longer than the whole queue would never fit, however long
        # the client waited
        raise ProblemTooLarge(
            f"a sweep of {n} values is larger than this server takes",
            problems=[
                _problem(
                    "values",
                    f"{n} values: more than the limit of {room} ({which}, "
                    f"GREENOPT_{which.upper()})",
                )
            ],
        )
    base = resolve_base(
        session, scenario_version_id=request.scenario_version_id, base_plan_id=request.base_plan_id
    )
    solve, problems = _settings_problems(settings, request.settings)
    problems += _value_problems(request.parameter, request.values)
    # the swept value changes no size: the base overrides decide what the points solve
    check_overrides(
        scenarios.scenario_of(session, base.version), request.overrides, settings, problems
    )
    assert solve is not None  # check_overrides raised for any problem found
    values = sorted(request.values)

    runs_repo.lock_submissions(session)
    active = runs_repo.count_active(session)
    if active + n > settings.queue_limit:
        raise QueueFull(
            f"the sweep needs {n} places in the run queue; {active} of {settings.queue_limit} "
            "are taken: retry later",
            retry_after_s=settings.retry_after_s,
        )
    now = utcnow()
    sweep = repo.add(
        session,
        created_at=now,
        created_by=actor,
        scenario_version_id=base.version.id,
        base_plan_id=base.plan_id,
        parameter=request.parameter,
        values=values,
        overrides=overrides_json(parse_overrides(request.overrides)),
        settings=solve,
        note=request.note,
    )
    for v in values:
        point = _point_overrides(request.overrides, request.parameter, v)
        run = runs_repo.add(
            session,
            kind="sweep_point",
            state="queued",
            priority=settings.sweep_priority,
            scenario_version_id=base.version.id,
            overrides=overrides_json(parse_overrides(point)),
            settings=solve,
            warm_start_plan_id=base.plan_id,
            activate_on_success=False,
            progress={"phase": "queued"},
            sweep_id=sweep.id,
            created_by=actor,
            note=f"sweep {sweep.id}: {request.parameter} = {v:g}",
            created_at=now,
        )
        on_commit(session, functools.partial(runner.submit, run.id, run.priority))
    return sweep


def sweep_state(counts: dict[str, int]) -> SweepState:
    """running while any point is queued or running; then done (every point succeeded),
    failed (none did) or partial."""
    if counts.get("queued", 0) or counts.get("running", 0):
        return "running"
    ok = counts.get("succeeded", 0)
    total = sum(counts.values())
    return "done" if ok == total else "failed" if ok == 0 else "partial"


def _point(value: float, run: Run | None, plan: Plan | None) -> dict[str, Any]:
    point: dict[str, Any] = {
        "value": value,
        "run_id": run.id if run is not None else None,
        "state": run.state if run is not None else None,
        "error": run.error if run is not None else None,
        "plan_id": None,
        "status": None,
        "objective": None,
        "bound": None,
        "gap": None,
        "total_cost": None,
        "energy_cost": None,
        "carbon_cost": None,
        "penalty": None,
        "cost_excl_carbon": None,
        "emissions_t": None,
        "emissions_location_t": None,
        "green_share": None,
        "unplaced": None,
        "pareto": None,
        "pareto_location": None,
    }
    if plan is not None:
        k = plan_kpis(plan)
        point |= {key: value for key, value in k.items() if key in point}
        point["plan_id"] = plan.id
        if k["objective"] is not None and k["carbon_cost"] is not None:
            point["cost_excl_carbon"] = k["objective"] - k["carbon_cost"]
    return point


def _pareto(points: list[dict[str, Any]], emissions: str) -> list[bool | None]:
    """For each point: on the cost-emissions front (no other point costs no more, emits no
    more and is better in one), or None without a plan. Cost is `cost_excl_carbon`, so
    a higher carbon price does not count against its own point, and unplaced work counts
    through its penalty."""

    def less(a: float, b: float) -> bool:
        return a < b - PARETO_REL_TOL * max(abs(a), abs(b), 1.0)

    xy = [
        (p["cost_excl_carbon"], p[emissions])
        if p["cost_excl_carbon"] is not None and p[emissions] is not None
        else None
        for p in points
    ]
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


def _summary(sweep: Sweep, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": sweep.id,
        "state": sweep_state(counts),
        "parameter": sweep.parameter,
        "values": sweep.values,
        "scenario_version_id": sweep.scenario_version_id,
        "base_plan_id": sweep.base_plan_id,
        "overrides": sweep.overrides,
        "settings": sweep.settings,
        "note": sweep.note,
        "created_by": sweep.created_by,
        "created_at": sweep.created_at,
        "counts": counts,
        "links": {"self": f"/what-if/sweep/{sweep.id}"},
    }


def sweep_view(session: Session, sweep_id: int) -> dict[str, Any]:
    """A sweep, its state and its curve: one point per value, in value order, with the
    run's state and its plan's cost, emissions (both accountings, apart), green share,
    unplaced work and gap, and the Pareto flags of each accounting."""
    sweep = repo.get(session, sweep_id)
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}")
    runs = list(repo.runs_of(session, sweep.id))
    found = repo.plans_by_id(session, [r.plan_id for r in runs if r.plan_id is not None])
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    points = []
    # runs were created in the order of the (sorted) values, in one transaction
    for i, v in enumerate(sweep.values):
        run = runs[i] if i < len(runs) else None
        plan = found.get(run.plan_id) if run is not None and run.plan_id is not None else None
        points.append(_point(float(v), run, plan))
    points.sort(key=lambda p: p["value"])
    for key, emissions in (("pareto", "emissions_t"), ("pareto_location", "emissions_location_t")):
        for p, flag in zip(points, _pareto(points, emissions), strict=True):
            p[key] = flag
    return {**_summary(sweep, counts), "points": points}


def list_sweeps(session: Session, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Sweeps, newest first, each with its state and run counts (no curve)."""
    rows, total = repo.page(session, offset=offset, limit=limit)
    counts = repo.run_states(session, [s.id for s in rows])
    return [_summary(s, counts.get(s.id, {})) for s in rows], total


# ----------------------------------------------------------------------------- helpers
def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) else None
