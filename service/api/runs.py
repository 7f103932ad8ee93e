"""/runs: ask for a plan, follow it, cancel it. Submitting never waits for the solver."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Response

from service import plans, runs
from service.api.deps import Planner, ReadSession, RunnerDep, SettingsDep, Viewer, WriteSession
from service.api.schemas import RunOut, RunPage, errors
from service.runs import RunRequest

router = APIRouter(prefix="/runs", tags=["runs"], responses=errors(401, 403))

RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=202,
    response_model=RunOut,
    responses={
        200: {"model": RunOut, "description": "the run made earlier with this Idempotency-Key"},
        **errors(404, 409, 422, 429),
    },
)
def submit(
    response: Response,
    session: WriteSession,
    who: Planner,
    settings: SettingsDep,
    runner: RunnerDep,
    body: Annotated[
        RunRequest | None,
        Body(
            openapi_examples={
                "default": {"summary": "solve the current scenario", "value": {}},
                "what you may set": {
                    "summary": "settings, overrides, activation",
                    "value": RunRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                },
            }
        ),
    ] = None,
    idempotency_key: str | None = Header(
        None, min_length=1, max_length=200, description="same key, same run: safe to retry"
    ),
) -> RunOut:
    """Queue a solve of the current scenario (with optional overrides and solver settings)
    and answer 202 with the run at once. 429 with Retry-After when the queue is full."""
    run, created = runs.submit_run(
        session,
        body or RunRequest(),
        settings=settings,
        runner=runner,
        actor=who.label,
        idempotency_key=idempotency_key,
    )
    response.headers["Location"] = f"/runs/{run.id}"
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return RunOut.of(run)


@router.get("", response_model=RunPage)
def list_runs(
    session: ReadSession,
    who: Viewer,
    state: Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]
    | None = None,
    kind: Literal["run", "whatif", "sweep_point", "nightly"] | None = None,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> RunPage:
    """Runs, newest first, optionally of one state or kind."""
    items, total = runs.list_runs(session, state=state, kind=kind, offset=offset, limit=limit)
    return RunPage(items=[RunOut.of(r) for r in items], total=total, offset=offset, limit=limit)


@router.get("/{run_id}", response_model=RunOut, responses=errors(404))
def get_run(session: ReadSession, who: Viewer, run_id: RunId) -> RunOut:
    """A run: state, progress (phase, incumbent, bound, gap), timings, plan id or error."""
    run = runs.get_run(session, run_id)
    timings = plans.get_plan(session, run.plan_id).timings if run.plan_id is not None else None
    return RunOut.of(run, timings)


@router.delete(
    "/{run_id}",
    response_model=RunOut,
    responses={
        202: {
            "model": RunOut,
            "description": "cancel requested; the solver stops within about a second",
        },
        **errors(404, 409),
    },
)
def cancel(response: Response, session: WriteSession, who: Planner, run_id: RunId) -> RunOut:
    """Cancel a run: a queued run is cancelled at once (200); a running one is asked to stop
    (202) and becomes `cancelled` when its solver has stopped."""
    run = runs.cancel_run(session, run_id)
    if run.state == "running":
        response.status_code = 202
    return RunOut.of(run)
