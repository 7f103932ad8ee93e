"""Queries on runs. State changes are conditional UPDATEs (`... WHERE state = 'queued'`) so
two processes racing for the same run cannot both win."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from service.models import ACTIVE_RUN_STATES, Run

# arbitrary constant: the PostgreSQL transaction lock that serialises run submissions, so
# the queue bound and idempotency checks hold across API replicas
SUBMIT_LOCK_ID = 0x72756E73  # "runs"


def lock_submissions(session: Session) -> None:
    """Serialise submissions until the end of the transaction (SQLite: BEGIN IMMEDIATE
    already did)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SUBMIT_LOCK_ID})


def add(session: Session, **values: Any) -> Run:
    run = Run(**values)
    session.add(run)
    session.flush()
    return run


def get(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def by_idempotency_key(session: Session, key: str) -> Run | None:
    return session.scalar(select(Run).where(Run.idempotency_key == key))


def count_active(session: Session) -> int:
    q = select(func.count()).select_from(Run).where(Run.state.in_(ACTIVE_RUN_STATES))
    return int(session.scalar(q) or 0)


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Run.state, func.count()).group_by(Run.state)).all()
    return {str(s): int(n) for s, n in rows}


def page(
    session: Session,
    *,
    state: str | None,
    kind: str | None,
    offset: int,
    limit: int,
) -> tuple[Sequence[Run], int]:
    q = select(Run)
    c = select(func.count()).select_from(Run)
    if state is not None:
        q, c = q.where(Run.state == state), c.where(Run.state == state)
    if kind is not None:
        q, c = q.where(Run.kind == kind), c.where(Run.kind == kind)
    total = int(session.scalar(c) or 0)
    rows = session.scalars(q.order_by(Run.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


def claim(session: Session, run_id: int, *, worker: str, now: dt.datetime) -> bool:
    """queued -> running, for exactly one caller."""
    res = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.state == "queued")
        .values(
            state="running",
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            attempts=Run.attempts + 1,
            progress={"phase": "starting", "elapsed_s": 0.0},
        )
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def write_progress(
    session: Session,
    run_id: int,
    progress: dict[str, Any],
    now: dt.datetime,
    *,
    worker: str | None = None,
) -> bool:
    """Progress + heartbeat of a running run; with `worker`, only while that worker still
    holds it (False: the run was finished or handed to another worker meanwhile)."""
    q = update(Run).where(Run.id == run_id, Run.state == "running")
    if worker is not None:
        q = q.where(Run.worker == worker)
    res = session.execute(q.values(progress=progress, heartbeat_at=now))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def cancel_requested(session: Session, run_id: int) -> bool:
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))


def finish(
    session: Session,
    run_id: int,
    *,
    state: str,
    now: dt.datetime,
    from_states: tuple[str, ...] = ("running",),
    worker: str | None = None,
    **values: Any,
) -> bool:
    """Move a run to a final state if it is still in one of `from_states` (and, with
    `worker`, still held by that worker: one whose run was given to another worker after
    its heartbeat went stale must not decide the run's fate)."""
    run = session.get(Run, run_id)
    started = run.started_at if run is not None else None
    duration = (now - started).total_seconds() if started is not None else None
    q = update(Run).where(Run.id == run_id, Run.state.in_(from_states))
    if worker is not None:
        q = q.where(Run.worker == worker)
    res = session.execute(q.values(state=state, finished_at=now, duration_s=duration, **values))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, run_id: int) -> None:
    session.execute(
        update(Run).where(Run.id == run_id, Run.state == "running").values(cancel_requested=True)
    )


# ----------------------------------------------------------------------------- distributed
# The celery runner's bookkeeping. For a *queued* run `heartbeat_at` is when it was last
# handed to the broker (NULL: never, or the hand-over failed); for a *running* one, when its
# worker last wrote progress. Either way: the last time someone vouched for the run.


def dispatch_info(session: Session, run_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    """(id, kind, priority) of those of `run_ids` still queued, most urgent first."""
    if not run_ids:
        return []
    rows = session.execute(
        select(Run.id, Run.kind, Run.priority)
        .where(Run.id.in_(list(run_ids)), Run.state == "queued")
        .order_by(Run.priority.desc(), Run.id)
    ).all()
    return [(int(i), str(k), int(p)) for i, k, p in rows]


def mark_dispatched(session: Session, run_ids: Sequence[int], now: dt.datetime) -> None:
    """Record that these queued runs were just handed to the broker."""
    if run_ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(list(run_ids)), Run.state == "queued")
            .values(heartbeat_at=now)
        )


def undelivered(
    session: Session,
    *,
    created_before: dt.datetime,
    dispatched_before: dt.datetime,
    limit: int,
) -> list[tuple[int, str, int]]:
    """(id, kind, priority) of queued runs never handed to the broker (created before
    `created_before`, so a submission still on its way is left to its submitter) or last
    handed over before `dispatched_before`; most urgent first."""
    rows = session.execute(
        select(Run.id, Run.kind, Run.priority)
        .where(
            Run.state == "queued",
            ((Run.heartbeat_at.is_(None)) & (Run.created_at < created_before))
            | (Run.heartbeat_at < dispatched_before),
        )
        .order_by(Run.priority.desc(), Run.id)
        .limit(limit)
    ).all()
    return [(int(i), str(k), int(p)) for i, k, p in rows]


