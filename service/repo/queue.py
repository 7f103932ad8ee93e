"""Queries on `queue_items`: the workload queue's jobs and services."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import QueueItem


def get(session: Session, kind: str, workload_id: str, *, lock: bool = False) -> QueueItem | None:
    q = select(QueueItem).where(QueueItem.kind == kind, QueueItem.workload_id == workload_id)
    return session.scalars(q.with_for_update() if lock else q).first()


def items(session: Session, kind: str, *, active_only: bool = False) -> Sequence[QueueItem]:
    q = select(QueueItem).where(QueueItem.kind == kind)
    if active_only:
        q = q.where(QueueItem.state == "active")
    return session.scalars(q.order_by(QueueItem.workload_id)).all()


def add(session: Session, item: QueueItem) -> QueueItem:
    session.add(item)
    session.flush()
    return item
