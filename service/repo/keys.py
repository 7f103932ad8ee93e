"""Queries on API keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.models import ApiKey


def add(
    session: Session,
    *,
    name: str,
    role: str,
    prefix: str,
    sha256: str,
    created_by: str,
    expires_at: dt.datetime | None,
) -> ApiKey:
    key = ApiKey(
        name=name,
        role=role,
        prefix=prefix,
        sha256=sha256,
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key


def by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def get(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def _active(at: dt.datetime) -> ColumnElement[bool]:
    """Neither revoked nor expired at `at`."""
    return and_(
        ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > at)
    )


def list_all(session: Session, *, active_at: dt.datetime | None = None) -> Sequence[ApiKey]:
    """Every key, or only those active at `active_at`."""
    q = select(ApiKey).order_by(ApiKey.id)
    if active_at is not None:
        q = q.where(_active(active_at))
    return session.scalars(q).all()


def count_active(session: Session, at: dt.datetime, role: str | None = None) -> int:
    q = select(func.count()).select_from(ApiKey).where(_active(at))
    if role is not None:
        q = q.where(ApiKey.role == role)
    return int(session.scalar(q) or 0)


def revoke(session: Session, key_id: int, at: dt.datetime, by: str) -> bool:
    res = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