def _heartbeat_before(t: dt.datetime) -> ColumnElement[bool]:
    # no heartbeat at all (a row from before heartbeats were written) counts as stale
    return or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < t)


def stale_running(session: Session, stale_before: dt.datetime) -> list[int]:
    """Running runs whose worker has not written a heartbeat since `stale_before`."""
    return [
        int(i)
        for i in session.scalars(
            select(Run.id)
            .where(Run.state == "running", _heartbeat_before(stale_before))
            .order_by(Run.id)
        )
    ]


def requeue_stale(
    session: Session,
    run_id: int,
    *,
    stale_before: dt.datetime,
    max_attempts: int,
    now: dt.datetime,
) -> str | None:
    """Take a running run from a worker that stopped sending heartbeats (before
    `stale_before`): `queued` again, or `failed` once it was started `max_attempts` times, or
    `cancelled` if a cancel was asked for. Conditional on the heartbeat still being stale, so
    a worker that just wrote one keeps its run, and of several callers one wins. Returns the
    new state, or None when the run was not (or no longer) stale."""
    run = session.get(Run, run_id)
    if run is None or run.state != "running":
        return None
    lost = f"the worker running it ({run.worker}) stopped sending heartbeats"
    values: dict[str, Any]
    if run.cancel_requested:
        state = "cancelled"
        values = {"error": f"cancelled on request; {lost}", "progress": {"phase": "cancelled"}}
    elif run.attempts >= max_attempts:
        state = "failed"
        values = {"error": f"{lost}; started {run.attempts} times, the limit is {max_attempts}"}
    else:
        state = "queued"
        values = {
            "progress": {"phase": "queued", "retry": f"{lost}; attempt {run.attempts} lost"},
            "heartbeat_at": None,  # not handed to the broker since: dispatch it now
            "started_at": None,
        }
    if state != "queued":
        duration = (now - run.started_at).total_seconds() if run.started_at else None
        values |= {"finished_at": now, "duration_s": duration}
    stale = (Run.id == run_id) & (Run.state == "running") & _heartbeat_before(stale_before)
    res = session.execute(update(Run).where(stale).values(state=state, **values))
    return state if res.rowcount else None  # type: ignore[attr-defined]


def duration_histogram(
    session: Session, buckets: Sequence[float]
) -> dict[tuple[str, str], tuple[list[int], int, float]]:
    """Per (kind, final state): cumulative counts of runs that ran at most each bucket's
    seconds, their count and their total seconds. Counted in SQL: the result stays small
    however many runs there are."""
    cols = [
        func.sum(case((Run.duration_s <= b, 1), else_=0)).label(f"le_{i}")
        for i, b in enumerate(buckets)
    ]
    rows = session.execute(
        select(Run.kind, Run.state, func.count(), func.sum(Run.duration_s), *cols)
        .where(Run.duration_s.is_not(None))
        .group_by(Run.kind, Run.state)
    ).all()
    return {
        (str(r[0]), str(r[1])): ([int(x or 0) for x in r[4:]], int(r[2]), float(r[3] or 0.0))
        for r in rows
    }


# ----------------------------------------------------------------------------- instances
# Runs of the local solver pools carry the instance whose pool runs them (runs.instance_id).


def assign_instance(session: Session, run_id: int, instance_id: str) -> bool:
    """Record that `instance_id`'s pool is about to run this queued run."""
    res = session.execute(
        update(Run).where(Run.id == run_id, Run.state == "queued").values(instance_id=instance_id)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _not_held_by(live_instances: Sequence[str]) -> ColumnElement[bool]:
    return or_(Run.instance_id.is_(None), Run.instance_id.not_in(list(live_instances)))


def interrupt_orphans(
    session: Session,
    *,
    live_instances: Sequence[str],
    now: dt.datetime,
    reason: str,
    include_unowned: bool,
) -> list[int]:
    """Mark `interrupted` the running runs of instances not in `live_instances` (and, with
    `include_unowned`, running runs that name no instance); returns their ids."""
    owner = (
        _not_held_by(live_instances)
        if include_unowned
        else (Run.instance_id.is_not(None) & Run.instance_id.not_in(list(live_instances)))
    )
    ids = list(session.scalars(select(Run.id).where(Run.state == "running", owner)))
    if ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(ids), Run.state == "running")
            .values(state="interrupted", finished_at=now, error=reason)
        )
    return ids


def queued_unheld(session: Session, live_instances: Sequence[str]) -> list[tuple[int, int]]:
    """(run id, priority) of queued runs no live instance's pool is starting, most urgent
    first."""
    rows = session.execute(
        select(Run.id, Run.priority)
        .where(Run.state == "queued", _not_held_by(live_instances))
        .order_by(Run.priority.desc(), Run.id)
    ).all()
    return [(int(i), int(p)) for i, p in rows]


def pending_activation(session: Session) -> int | None:
    """A queued or running run that will activate its plan, the oldest first."""
    return session.scalar(
        select(Run.id)
        .where(Run.state.in_(ACTIVE_RUN_STATES), Run.activate_on_success.is_(True))
        .order_by(Run.id)
        .limit(1)
    )
