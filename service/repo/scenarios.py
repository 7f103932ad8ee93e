"""Queries on scenario versions and their content-addressed table blobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import ScenarioBlob, ScenarioVersion


def current(session: Session) -> ScenarioVersion | None:
    return session.scalar(select(ScenarioVersion).order_by(ScenarioVersion.id.desc()).limit(1))


def get(session: Session, version_id: int) -> ScenarioVersion | None:
    return session.get(ScenarioVersion, version_id)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ScenarioVersion)) or 0)


def page(session: Session, *, offset: int, limit: int) -> tuple[Sequence[ScenarioVersion], int]:
    total = count(session)
    rows = session.scalars(
        select(ScenarioVersion).order_by(ScenarioVersion.id.desc()).offset(offset).limit(limit)
    ).all()
    return rows, total


def add_version(
    session: Session,
    *,
    parent_id: int | None,
    created_by: str,
    note: str,
    fingerprint: str,
    manifest: dict[str, Any],
    tables: dict[str, str],
    sizes: dict[str, Any],
) -> ScenarioVersion:
    v = ScenarioVersion(
        parent_id=parent_id,
        created_by=created_by,
        note=note,
        fingerprint=fingerprint,
        manifest=manifest,
        tables=tables,
        sizes=sizes,
    )
    session.add(v)
    session.flush()  # the unique parent_id is checked here, not at commit
    return v


def existing_blobs(session: Session, digests: Iterable[str]) -> set[str]:
    wanted = list(set(digests))
    if not wanted:
        return set()
    return set(session.scalars(select(ScenarioBlob.sha256).where(ScenarioBlob.sha256.in_(wanted))))


def add_blob(session: Session, *, sha256: str, content: bytes, rows: int, size_bytes: int) -> None:
    session.add(ScenarioBlob(sha256=sha256, content=content, rows=rows, size_bytes=size_bytes))


def blob_content(session: Session, sha256: str) -> bytes | None:
    return session.scalar(select(ScenarioBlob.content).where(ScenarioBlob.sha256 == sha256))
