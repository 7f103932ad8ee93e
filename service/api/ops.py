"""Operations: liveness, readiness, Prometheus metrics (no key needed: probes and scrapers
carry none, and nothing here reveals plan contents)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.deps import DatabaseDep
from service.api.schemas import HealthOut, ReadyOut
from service.db import head_revision
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])

try:
    VERSION = version("greenopt")
except PackageNotFoundError:  # running from a checkout without an install
    VERSION = "0+unknown"


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and serving."""
    return HealthOut(status="ok", version=VERSION)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready"}},
)
def readyz(db: DatabaseDep, response: Response) -> ReadyOut:
    """Ready for traffic: the database answers at the current schema, and HiGHS loads and
    solves a one-variable LP. 503 otherwise."""
    checks = {"database": _check_database(db), "solver": _check_solver()}
    ok = all(c["ok"] for c in checks.values())
    if not ok:
        response.status_code = 503
    return ReadyOut(status="ready" if ok else "not_ready", checks=checks)


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
        }
    },
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, runs by state, solve durations, queue depth, and the
    active plan's cost, emissions and green share."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


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
