"""The nightly re-optimisation as service functions: the schedule (read, validated change,
next fire time), a night's claim and run, and how each night ended.

A night is claimed by inserting its row (`nightly_runs.night` is UNIQUE): the insert
decides which scheduler runs it, the loser logs and returns. In the same transaction the
night's run is submitted through `service.runs.submit_run`, the function behind POST /runs:
kind `nightly`, the current scenario version, warm-started from the active plan, the
schedule's plan-stability weight and robustness for green at its P10 as policy overrides, activated on success (except a
greedy fallback while a plan is active: see `service.execution`). The claim and the run
land together or not at all. A night that cannot run (invalid scenario, queue full, runner
error) or whose run fails keeps the active plan and says why in its row.

APScheduler is only used here for its cron arithmetic; `service.scheduler` drives these
functions from a process, and tests call them with an injected clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zoneinfo
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, field_validator
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optimizer.scenario import InputValidationError
from optimizer.scenario.schema import MAX_PLAN_STABILITY_WEIGHT
from service import feeds, plans, queue, rolling, runs, scenarios
from service.db import Database
from service.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    QueueFull,
    invalid_input,
)
from service.models import NightlyRun, Plan, Run, Schedule, utcnow
from service.repo import nightly as repo
from service.repo import runs as runs_repo
from service.repo import scenarios as scenarios_repo
from service.runs import RunRequest, SolveSettingsIn, Submitter
from service.settings import Settings

log = logging.getLogger("greenopt.nightly")

# ahead of interactive runs (priority 0) so the night finishes in its window, yet below
# the top of the range so an operator can still put an urgent run before it
NIGHTLY_PRIORITY = 50
# the execution monitor writes a heartbeat every `progress_interval_s`; a running nightly
# run silent for this long (at least) lost its process, and its night is closed as failed
STALE_HEARTBEAT_MIN_S = 300.0
STALE_HEARTBEAT_INTERVALS = 30
_MAX_FIRE_TIMES_SCANNED = 100_000  # bounds the look-back of a cron that fires every second
_TICK = dt.timedelta(microseconds=1)

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


# ----------------------------------------------------------------------------- cron
def _day_number(text: str) -> int:
    """A crontab weekday: 0-7 (0 and 7 are Sunday) or a name (sun..sat)."""
    t = text.strip().lower()
    if t in _DAY_NAMES:
        return _DAY_NAMES.index(t)
    if t.isdigit() and 0 <= int(t) <= 7:
        return int(t)
    raise ValueError(f"{text!r} is not a weekday (0-7 or sun..sat)")


def _weekdays(field: str) -> str:
    """A crontab weekday field as APScheduler 3 weekday names.

    APScheduler 3 counts weekdays from Monday = 0, crontab from Sunday = 0 (its documented
    "historical mistake", fixed only in 4.x); passing the numbers through would move every
    weekday schedule by a day. So the field is expanded to explicit names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if slash else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} in the weekday field must be at least 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = _day_number(a), _day_number(b)
        else:
            lo = _day_number(span)
            hi = 6 if slash else lo  # "1/2": from Monday to the end of the week
        if lo > hi:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def cron_fields(expr: str) -> dict[str, str]:
    """A crontab expression as `CronTrigger` fields: `minute hour day month weekday`, or six
    fields with a leading `second` (for schedules tighter than a minute, e.g. in tests)."""
    parts = expr.split()
    if len(parts) == 5:
        second, rest = "0", parts
    elif len(parts) == 6:
        second, rest = parts[0], parts[1:]
    else:
        raise ValueError(
            f"expected 5 fields (minute hour day month weekday) or 6 with leading seconds, "
            f"got {len(parts)}"
        )
    fields = dict(zip(_CRON_FIELDS, rest, strict=True))
    fields["day_of_week"] = _weekdays(fields["day_of_week"])
    fields["second"] = second
    return fields


def check_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; ValueError if there is none of that name."""
    if name in ("localtime", "posixrules"):
        # files beside the zone database, not zones: they mean different things on each host
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. Asia/Shanghai)")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. Asia/Shanghai)") from None


def make_trigger(cron: str, timezone: str) -> CronTrigger:
    """The APScheduler trigger of a cron expression in a zone (ValueError if invalid)."""
    return CronTrigger(timezone=check_timezone(timezone), **cron_fields(cron))  # type: ignore[arg-type]


def next_fire_time(cron: str, timezone: str, now: dt.datetime) -> dt.datetime | None:
    """The first fire time at or after `now`, in the schedule's zone."""
    fire: dt.datetime | None = make_trigger(cron, timezone).get_next_fire_time(None, now)
    return fire


