"""Service functions for runs: submit (idempotency, bounded queue), cancel, read, recover.

`queue_runs` is the one way solves enter the queue: `POST /runs`, the nightly job (through
`submit_run`), what-ifs and sweeps (a batch) call it, under one lock, one queue limit and one
idempotency rule. It never solves: it stores `queued` runs and hands their ids to the runner
once the transaction has committed, so a worker always finds the row.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from sqlalchemy.orm import Session

from optimizer.scenario import InputValidationError
from optimizer.whatif import Overrides, OverridesIn, apply_overrides
from service import scenarios
from service.db import on_commit
from service.errors import Conflict, InvalidInput, NotFound, QueueFull, override_problems
from service.models import RUN_KINDS, Run, ScenarioVersion, utcnow
from service.repo import runs as repo
from service.settings import Settings

log = logging.getLogger("greenopt.runs")

FINAL_STATES = ("succeeded", "failed", "interrupted", "cancelled")


class Submitter(Protocol):
    """What `queue_runs` needs of a runner (see service.runner.SolveRunner)."""

    def submit(self, run_id: int, priority: int = 0) -> None: ...


class SolveSettingsIn(BaseModel):
    """Solver settings a request may change; threads and seed are the server's (so the
    same request gives the same plan)."""

    model_config = ConfigDict(extra="forbid")
    time_limit_s: StrictFloat | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="solver time limit, s (default: the server's)",
    )
    mip_rel_gap: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="relative MIP gap to stop at (default: the server's)",
    )
    finish_by_limit: StrictBool = Field(
        default=False,
        description="the whole solve within time_limit_s: the churn-aware pass and the "
        "dominance guard only where expected to end in it (default: they may run past it)",
    )


class RunRequest(BaseModel):
    """A request to solve the current (or a given) scenario version."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "settings": {"time_limit_s": 30, "mip_rel_gap": 0.001},
                    "overrides": {"carbon_price_cny_per_t": 100},
                    "activate": True,
                    "note": "re-plan after the forecast update",
                }
            ]
        },
    )
    settings: SolveSettingsIn = Field(default_factory=SolveSettingsIn)
    overrides: OverridesIn = Field(
        default_factory=Overrides,
        description="policy values, price changes, outages, green scaling, accelerator mix, "
        "jobs added or removed",
    )
    activate: StrictBool = Field(
        default=False, description="make the plan active when the run succeeds"
    )
    priority: StrictInt = Field(default=0, ge=-100, le=100, description="higher runs first")
    scenario_version_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="scenario version to solve (default: the current one)",
    )
    note: str = Field(default="", max_length=1000)

    def digest(self) -> str:
        """Identifies the request's content, to tell a retry from a different request."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def solver_settings(settings: Settings, requested: SolveSettingsIn) -> dict[str, Any]:
    """The settings a run solves with: the server's defaults, changed where the request says."""
    limit = requested.time_limit_s or settings.solve_time_limit_s
    if limit > settings.solve_max_time_limit_s:
        raise InvalidInput(
            f"time_limit_s {limit:g} exceeds the limit of {settings.solve_max_time_limit_s:g} s",
            problems=[
                {
                    "file": "request",
                    "table": "body",
                    "row": None,
                    "column": "settings.time_limit_s",
                    "hour": None,
                    "message": f"must be at most {settings.solve_max_time_limit_s:g}",
                }
            ],
        )
    gap = requested.mip_rel_gap
    return {
        "time_limit_s": float(limit),
        "mip_rel_gap": float(settings.solve_mip_rel_gap if gap is None else gap),
        "threads": settings.solve_threads,
        "seed": settings.solve_seed,
        "finish_by_limit": requested.finish_by_limit,
    }


@dataclass(frozen=True)
class QueuedRun:
    """One run for `queue_runs` to store: its inputs, checked already."""

    kind: str
    scenario_version_id: int
    overrides: Overrides
    settings: dict[str, Any]
    note: str = ""
    priority: int = 0
    activate: bool = False
    warm_start_plan_id: int | None = None
    sweep_id: int | None = None


def queue_runs(
    session: Session,
    runs: Sequence[QueuedRun],
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
    idempotency_key: str | None = None,
    digest: str | None = None,
) -> tuple[list[Run], bool]:
    """Queue checked runs, all or none; (the runs, True) or, for a repeated idempotency key,
    ([the earlier run], False): Conflict if that key came with another `digest`. Raises
    QueueFull when the runs do not all fit in `queue_limit`. No commit: the runner gets each
    run once the caller's transaction commits."""
    for r in runs:
        if r.kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {r.kind!r}")
    repo.lock_submissions(session)
    if idempotency_key is not None:
        earlier = repo.by_idempotency_key(session, idempotency_key)
        if earlier is not None:
            if earlier.request_sha256 != digest:
                raise Conflict(
                    "this Idempotency-Key was used for a different request; use a new key"
                )
            return [earlier], False
    _refuse_if_no_room(session, len(runs), settings)
    now = utcnow()
    out = []
    for i, r in enumerate(runs):
        run = repo.add(
            session,
            kind=r.kind,
            state="queued",
            priority=r.priority,
            scenario_version_id=r.scenario_version_id,
            overrides=r.overrides.to_json(),
            settings=r.settings,
            activate_on_success=r.activate,
            progress={"phase": "queued"},
            # the key names the request, so its first run
            idempotency_key=idempotency_key if i == 0 else None,
            request_sha256=digest if i == 0 else None,
            sweep_id=r.sweep_id,
            warm_start_plan_id=r.warm_start_plan_id,
            created_by=actor,
            note=r.note,
            created_at=now,
        )
        on_commit(session, functools.partial(runner.submit, run.id, run.priority))
        out.append(run)
    return out, True


