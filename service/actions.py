"""Service functions for a plan's actions: the window of them an operator asks for, as rows
or as the Slurm and Kubernetes exports (`optimizer.actions` makes them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from optimizer import actions as opt_actions
from optimizer.contract import ACTIONS
from service import plans
from service.errors import InvalidInput


def _window(
    session: Session, plan_id: int, start: dt.datetime | None, hours: int | None
) -> pd.DataFrame:
    """The plan's actions in [start, start + hours): start defaults to the plan's first hour,
    hours to the rest of the horizon. A start off the plan's hourly grid or outside its
    horizon is a 422 naming it."""
    plans.get_plan(session, plan_id)
    plan = plans.load_plan(session, plan_id)
    table = plan.actions if not plan.actions.empty else opt_actions.actions_table(plan)
    horizon = int(plan.summary["hours"])
    first = 0
    if start is not None:
        plan_start = pd.Timestamp(plan.summary["start"])
        offset_h = (pd.Timestamp(start) - plan_start) / pd.Timedelta(hours=1)
        if offset_h != int(offset_h) or not 0 <= offset_h < horizon:
            last = plan_start + pd.Timedelta(hours=horizon - 1)
            raise InvalidInput(
                f"from={start.isoformat()} is not an hour of plan {plan_id} "
                f"({plan_start.isoformat()} .. {last.isoformat()})",
                problems=[
                    {
                        "file": "request",
                        "column": "from",
                        "message": "must be a whole hour within the plan's horizon",
                    }
                ],
            )
        first = int(offset_h)
    return opt_actions.window(table, first, horizon if hours is None else hours)


def rows(
    session: Session, plan_id: int, start: dt.datetime | None, hours: int | None
) -> list[dict[str, Any]]:
    df = _window(session, plan_id, start, hours).astype(object)
    # a CSV reads an empty text cell back as missing: text columns say "" as written
    text = [c.name for c in ACTIONS.columns if c.dtype in ("str", "timestamp")]
    df[text] = df[text].where(df[text].notna(), "")
    out: list[dict[str, Any]] = plans.jsonable(df.where(df.notna(), None).to_dict("records"))
    return out


def csv(session: Session, plan_id: int, start: dt.datetime | None, hours: int | None) -> bytes:
    df = _window(session, plan_id, start, hours)
    return df.to_csv(index=False).encode()


def slurm(session: Session, plan_id: int, start: dt.datetime | None, hours: int | None) -> str:
    lines = opt_actions.slurm_lines(_window(session, plan_id, start, hours))
    return "".join(f"{line}\n" for line in lines)


def kubernetes(
    session: Session, plan_id: int, start: dt.datetime | None, hours: int | None
) -> list[dict[str, Any]]:
    return opt_actions.kubernetes_patches(_window(session, plan_id, start, hours))
