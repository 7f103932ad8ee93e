"""Queries on plans, their rows and artifacts, and the active plan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.models import (
    ActivePlan,
    Plan,
    PlanActivation,
    PlanArtifact,
    PlanAssignment,
    PlanSiteHour,
)

ROW_MODELS: dict[str, type[PlanAssignment] | type[PlanSiteHour]] = {
    "assignments": PlanAssignment,
    "site_hours": PlanSiteHour,
}


def row_keys(table: str) -> list[str]:
    """A row table's columns under their bundle names (the ORM attribute keys: a few stored
    columns keep an older name, e.g. `energy_cost` is stored as `energy_cost_cny`)."""
    mapper = ROW_MODELS[table].__mapper__
    return [a.key for a in mapper.column_attrs if a.key not in ("plan_id", "seq")]


def add(session: Session, **values: Any) -> Plan:
    plan = Plan(**values)
    session.add(plan)
    session.flush()
    return plan


def add_rows(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        # one executemany (batched INSERT ... VALUES) instead of an ORM object per row
        session.execute(insert(ROW_MODELS[table]), rows)


def add_artifact(
    session: Session, *, plan_id: int, name: str, content: bytes, sha256: str, size_bytes: int
) -> None:
    session.add(
        PlanArtifact(
            plan_id=plan_id, name=name, content=content, sha256=sha256, size_bytes=size_bytes
        )
    )


def get(session: Session, plan_id: int) -> Plan | None:
    return session.get(Plan, plan_id)


def page(session: Session, *, offset: int, limit: int) -> tuple[Sequence[Plan], int]:
    total = int(session.scalar(select(func.count()).select_from(Plan)) or 0)
    rows = session.scalars(select(Plan).order_by(Plan.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


def artifacts(session: Session, plan_id: int) -> dict[str, PlanArtifact]:
    rows = session.scalars(select(PlanArtifact).where(PlanArtifact.plan_id == plan_id)).all()
    return {a.name: a for a in rows}


def artifact(session: Session, plan_id: int, name: str) -> PlanArtifact | None:
    return session.get(PlanArtifact, (plan_id, name))


def rows_page(
    session: Session,
    table: str,
    plan_id: int,
    *,
    site_id: str | None = None,
    workload_id: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Rows of a plan table in bundle order, filtered, and how many match in all."""
    model = ROW_MODELS[table]
    cols = [getattr(model, k) for k in row_keys(table)]
    cond = [model.plan_id == plan_id]
    if site_id is not None:
        cond.append(model.site_id == site_id)
    if workload_id is not None:
        if model is not PlanAssignment:
            raise ValueError(f"{table} has no workload_id")
        cond.append(PlanAssignment.workload_id == workload_id)
    total = int(session.scalar(select(func.count()).select_from(model).where(*cond)) or 0)
    q = select(*cols).where(*cond).order_by(model.seq).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    rows = [dict(r._mapping) for r in session.execute(q)]
    return rows, total


def active(session: Session) -> ActivePlan | None:
    return session.get(ActivePlan, 1)


def set_active(
    session: Session,
    *,
    plan_id: int,
    by: str,
    now: dt.datetime,
    run_id: int | None,
    reason: str,
) -> None:
    current = session.get(ActivePlan, 1, with_for_update=True)
    previous = current.plan_id if current is not None else None
    # an upsert: two first activations racing on PostgreSQL must not fail on the single row
    dialect = session.get_bind().dialect.name
    ins_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"id": 1, "plan_id": plan_id, "activated_at": now, "activated_by": by}
    ins = ins_fn(ActivePlan).values(**values)
    session.execute(
        ins.on_conflict_do_update(
            index_elements=[ActivePlan.id],
            set_={"plan_id": plan_id, "activated_at": now, "activated_by": by},
        )
    )
    if current is not None:
        session.expire(current)  # the upsert changed the row behind the ORM's back
    session.add(
        PlanActivation(
            plan_id=plan_id,
            previous_plan_id=previous,
            run_id=run_id,
            activated_at=now,
            activated_by=by,
            reason=reason,
        )
    )
    session.flush()


def activations(session: Session, *, limit: int) -> Sequence[PlanActivation]:
    return session.scalars(
        select(PlanActivation).order_by(PlanActivation.id.desc()).limit(limit)
    ).all()
