"""Queries on what-if sweeps, their runs, and the plans what-ifs are compared with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Plan, Run, Sweep

# plans of a version scanned for one made without overrides: a version gets a handful of
# plain runs (the first plan, nightly re-solves, manual runs) between many what-ifs
PLAIN_PLAN_SCAN = 200


def add(session: Session, **values: Any) -> Sweep:
    sweep = Sweep(**values)
    session.add(sweep)
    session.flush()
    return sweep


def get(session: Session, sweep_id: int) -> Sweep | None:
    return session.get(Sweep, sweep_id)


def page(session: Session, *, offset: int, limit: int) -> tuple[Sequence[Sweep], int]:
    total = int(session.scalar(select(func.count()).select_from(Sweep)) or 0)
    rows = session.scalars(
        select(Sweep).order_by(Sweep.id.desc()).offset(offset).limit(limit)
    ).all()
    return rows, total


def runs_of(session: Session, sweep_id: int) -> Sequence[Run]:
    """The sweep's point runs in creation order (the order of the sweep's values)."""
    return session.scalars(select(Run).where(Run.sweep_id == sweep_id).order_by(Run.id)).all()


def run_states(session: Session, sweep_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per sweep: how many of its runs are in each state."""
    if not sweep_ids:
        return {}
    rows = session.execute(
        select(Run.sweep_id, Run.state, func.count())
        .where(Run.sweep_id.in_(list(sweep_ids)))
        .group_by(Run.sweep_id, Run.state)
    ).all()
    out: dict[int, dict[str, int]] = {}
    for sweep_id, state, n in rows:
        if sweep_id is not None:  # the WHERE excludes NULL; this narrows the type
            out.setdefault(int(sweep_id), {})[str(state)] = int(n)
    return out


def plans_by_id(session: Session, plan_ids: Sequence[int]) -> dict[int, Plan]:
    if not plan_ids:
        return {}
    rows = session.scalars(select(Plan).where(Plan.id.in_(list(plan_ids)))).all()
    return {p.id: p for p in rows}


def newest_plain_plan(session: Session, scenario_version_id: int) -> Plan | None:
    """The newest plan of a scenario version solved as it stands: by a plain or nightly run
    whose overrides change nothing but the plan-stability weight (the nightly run's own
    knob). What-if and sweep plans answer other questions."""
    rows = session.execute(
        select(Plan, Run.overrides)
        .join(Run, Run.id == Plan.run_id)
        .where(Plan.scenario_version_id == scenario_version_id, Run.kind.in_(("run", "nightly")))
        .order_by(Plan.id.desc())
        .limit(PLAIN_PLAN_SCAN)
    ).all()
    # overrides are JSON: compared here rather than in SQL, where JSON equality differs
    # between SQLite and PostgreSQL
    return next(
        (plan for plan, overrides in rows if set(overrides or {}) <= {"plan_stability_weight"}),
        None,
    )
