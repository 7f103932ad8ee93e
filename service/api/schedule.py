"""/schedule: the nightly re-optimisation's cron, timezone and settings, a run right now,
and the history of the nights."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy.orm import Session

from service import instances, nightly
from service.api.deps import Admin, ReadSession, RunnerDep, SettingsDep, Viewer, WriteSession
from service.api.schemas import InstanceOut, NightOut, NightPage, ScheduleOut, errors
from service.models import utcnow
from service.nightly import RunNowRequest, ScheduleUpdate, ScheduleView
from service.repo import instances as instances_repo
from service.settings import Settings

router = APIRouter(prefix="/schedule", tags=["schedule"], responses=errors(401, 403))


def _out(view: ScheduleView, session: Session, settings: Settings) -> ScheduleOut:
    seen = instances.describe(instances_repo.all_instances(session), settings)
    return ScheduleOut(
        cron=view.cron,
        timezone=view.timezone,
        enabled=view.enabled,
        time_limit_s=view.time_limit_s,
        stability_weight=view.stability_weight,
        next_run_at=view.next_run_at(utcnow()),
        updated_at=view.updated_at,
        updated_by=view.updated_by,
        scheduler_seen_at=view.scheduler_seen_at,
        scheduler_id=view.scheduler_id,
        instances=[
            InstanceOut(
                id=row.id,
                kind=row.kind,  # type: ignore[arg-type]  # the table's check constraint
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                alive=alive,
                holds_scheduler=row.holds_scheduler,
            )
            for row, alive in seen
        ],
    )


@router.get("", response_model=ScheduleOut)
def get_schedule(session: ReadSession, who: Viewer, settings: SettingsDep) -> ScheduleOut:
    """The nightly schedule, its next fire time, when a scheduler was last seen, and the
    service instances on this database with the ones that hold a scheduler."""
    return _out(nightly.get_schedule(session, settings), session, settings)


@router.put("", response_model=ScheduleOut, responses=errors(422))
def put_schedule(
    session: WriteSession,
    who: Admin,
    settings: SettingsDep,
    body: Annotated[
        ScheduleUpdate,
        Body(
            openapi_examples={
                "move the night": {
                    "summary": "02:00 in Berlin",
                    "value": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"},
                },
                "everything": {
                    "summary": "every field",
                    "value": ScheduleUpdate.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                },
            }
        ),
    ],
) -> ScheduleOut:
    """Change the schedule (fields left out keep their value). A cron or timezone that is
    not valid answers 422 naming the field. Running schedulers follow within
    `scheduler_poll_s`."""
    view = nightly.update_schedule(session, body, settings=settings, actor=who.label)
    return _out(view, session, settings)


@router.post(
    "/run-now",
    status_code=202,
    response_model=NightOut,
    responses=errors(404, 409, 422, 429),
)
def run_now(
    response: Response,
    session: WriteSession,
    who: Admin,
    settings: SettingsDep,
    runner: RunnerDep,
    body: Annotated[
        RunNowRequest | None,
        Body(
            openapi_examples={
                "default": {"summary": "re-optimise now", "value": {}},
                "with a note": {
                    "summary": "say why",
                    "value": RunNowRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                },
            }
        ),
    ] = None,
) -> NightOut:
    """Re-optimise now as the night would (current scenario, warm start from the active
    plan, the schedule's stability weight and time limit, activate on success). It has its
    own key, so it never blocks tonight's run; 409 while another nightly run is queued or
    running."""
    row = nightly.run_now(
        session,
        settings=settings,
        runner=runner,
        actor=who.label,
        note=body.note if body is not None else "",
    )
    session.flush()
    response.headers["Location"] = f"/runs/{row.run_id}"
    return NightOut.of(nightly.get_night(session, row.id))


@router.get("/history", response_model=NightPage)
def history(
    session: ReadSession,
    who: Viewer,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> NightPage:
    """The nights and run-nows, newest first: state, reason, run, plan, timings."""
    items, total = nightly.history(session, offset=offset, limit=limit)
    return NightPage(items=[NightOut.of(n) for n in items], total=total, offset=offset, limit=limit)
