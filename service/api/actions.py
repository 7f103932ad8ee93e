"""/plans/{id}/actions: what to do to follow a plan, hour by hour, as rows (JSON or CSV) or
as Slurm commands and Kubernetes patches."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service import actions
from service.api.deps import ReadSession, Viewer, WantsCsv
from service.api.plans import PlanId
from service.api.schemas import ActionRow, ActionsOut, K8sPatchesOut, K8sPatchOut, errors

router = APIRouter(prefix="/plans", tags=["plans"], responses=errors(401, 403))

From = Annotated[
    dt.datetime | None,
    Query(
        alias="from",
        description="first hour (ISO 8601, on the plan's hourly grid); default the plan's start",
    ),
]
Hours = Annotated[
    int | None, Query(ge=1, le=10_000, description="hours from `from`; default the rest")
]


@router.get(
    "/{plan_id}/actions",
    response_model=ActionsOut,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "seq,timestamp,hour,action,workload_id,kind,site_id,from_site,"
                    "accelerator,devices,previous_devices,run_hours,detail\n"
                    "0,2025-07-15T02:00:00+08:00,2,start,train-llm-a,training,nx-west,,H100,32,,"
                    "6,\n",
                }
            },
            "description": "the actions (JSON, or CSV with Accept: text/csv)",
        },
        **errors(404, 422),
    },
)
def list_actions(
    session: ReadSession,
    who: Viewer,
    csv: WantsCsv,
    plan_id: PlanId,
    start: From = None,
    hours: Hours = None,
) -> Any:
    """The ordered start / stop / pause / resume / move / scale actions per site and hour
    that take the fleet from its current state to the plan (rules in docs/service.md)."""
    if csv:
        return Response(
            actions.csv(session, plan_id, start, hours), media_type="text/csv; charset=utf-8"
        )
    items = actions.rows(session, plan_id, start, hours)
    return ActionsOut(plan_id=plan_id, items=[ActionRow(**r) for r in items])


@router.get(
    "/{plan_id}/actions/slurm",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": "sbatch --job-name=train-llm-a --clusters=nx-west "
                    "--begin=2025-07-15T02:00:00 --nodes=4 --gres=gpu:h100:8 --time=06:00:00 "
                    "greenopt-train-llm-a.sbatch\n",
                }
            },
            "description": "sbatch / scancel lines, one site a cluster",
        },
        **errors(404, 422),
    },
)
def slurm(
    session: ReadSession, who: Viewer, plan_id: PlanId, start: From = None, hours: Hours = None
) -> Response:
    """The job actions as Slurm commands: one `sbatch` per run (`--begin`, `--clusters`,
    `--nodes`, `--gres`, `--time`), `scancel` for what stops running now."""
    text = actions.slurm(session, plan_id, start, hours)
    return Response(text, media_type="text/plain; charset=utf-8")


@router.get(
    "/{plan_id}/actions/kubernetes",
    response_model=K8sPatchesOut,
    responses=errors(404, 422),
)
def kubernetes(
    session: ReadSession, who: Viewer, plan_id: PlanId, start: From = None, hours: Hours = None
) -> K8sPatchesOut:
    """The actions as Kubernetes patches per cluster: Deployment `spec.replicas`, Job
    `spec.suspend` and `nodeSelector`."""
    items = [K8sPatchOut(**p) for p in actions.kubernetes(session, plan_id, start, hours)]
    return K8sPatchesOut(plan_id=plan_id, items=items)
