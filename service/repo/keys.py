"""Queries on API keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.models import ApiKey


def add(session: Session, *, name: str, role: str, prefix: str, sha256: str) -> ApiKey:
    key = ApiKey(name=name, role=role, prefix=prefix, sha256=sha256)
    session.add(key)
    session.flush()
    return key


def by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def get(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_all(session: Session, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        q = q.where(ApiKey.revoked_at.is_(None))
    return session.scalars(q).all()


def count_active(session: Session, role: str | None = None) -> int:
    q = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
    if role is not None:
        q = q.where(ApiKey.role == role)
    return int(session.scalar(q) or 0)


def revoke(session: Session, key_id: int, at: dt.datetime) -> bool:
    res = session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
