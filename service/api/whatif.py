"""/what-if: ask what a change would do (answered with the plan and its diff against the
base), and sweeps of one parameter over many values.

POST /what-if is the one async route of the API: it commits its run, then waits for it
without holding a thread, polling the database (a run may finish in another process or
on another host). Database work runs in the thread pool, as in every sync route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service import whatif
from service.api.deps import (
    DatabaseDep,
    Planner,
    ReadSession,
    RunnerDep,
    SettingsDep,
    Viewer,
    WriteSession,
)
from service.api.schemas import Page, errors
from service.api.whatif_schemas import SweepItem, SweepOut, WhatIfOut
from service.db import Database
from service.models import Run
from service.runner import SolveRunner
from service.settings import Settings
from service.whatif import SweepRequest, WhatIfRequest, WhatIfResult

router = APIRouter(prefix="/what-if", tags=["what-if"], responses=errors(401, 403))

Id = Annotated[int, Path(ge=1, le=2**31 - 1)]

_WHATIF_EXAMPLES: dict[str, Any] = {
    "price shock": {
        "summary": "grid prices x2 at two western zones, 08:00-20:00",
        "value": WhatIfRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
    },
    "outage": {
        "summary": "a site down for six hours",
        "value": {
            "overrides": {
                "capacity_changes": [
                    {
                        "site": "nx-west",
                        "available_fraction": 0,
                        "start": "2025-07-15T06:00:00+08:00",
                        "end": "2025-07-15T12:00:00+08:00",
                    }
                ]
            }
        },
    },
    "domestic accelerators": {
        "summary": "30 % of H100s replaced by H20s",
        "value": {
            "overrides": {
                "accelerator_mix": [
                    {"from_accelerator": "H100", "to_accelerator": "H20", "share": 0.3}
                ]
            }
        },
    },
    "carbon price": {
        "summary": "a carbon price of 200 CNY/t",
        "value": {"overrides": {"carbon_price_cny_per_t": 200}},
    },
}


def _submit(
    db: Database,
    body: WhatIfRequest,
    settings: Settings,
    runner: SolveRunner,
    actor: str,
    key: str | None,
) -> tuple[Run, bool]:
    # checked in a read session first: the write transaction (on SQLite the one write lock)
    # is held only to queue the run, and committed before the wait so the runner finds it
    with db.read() as s:
        checked = whatif.check_whatif(s, body, settings=settings, idempotency_key=key)
    with db.write() as s:
        return whatif.submit_whatif(
            s, body, checked, settings=settings, runner=runner, actor=actor, idempotency_key=key
        )


def _result(db: Database, run: Run) -> WhatIfResult:
    with db.read() as s:
        return whatif.whatif_result(s, run)


def _answer(response: Response, result: WhatIfResult) -> WhatIfOut:
    if not result.finished:
        response.status_code = 202
        response.headers["Location"] = f"/runs/{result.run_id}"
    return WhatIfOut.model_validate(result)


@router.post(
    "",
    response_model=WhatIfOut,
    responses={
        202: {
            "model": WhatIfOut,
            "description": "still solving after wait_s: follow the run at Location",
        },
        **errors(404, 409, 413, 422, 429),
    },
)
async def what_if(
    request: Request,
    response: Response,
    db: DatabaseDep,
    who: Planner,
    settings: SettingsDep,
    runner: RunnerDep,
    body: Annotated[WhatIfRequest, Body(openapi_examples=_WHATIF_EXAMPLES)],
    wait_s: float | None = Query(
        None,
        ge=0,
        allow_inf_nan=False,
        description="how long to wait for the plan, s (default: the server's whatif_wait_s)",
    ),
    idempotency_key: str | None = Header(
        None, min_length=1, max_length=200, description="same key, same what-if: safe to retry"
    ),
) -> WhatIfOut:
    """Solve the base (the active plan unless `base_plan_id` or `scenario_version_id` says
    otherwise) changed by `overrides`, never touching the active plan. Waits up to `wait_s`
    for the plan: 200 with its KPIs, the diff against the base plan and the explanation's
    highlights; 202 with the run (Location) if it is still solving, after which the plan is
    at /plans/{id} and the diff at /plans/{base}/diff/{id} (or all of it at
    /what-if/{run_id}). 422 lists every problem of the overrides or the size limit passed;
    429 with Retry-After when the run queue is full."""
    wait = whatif.wait_seconds(settings, query=wait_s, body=body.wait_s)
    run, created = await run_in_threadpool(
        _submit, db, body, settings, runner, who.label, idempotency_key
    )
    run = await whatif.wait_for_run(db, run.id, wait, gone=request.is_disconnected)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _answer(response, await run_in_threadpool(_result, db, run))


@router.post(
    "/sweep",
    status_code=202,
    response_model=SweepOut,
    responses=errors(404, 409, 413, 422, 429),
)
def create_sweep(
    response: Response,
    session: WriteSession,
    who: Planner,
    settings: SettingsDep,
    runner: RunnerDep,
    body: Annotated[
        SweepRequest,
        Body(
            openapi_examples={
                "carbon price": {
                    "summary": "five carbon prices",
                    "value": SweepRequest.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                },
                "price level": {
                    "summary": "grid prices everywhere x0.8 to x1.5",
                    "value": {"parameter": "price_multiplier", "values": [0.8, 1.0, 1.2, 1.5]},
                },
            }
        ),
    ],
) -> SweepOut:
    """Solve the base for each value of one parameter (a run of kind `sweep_point` each,
    queued behind planner and nightly runs) and answer 202 at once; follow it at Location.
    The whole sweep must fit in the run queue: 429 with Retry-After otherwise, and nothing
    is created. More values than the server takes: 422."""
    sweep = whatif.create_sweep(session, body, settings=settings, runner=runner, actor=who.label)
    response.headers["Location"] = f"/what-if/sweep/{sweep.id}"
    return SweepOut.model_validate(whatif.sweep_view(session, sweep.id))


@router.get("/sweeps", response_model=Page[SweepItem])
def list_sweeps(
    session: ReadSession,
    who: Viewer,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> Page[SweepItem]:
    """Sweeps, newest first, with their state and how many points are in each run state."""
    items, total = whatif.list_sweeps(session, offset=offset, limit=limit)
    return Page[SweepItem].model_validate(
        {"items": items, "total": total, "offset": offset, "limit": limit}
    )


@router.get("/sweep/{sweep_id}", response_model=SweepOut, responses=errors(404))
def get_sweep(session: ReadSession, who: Viewer, sweep_id: Id) -> SweepOut:
    """A sweep's state and its curve: per value the run's state and its plan's total,
    energy and carbon cost, emissions (contract- and location-based, apart), green share,
    unplaced work and gap, in value order, with the cost-emissions Pareto flags."""
    return SweepOut.model_validate(whatif.sweep_view(session, sweep_id))


@router.get(
    "/{run_id}",
    response_model=WhatIfOut,
    responses={
        202: {"model": WhatIfOut, "description": "still solving"},
        **errors(404),
    },
)
def get_what_if(response: Response, session: ReadSession, who: Viewer, run_id: Id) -> WhatIfOut:
    """A what-if asked earlier, as POST /what-if answers it: 200 once its run finished
    (with plan, diff and highlights if it succeeded), 202 while it is solving."""
    run = whatif.get_whatif_run(session, run_id)
    return _answer(response, whatif.whatif_result(session, run))
