"""Queries on the nightly schedule (one row) and the nights (`nightly_runs`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.models import ACTIVE_RUN_STATES, NightlyRun, Plan, Run, Schedule


# ----------------------------------------------------------------------------- schedule
def schedule(session: Session) -> Schedule | None:
    return session.get(Schedule, 1)


def insert_schedule_if_missing(session: Session, **values: Any) -> Schedule:
    """The schedule row, made from `values` if there is none. An upsert that does nothing
    on conflict: two processes making the first row at once must not fail on it."""
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Schedule).values(id=1, **values)
    session.execute(ins.on_conflict_do_nothing(index_elements=[Schedule.id]))
    row = session.get(Schedule, 1, populate_existing=True)
    assert row is not None
    return row


def mark_scheduler_seen(session: Session, *, scheduler_id: str, now: dt.datetime) -> None:
    session.execute(
        update(Schedule)
        .where(Schedule.id == 1)
        .values(scheduler_seen_at=now, scheduler_id=scheduler_id)
    )


# ----------------------------------------------------------------------------- nights
def add_night(session: Session, **values: Any) -> NightlyRun:
    """Insert a night; the flush raises IntegrityError when its night is taken already."""
    row = NightlyRun(**values)
    session.add(row)
    session.flush()
    return row


def by_night(session: Session, night: dt.date) -> NightlyRun | None:
    return session.scalar(select(NightlyRun).where(NightlyRun.night == night))


def _with_runs() -> Any:
    return (
        select(NightlyRun, Run, Plan)
        .outerjoin(Run, Run.id == NightlyRun.run_id)
        .outerjoin(Plan, Plan.id == Run.plan_id)
    )


def unsettled(session: Session) -> list[tuple[NightlyRun, Run | None, Plan | None]]:
    """Nights still `running`, each with its run and the run's plan (if any)."""
    rows = session.execute(
        _with_runs().where(NightlyRun.state == "running").order_by(NightlyRun.id)
    ).all()
    return [(n, r, p) for n, r, p in rows]


def settle(
    session: Session,
    night_id: int,
    *,
    state: str,
    reason: str,
    plan_id: int | None,
    finished_at: dt.datetime,
) -> bool:
    """Record how a night ended, once: only a `running` night changes."""
    res = session.execute(
        update(NightlyRun)
        .where(NightlyRun.id == night_id, NightlyRun.state == "running")
        .values(state=state, reason=reason, plan_id=plan_id, finished_at=finished_at)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def with_run(session: Session, night_id: int) -> tuple[NightlyRun, Run | None, Plan | None] | None:
    row = session.execute(_with_runs().where(NightlyRun.id == night_id)).first()
    return (row[0], row[1], row[2]) if row is not None else None


def page(
    session: Session, *, offset: int, limit: int
) -> tuple[Sequence[tuple[NightlyRun, Run | None, Plan | None]], int]:
    """Nights and run-nows, newest first, with their runs and plans."""
    total = int(session.scalar(select(func.count()).select_from(NightlyRun)) or 0)
    rows = session.execute(
        _with_runs().order_by(NightlyRun.id.desc()).offset(offset).limit(limit)
    ).all()
    return [(n, r, p) for n, r, p in rows], total


def active_nightly_run(session: Session) -> Run | None:
    """A nightly run still queued or running, if any (the oldest)."""
    return session.scalar(
        select(Run)
        .where(Run.kind == "nightly", Run.state.in_(ACTIVE_RUN_STATES))
        .order_by(Run.id)
        .limit(1)
    )


def queued_nightly_runs(session: Session) -> list[tuple[int, int]]:
    """(run id, priority) of nightly runs waiting for an executor."""
    rows = session.execute(
        select(Run.id, Run.priority)
        .where(Run.kind == "nightly", Run.state == "queued")
        .order_by(Run.priority.desc(), Run.id)
    ).all()
    return [(int(i), int(p)) for i, p in rows]
