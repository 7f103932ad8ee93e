"""Operations: liveness and readiness (no key needed: probes carry none, and they reveal
nothing about plans), and Prometheus metrics, which show the active plan's cost, emissions
and gap and so need a viewer key (Prometheus sends it: `authorization: {type: Bearer,
credentials: <key>}` in its scrape config)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.deps import DatabaseDep, Viewer
from service.api.schemas import HealthOut, ReadyOut, errors
from service.bootstrap import first_plan_status
from service.db import head_revision
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])

try:
    VERSION = version("greenopt")
except PackageNotFoundError:  # running from a checkout without an install
    VERSION = "0+unknown"


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and serving (liveness: 200 from the moment the port opens, while
    the first plan is still solving too)."""
    return HealthOut(status="ok", version=VERSION)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready"}},
)
def readyz(request: Request, db: DatabaseDep, response: Response) -> ReadyOut:
    """Ready for traffic: the database answers at the current schema, HiGHS loads and
    solves a one-variable LP, and the first plan of a fresh `greenopt serve` has finished.
    503 otherwise; while the first plan solves, `progress` says how far it got."""
    checks = {"database": _check_database(db), "solver": _check_solver()}
    progress = None
    first_run_id = getattr(request.app.state, "first_run_id", None)
    if first_run_id is not None:
        checks["first_plan"], progress = _check_first_plan(db, first_run_id)
    ok = all(c["ok"] for c in checks.values())
    if not ok:
        response.status_code = 503
    return ReadyOut(
        status="ready" if ok else "not_ready",
        checks=checks,
        progress=None if ok else progress,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": '# TYPE greenopt_runs gauge\ngreenopt_runs{state="succeeded"} 12.0\n',
                }
            },
            "description": "Prometheus text format",
        },
        **errors(401, 403),
    },
)
def metrics(request: Request, who: Viewer) -> Response:
    """Prometheus metrics: requests, runs by state, solve durations, queue depth, and the
    active plan's cost, emissions and green share. Needs a viewer key (X-API-Key or
    `Authorization: Bearer <key>`, which Prometheus' scrape config can send)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


def _check_first_plan(db: Any, run_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        with db.read() as s:
            done, detail, progress = first_plan_status(s, run_id)
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}, {}
    return {"ok": done, "detail": detail}, progress


def _check_database(db: Any) -> dict[str, Any]:
    try:
        db.ping()
        rev, head = db.current_revision(), head_revision()
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    if rev != head:
        return {
            "ok": False,
            "detail": f"schema at {rev}, code expects {head}: run greenopt db upgrade",
        }
    return {"ok": True, "detail": f"{db.dialect}, schema at {rev}"}


def _check_solver() -> dict[str, Any]:
    try:
        import highspy

        from optimizer.solve import SolverSettings, new_highs

        h = new_highs(SolverSettings(time_limit_s=5.0))
        # min x  s.t.  1 <= x <= 10: optimal at x = 1
        h.addVar(1.0, 10.0)
        h.changeColCost(0, 1.0)
        h.run()
        status = h.getModelStatus()
        obj = h.getInfo().objective_function_value
        if status != highspy.HighsModelStatus.kOptimal or abs(obj - 1.0) > 1e-9:
            return {
                "ok": False,
                "detail": f"HiGHS answered {h.modelStatusToString(status)}, objective {obj}",
            }
    except Exception as exc:
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "detail": "HiGHS solved a 1-variable LP"}
