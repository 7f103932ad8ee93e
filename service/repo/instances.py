"""Queries on `instances`: the running service processes and their heartbeats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.models import Instance


def add(session: Session, **values: object) -> Instance:
    row = Instance(**values)
    session.add(row)
    session.flush()
    return row


def beat(session: Session, instance_id: str, now: dt.datetime, holds_scheduler: bool) -> bool:
    """Write the heartbeat; False when the row is gone (removed as dead by nobody: rows are
    only removed by their own instance, so this means the database was reset)."""
    res = session.execute(
        update(Instance)
        .where(Instance.id == instance_id)
        .values(heartbeat_at=now, holds_scheduler=holds_scheduler)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def remove(session: Session, instance_id: str) -> None:
    session.execute(delete(Instance).where(Instance.id == instance_id))


def forget_silent_since(session: Session, before: dt.datetime) -> None:
    """Drop the rows of instances silent since before `before` (long dead)."""
    session.execute(delete(Instance).where(Instance.heartbeat_at < before))


def all_instances(session: Session) -> Sequence[Instance]:
    return session.scalars(select(Instance).order_by(Instance.started_at, Instance.id)).all()