def last_fire_time(
    cron: str, timezone: str, now: dt.datetime, lookback: dt.timedelta
) -> dt.datetime | None:
    """The latest fire time in (now - lookback, now]: the time a job running at `now` was
    scheduled for. APScheduler 3 does not tell a job its scheduled time, and a night that
    fired late (a scheduler down at 01:30 catching up at 02:10) must still be that night."""
    trigger = make_trigger(cron, timezone)
    last = None
    fire = trigger.get_next_fire_time(None, now.astimezone(dt.UTC) - lookback + _TICK)
    for _ in range(_MAX_FIRE_TIMES_SCANNED):
        if fire is None or fire > now:
            break
        last = fire
        # step in UTC: arithmetic on a local time drops its DST fold, and the second 02:30
        # of a fall-back night plus 1 us would be the first 02:30 again
        fire = trigger.get_next_fire_time(fire, fire.astimezone(dt.UTC) + _TICK)
    return last


def night_of(fire_time: dt.datetime, timezone: str) -> dt.date:
    """The night a fire time stands for: its date in the schedule's zone. Two fire times on
    one local date (a cron in a DST fall-back hour fires twice) are the same night."""
    return fire_time.astimezone(check_timezone(timezone)).date()


# ----------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class ScheduleView:
    """The schedule as stored, or as it will be stored when nobody has changed it yet."""

    cron: str
    timezone: str
    enabled: bool
    time_limit_s: float
    stability_weight: float | None
    updated_at: dt.datetime | None
    updated_by: str
    scheduler_seen_at: dt.datetime | None
    scheduler_id: str | None

    def next_run_at(self, now: dt.datetime) -> dt.datetime | None:
        return next_fire_time(self.cron, self.timezone, now) if self.enabled else None

    @classmethod
    def of(cls, row: Schedule) -> ScheduleView:
        return cls(
            cron=row.cron,
            timezone=row.timezone,
            enabled=row.enabled,
            time_limit_s=row.time_limit_s,
            stability_weight=row.stability_weight,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            scheduler_seen_at=row.scheduler_seen_at,
            scheduler_id=row.scheduler_id,
        )


def _default_values(session: Session, settings: Settings) -> dict[str, Any]:
    timezone = settings.schedule_timezone
    if timezone is None:
        # the sites' zone: the one the current scenario's hours are given in
        current = scenarios_repo.current(session)
        timezone = str((current.manifest if current is not None else {}).get("timezone", "UTC"))
    return {
        "cron": settings.schedule_cron,
        "timezone": timezone,
        "enabled": True,
        "time_limit_s": settings.schedule_time_limit_s,
        "stability_weight": settings.schedule_stability_weight,
    }


def get_schedule(session: Session, settings: Settings) -> ScheduleView:
    """The schedule; the settings' defaults while no row has been written (read-only)."""
    row = repo.schedule(session)
    if row is not None:
        return ScheduleView.of(row)
    return ScheduleView(
        **_default_values(session, settings),
        updated_at=None,
        updated_by="",
        scheduler_seen_at=None,
        scheduler_id=None,
    )


def ensure_schedule(session: Session, settings: Settings) -> Schedule:
    """The schedule row, written from the settings' defaults if there is none yet."""
    row = repo.schedule(session)
    if row is not None:
        return row
    return repo.insert_schedule_if_missing(
        session, **_default_values(session, settings), updated_at=utcnow(), updated_by="defaults"
    )


def _not_null(v: Any) -> Any:
    if v is None:
        raise ValueError("must not be null (leave the field out to keep its value)")
    return v