def _refuse_if_no_room(session: Session, n: int, settings: Settings) -> None:
    active, limit = repo.count_active(session), settings.queue_limit
    if active + n > limit:
        raise QueueFull(
            f"{active} runs are queued or running (limit {limit}); retry later"
            if n == 1
            else f"{n} runs need places in the run queue; {active} of {limit} are taken: "
            "retry later",
            retry_after_s=settings.retry_after_s,
        )


def refuse_if_full(
    session: Session, *, settings: Settings, n: int = 1, idempotency_key: str | None = None
) -> None:
    """QueueFull if `n` more runs do not fit in the queue: called first by every submission,
    before its expensive checks (loading the scenario, applying overrides), so a flood is
    refused in milliseconds. Without the submission lock: `queue_runs` decides for good. A
    retry of an earlier request (its Idempotency-Key) is left to `queue_runs`, which answers
    it with the earlier run even when the queue is full."""
    if idempotency_key is not None and repo.by_idempotency_key(session, idempotency_key):
        return
    _refuse_if_no_room(session, n, settings)


def _check_overrides(session: Session, version: ScenarioVersion, ov: Overrides) -> None:
    """InvalidInput listing every problem of `ov` against the version's scenario."""
    if ov.is_empty():
        return
    try:
        apply_overrides(scenarios.scenario_of(session, version), ov)
    except InputValidationError as err:
        raise InvalidInput(
            f"{len(err.problems)} problem(s) in the overrides", problems=override_problems(err)
        ) from None


def submit_run(
    session: Session,
    request: RunRequest,
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
    idempotency_key: str | None = None,
    kind: str = "run",
    warm_start_plan_id: int | None = None,
) -> tuple[Run, bool]:
    """Check and queue a run (`queue_runs`); (the run, True) or, for a repeated idempotency
    key, (the earlier run, False). A `warm_start_plan_id` seeds the solver with that stored
    plan (the nightly job passes the active plan)."""
    refuse_if_full(session, settings=settings, idempotency_key=idempotency_key)
    # checked before taking the submission lock: applying overrides may take a while
    version = scenarios.get_version(session, request.scenario_version_id)
    solve = solver_settings(settings, request.settings)
    _check_overrides(session, version, request.overrides)
    queued = QueuedRun(
        kind=kind,
        scenario_version_id=version.id,
        overrides=request.overrides,
        settings=solve,
        note=request.note,
        priority=request.priority,
        activate=request.activate,
        warm_start_plan_id=warm_start_plan_id,
    )
    runs, created = queue_runs(
        session,
        [queued],
        settings=settings,
        runner=runner,
        actor=actor,
        idempotency_key=idempotency_key,
        digest=request.digest(),
    )
    return runs[0], created


def get_run(session: Session, run_id: int) -> Run:
    run = repo.get(session, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def list_runs(
    session: Session, *, state: str | None, kind: str | None, offset: int, limit: int
) -> tuple[list[Run], int]:
    rows, total = repo.page(session, state=state, kind=kind, offset=offset, limit=limit)
    return list(rows), total


def cancel_run(session: Session, run_id: int) -> Run:
    """Queued: cancelled at once. Running: flagged; its executor stops HiGHS and marks it
    cancelled. Already cancelled: unchanged. Otherwise finished: 409."""
    run = get_run(session, run_id)
    if run.state == "queued":
        done = repo.finish(
            session,
            run_id,
            state="cancelled",
            now=utcnow(),
            from_states=("queued",),
            error="cancelled before it started",
            progress={"phase": "cancelled"},
        )
        if not done:  # a worker claimed it meanwhile: ask it to stop
            repo.request_cancel(session, run_id)
    elif run.state == "running":
        repo.request_cancel(session, run_id)
    elif run.state != "cancelled":
        raise Conflict(f"run {run_id} has already finished ({run.state})")
    session.flush()
    session.refresh(run)
    return run


def recover(
    session: Session, runner: Submitter, *, live_instances: Sequence[str]
) -> tuple[list[int], list[int]]:
    """At the start of an instance with a local solver pool: runs left `running` by an
    instance that is no longer alive (or naming none: rows from before instances were
    recorded) died with it, so they become `interrupted`; `queued` runs that no live
    instance is starting are handed to `runner`. The runs of `live_instances` (other
    `greenopt serve` on the same database) are left alone. (interrupted, resubmitted)"""
    interrupted = repo.interrupt_orphans(
        session,
        live_instances=live_instances,
        now=utcnow(),
        reason="interrupted: the process running it stopped",
        include_unowned=True,
    )
    queued = repo.queued_unheld(session, live_instances)
    for run_id, priority in queued:
        on_commit(session, functools.partial(runner.submit, run_id, priority))
    if interrupted:
        log.warning("marked %d run(s) interrupted: %s", len(interrupted), interrupted)
    return interrupted, [r for r, _ in queued]
