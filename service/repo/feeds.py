"""Queries on `feed_series`: the hourly series forecast feeds delivered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import FeedSeries


def add_all(session: Session, rows: Sequence[FeedSeries]) -> None:
    session.add_all(rows)
    session.flush()


def has_source(session: Session, sha256: str) -> bool:
    q = select(func.count()).select_from(FeedSeries).where(FeedSeries.source_sha256 == sha256)
    return bool(session.scalar(q))


def candidates(
    session: Session,
    *,
    channels: Sequence[str],
    series: Sequence[str],
    issued_from: dt.datetime,
    as_of: dt.datetime,
    starts_by: dt.datetime,
) -> Sequence[FeedSeries]:
    """Series of `channels` issued in [issued_from, as_of] that start by `starts_by`."""
    q = select(FeedSeries).where(
        FeedSeries.channel.in_(channels),
        FeedSeries.series.in_(series),
        FeedSeries.issued_at >= issued_from,
        FeedSeries.issued_at <= as_of,
        FeedSeries.start_at <= starts_by,
    )
    return session.scalars(q.order_by(FeedSeries.issued_at.desc(), FeedSeries.id.desc())).all()


def page(
    session: Session, *, series: str | None, entity: str | None, offset: int, limit: int
) -> tuple[Sequence[FeedSeries], int]:
    q = select(FeedSeries)
    if series:
        q = q.where(FeedSeries.series == series)
    if entity:
        q = q.where(FeedSeries.entity == entity)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(FeedSeries.received_at.desc(), FeedSeries.id.desc()).offset(offset).limit(limit)
    ).all()
    return rows, int(total)