class ScheduleUpdate(BaseModel):
    """A change to the nightly schedule. Fields left out keep their value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cron": "30 1 * * *",
                    "timezone": "Asia/Shanghai",
                    "enabled": True,
                    "time_limit_s": 600,
                    "stability_weight": 1.0,
                }
            ]
        },
    )
    cron: str | None = Field(
        default=None,
        max_length=100,
        description="crontab `minute hour day month weekday` (weekday 0 or 7 = Sunday), "
        "optionally with a leading seconds field",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone the cron is read in"
    )
    enabled: StrictBool | None = Field(default=None, description="false: no night fires")
    time_limit_s: StrictFloat | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="solver time limit, s"
    )
    stability_weight: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=MAX_PLAN_STABILITY_WEIGHT,
        allow_inf_nan=False,
        description="plan-stability weight passed as a policy override (1: a running job "
        "moves only when the saving pays for the move); null: the scenario's own policy",
    )

    @field_validator("cron", "timezone", "enabled", "time_limit_s", mode="before")
    @classmethod
    def _given_means_a_value(cls, v: Any) -> Any:
        return _not_null(v)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        v = " ".join(v.split())
        # raises ValueError naming what is wrong; a date that never comes (30 February)
        # would be a schedule that silently never runs
        if make_trigger(v, "UTC").get_next_fire_time(None, utcnow()) is None:
            raise ValueError(f"{v!r} never fires")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        check_timezone(v)
        return v


def update_schedule(
    session: Session, change: ScheduleUpdate, *, settings: Settings, actor: str
) -> ScheduleView:
    """Apply a validated change; a running scheduler picks it up within `scheduler_poll_s`."""
    limit = change.time_limit_s
    if limit is not None and limit > settings.solve_max_time_limit_s:
        raise InvalidInput(
            f"time_limit_s {limit:g} exceeds the limit of {settings.solve_max_time_limit_s:g} s",
            problems=[
                {
                    "file": "request",
                    "table": "body",
                    "row": None,
                    "column": "time_limit_s",
                    "hour": None,
                    "message": f"must be at most {settings.solve_max_time_limit_s:g}",
                }
            ],
        )
    row = ensure_schedule(session, settings)
    for name in change.model_fields_set:
        setattr(row, name, getattr(change, name))
    row.updated_at = utcnow()
    row.updated_by = actor
    session.flush()
    log.info(
        "schedule changed by %s: %s",
        actor,
        {k: getattr(change, k) for k in sorted(change.model_fields_set)},
    )
    return ScheduleView.of(row)


# ----------------------------------------------------------------------------- nights
@dataclass(frozen=True)
class NightView:
    """A night (or run-now) with its run and plan; the state is the run's outcome as soon
    as the run has finished, even before a scheduler has recorded it."""

    id: int
    night: dt.date | None
    trigger: str
    state: str
    reason: str
    run_id: int | None
    run_state: str | None
    plan_id: int | None
    plan_status: str | None
    activated: bool
    previous_plan_id: int | None
    scenario_version_id: int | None
    scheduled_for: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


def outcome(night: NightlyRun, run: Run | None, plan: Plan | None) -> tuple[str, str]:
    """(state, reason) of a night from its run: `running` while the run is queued or
    running; `succeeded` when its plan became active; `failed` otherwise, saying why and
    that the previous plan was kept."""
    kept = (
        f"plan {night.previous_plan_id} stays active"
        if night.previous_plan_id is not None
        else "no plan was active"
    )
    if run is None:
        return "failed", f"no run was made; {kept}"
    if run.state in ("queued", "running"):
        return "running", ""
    if run.state == "succeeded" and plan is not None:
        if run.progress.get("activated"):
            gap = f", gap {plan.gap:.3%}" if plan.gap is not None else ""
            replaced = (
                f", replacing plan {night.previous_plan_id}"
                if night.previous_plan_id is not None
                else ""
            )
            return "succeeded", f"plan {plan.id} ({plan.status}{gap}) activated{replaced}"
        if plan.status == "fallback":
            why = plan.summary.get("solver", {}).get("fallback_reason") or "HiGHS found no plan"
            return "failed", (
                f"{why}: the greedy fallback plan {plan.id} was stored, not activated; {kept}"
            )
        return "failed", f"plan {plan.id} ({plan.status}) was stored, not activated; {kept}"
    error = run.error or run.state
    return "failed", f"run {run.id} {run.state}: {error}; {kept}"


def _view(night: NightlyRun, run: Run | None, plan: Plan | None) -> NightView:
    state, reason = night.state, night.reason
    if state == "running":
        state, reason = outcome(night, run, plan)
    activated = bool(run is not None and run.state == "succeeded" and run.progress.get("activated"))
    finished = night.finished_at or (run.finished_at if run is not None else None)
    return NightView(
        id=night.id,
        night=night.night,
        trigger=night.trigger,
        state=state,
        reason=reason,
        run_id=night.run_id,
        run_state=run.state if run is not None else None,
        plan_id=night.plan_id if night.plan_id is not None else (plan.id if plan else None),
        plan_status=plan.status if plan is not None else None,
        activated=activated,
        previous_plan_id=night.previous_plan_id,
        scenario_version_id=run.scenario_version_id if run is not None else None,
        scheduled_for=night.scheduled_for,
        created_by=night.created_by,
        created_at=night.created_at,
        started_at=run.started_at if run is not None else None,
        finished_at=finished if state != "running" else None,
    )


def history(session: Session, *, offset: int, limit: int) -> tuple[list[NightView], int]:
    """Nights and run-nows, newest first."""
    rows, total = repo.page(session, offset=offset, limit=limit)
    return [_view(n, r, p) for n, r, p in rows], total


def get_night(session: Session, night_id: int) -> NightView:
    found = repo.with_run(session, night_id)
    if found is None:
        raise NotFound(f"no night {night_id}")
    return _view(*found)


NIGHTLY_ROBUST_GREEN_QUANTILE = 0.1
"""The nightly plan is robust for green at its P10 (policy `robust_green_quantile`; issue 12):
a plan nobody reviews before it runs must not lean on green that may not come."""


def nightly_request(sched: ScheduleView, version_id: int, note: str) -> RunRequest:
    """The POST /runs request a night makes."""
    # the plan an operator follows unattended stays powerable if green comes in low
    overrides: dict[str, Any] = {"robust_green_quantile": NIGHTLY_ROBUST_GREEN_QUANTILE}
    if sched.stability_weight is not None:
        overrides["plan_stability_weight"] = sched.stability_weight
    return RunRequest(
        settings=SolveSettingsIn(time_limit_s=sched.time_limit_s),
        overrides=overrides,
        activate=True,
        priority=NIGHTLY_PRIORITY,
        scenario_version_id=version_id,
        note=note,
    )


def _claim_and_submit(
    session: Session,
    *,
    settings: Settings,
    sched: ScheduleView,
    runner: Submitter,
    night: dt.date | None,
    trigger: str,
    scheduled_for: dt.datetime,
    actor: str,
    note: str = "",
    gathered: feeds.Gathered | None = None,
) -> NightlyRun:
    """Insert the night (IntegrityError if it is taken), check the current scenario and
    submit the night's run, all in the caller's transaction (`gathered`: what the night's
    feed I/O met before it)."""
    previous = plans.active_plan_id(session)
    row = repo.add_night(
        session,
        night=night,
        trigger=trigger,
        state="running",
        scheduled_for=scheduled_for,
        previous_plan_id=previous,
        created_by=actor,
        created_at=utcnow(),
    )
    version = scenarios.current_version(session)
    try:
        # versions were valid when stored; the optimizer's rules may have grown since
        scenarios.scenario_of(session, version)
    except InputValidationError as err:
        raise invalid_input(
            err,
            f"the current scenario version {version.id} is invalid: "
            f"{len(err.problems)} problem(s), e.g. {err.problems[0]}",
        ) from None
    label = f"night {night.isoformat()}" if night is not None else "run-now"
    if settings.nightly_horizon_h:
        version = rolling.roll(
            session,
            version,
            after=scheduled_for,
            horizon_h=settings.nightly_horizon_h,
            boundary_hour=settings.nightly_boundary_hour,
            actor=actor,
            label=label,
            settings=settings,
            gathered=gathered,
        )
    text = f"nightly re-optimisation ({label})" + (f": {note}" if note else "")
    run, _ = runs.submit_run(
        session,
        nightly_request(sched, version.id, text[:1000]),
        settings=settings,
        runner=runner,
        actor=actor,
        # a second, independent guard against two runs for one night
        idempotency_key=f"nightly:{night.isoformat()}" if night is not None else None,
        kind="nightly",
        warm_start_plan_id=previous,
    )
    row.run_id = run.id
    session.flush()
    return row


class _Collect:
    """Holds the run a transaction submitted until it has committed."""

    def __init__(self) -> None:
        self.got: list[tuple[int, int]] = []

    def submit(self, run_id: int, priority: int = 0) -> None:
        self.got.append((run_id, priority))


def record_failure(
    db: Database,
    *,
    night: dt.date,
    scheduled_for: dt.datetime,
    reason: str,
    actor: str,
) -> NightlyRun | None:
    """A night that ended before it had a run (it could not submit one, or no scheduler
    ran at its time); None if another scheduler has the night."""
    try:
        with db.write() as s:
            previous = plans.active_plan_id(s)
            kept = f"plan {previous} stays active" if previous is not None else "no plan is active"
            now = utcnow()
            row = repo.add_night(
                s,
                night=night,
                trigger="schedule",
                state="failed",
                reason=f"{reason}; {kept}",
                scheduled_for=scheduled_for,
                previous_plan_id=previous,
                created_by=actor,
                created_at=now,
                finished_at=now,
            )
    except IntegrityError:
        log.info("night %s: another scheduler recorded it first", night)
        return None
    log.warning("night %s failed: %s", night, row.reason, extra={"night": str(night)})
    return row


def _describe(err: DomainError) -> str:
    if err.problems:
        first = err.problems[0]
        where = ", ".join(
            f"{k} {first[k]}" for k in ("table", "row", "column", "hour") if first.get(k)
        )
        return f"{err.message} ({where}: {first.get('message')})" if where else err.message
    return err.message


def run_night(
    db: Database,
    settings: Settings,
    runner: Submitter,
    *,
    now: dt.datetime | None = None,
    night: dt.date | None = None,
    actor: str = "scheduler",
    stop: threading.Event | None = None,
) -> NightlyRun | None:
    """The scheduled job: claim tonight and submit its run. Returns the night's row, or None
    when another scheduler has the night (or the schedule is disabled).

    `now` is when the job runs (default: the clock); the night is the local date of the
    cron fire time it stands for, unless given."""
    now = now or utcnow()
    with db.read() as s:
        sched = get_schedule(s, settings)
    lookback = dt.timedelta(seconds=settings.scheduler_misfire_grace_s + 60)
    fired = last_fire_time(sched.cron, sched.timezone, now, lookback) or now
    night = night or night_of(fired, sched.timezone)
    if not sched.enabled:
        # the scheduler pauses its job when the schedule is disabled; a fire racing a PUT
        # still honours the table
        log.info("night %s: the schedule is disabled; not run", night)
        return None
    stop = stop or threading.Event()
    gathered = _progress_files(db, settings, night, _gather_feeds(db, settings, fired))
    deadline = time.monotonic() + settings.nightly_queue_wait_s
    while True:
        held = _Collect()
        try:
            with db.write() as s:
                row = _claim_and_submit(
                    s,
                    settings=settings,
                    sched=sched,
                    runner=held,
                    night=night,
                    trigger="schedule",
                    scheduled_for=fired,
                    actor=actor,
                    gathered=gathered,
                )
        except IntegrityError:
            with db.read() as s:
                taken = repo.by_night(s, night)
            if taken is None:
                raise
            log.info(
                "night %s is taken (night row %s, by %s); this scheduler stands down",
                night,
                taken.id,
                taken.created_by,
                extra={"night": str(night)},
            )
            return None
        except QueueFull as err:
            if time.monotonic() + err.retry_after_s <= deadline and not stop.is_set():
                log.warning("night %s: %s; retrying in %s s", night, err, err.retry_after_s)
                stop.wait(err.retry_after_s)
                continue
            return record_failure(
                db,
                night=night,
                scheduled_for=fired,
                reason=f"the run queue stayed full for {settings.nightly_queue_wait_s:g} s "
                f"({err.message})",
                actor=actor,
            )
        except DomainError as err:  # an invalid scenario, a time limit over the maximum...
            return record_failure(
                db, night=night, scheduled_for=fired, reason=_describe(err), actor=actor
            )
        break
    log.info(
        "night %s: run %s submitted (warm start from plan %s)",
        night,
        row.run_id,
        row.previous_plan_id,
        extra={"night": str(night), "run_id": row.run_id},
    )
    _hand_over(db, row, runner, held)
    return row


def _progress_files(
    db: Database, settings: Settings, night: dt.date, gathered: feeds.Gathered
) -> feeds.Gathered:
    """Apply the progress files dropped for the night (by the fleet's own scheduler) before
    its window is built; the refused ones go with `gathered` into the night's note."""
    if settings.progress_dir is None:
        return gathered
    refused = queue.scan_progress_folder(db, settings.progress_dir)
    for why in refused:
        log.warning("night %s: %s", night, why)
    return replace(gathered, progress=tuple(refused))


def _gather_feeds(db: Database, settings: Settings, fired: dt.datetime) -> feeds.Gathered:
    """A rolling night's feed I/O (watched folder, HTTP pulls), before its transaction so
    no lock is held while a feed answers; a run-now reads only what is stored."""
    if not settings.nightly_horizon_h:
        return feeds.Gathered()
    with db.read() as s:
        try:
            version = scenarios.current_version(s)
        except DomainError:  # no scenario: the night fails on that, and says it
            return feeds.Gathered()
        start = rolling.window_start(version, fired, settings.nightly_boundary_hour)
    return feeds.gather(
        db, settings, start=start, hours=settings.nightly_horizon_h, as_of=pd.Timestamp(fired)
    )


def _hand_over(db: Database, row: NightlyRun, runner: Submitter, held: _Collect) -> None:
    """Give the committed run to the runner; a runner that refuses it fails the night at
    once instead of leaving the run queued with nobody to execute it."""
    for run_id, priority in held.got:
        try:
            runner.submit(run_id, priority)
        except Exception as exc:
            log.exception("night %s: the runner refused run %s", row.night, run_id)
            error = f"the runner refused it: {type(exc).__name__}: {exc}"
            now = utcnow()
            with db.write() as s:
                runs_repo.finish(
                    s, run_id, state="failed", now=now, from_states=("queued",), error=error
                )
                run = runs_repo.get(s, run_id)
                state, reason = outcome(row, run, None)
                repo.settle(s, row.id, state=state, reason=reason, plan_id=None, finished_at=now)
            row.state, row.reason = state, reason


class RunNowRequest(BaseModel):
    """POST /schedule/run-now: a nightly-style run now; everything else is the schedule's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "forecast update after the wind alert"}]},
    )
    note: str = Field(default="", max_length=1000, description="why, kept with the run")


def run_now(
    session: Session,
    *,
    settings: Settings,
    runner: Submitter,
    actor: str,
    note: str = "",
) -> NightlyRun:
    """A nightly-style run right now (POST /schedule/run-now): no night key, so it never
    blocks the night. Refused (409) while another nightly run is queued or running."""
    runs_repo.lock_submissions(session)  # the check below and the submission, atomically
    busy = repo.active_nightly_run(session)
    if busy is not None:
        raise Conflict(
            f"nightly run {busy.id} is still {busy.state}; wait for it or cancel it first"
        )
    sched = get_schedule(session, settings)
    now = utcnow()
    row = _claim_and_submit(
        session,
        settings=settings,
        sched=sched,
        runner=runner,
        night=None,
        trigger="manual",
        scheduled_for=now,
        actor=actor,
        note=note,
    )
    log.info("run-now by %s: run %s", actor, row.run_id, extra={"run_id": row.run_id})
    return row


def stale_after_s(settings: Settings) -> float:
    return max(STALE_HEARTBEAT_MIN_S, STALE_HEARTBEAT_INTERVALS * settings.progress_interval_s)


def settle_nights(db: Database, settings: Settings, *, now: dt.datetime | None = None) -> list[int]:
    """Record the outcome of every night whose run has finished; a running night whose run
    has gone silent (its process died) is interrupted and closed. Idempotent; called by
    every scheduler at each poll. Returns the ids of the nights settled."""
    now = now or utcnow()
    stale_before = now - dt.timedelta(seconds=stale_after_s(settings))
    settled: list[int] = []
    with db.write() as s:
        for night, run, plan in repo.unsettled(s):
            if (
                run is not None
                and run.state == "running"
                and run.heartbeat_at is not None
                and run.heartbeat_at < stale_before
            ):
                silent = (now - run.heartbeat_at).total_seconds()
                if runs_repo.finish(
                    s,
                    run.id,
                    state="interrupted",
                    now=now,
                    error=f"interrupted: no heartbeat for {silent:.0f} s (its process died)",
                ):
                    s.refresh(run)
            state, reason = outcome(night, run, plan)
            if state == "running":
                continue
            finished = run.finished_at if run is not None and run.finished_at else now
            if repo.settle(
                s,
                night.id,
                state=state,
                reason=reason,
                plan_id=plan.id if plan is not None else None,
                finished_at=finished,
            ):
                settled.append(night.id)
                log.log(
                    logging.INFO if state == "succeeded" else logging.WARNING,
                    "night %s (%s) %s: %s",
                    night.night or "run-now",
                    night.id,
                    state,
                    reason,
                    extra={"night": str(night.night), "run_id": night.run_id, "state": state},
                )
    return settled


def requeue_nightly_runs(db: Database, runner: Submitter) -> list[int]:
    """Hand nightly runs left queued (a scheduler stopped between commit and hand-over) to
    `runner`; whoever claims a run first executes it, so a duplicate hand-over is harmless."""
    with db.read() as s:
        queued = repo.queued_nightly_runs(s)
    for run_id, priority in queued:
        runner.submit(run_id, priority)
    return [r for r, _ in queued]
