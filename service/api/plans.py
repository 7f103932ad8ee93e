"""/plans: stored plans (immutable), the active plan, their rows, explanations, diffs and
bundles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from service import plans
from service.api.deps import Planner, ReadSession, Viewer, WantsCsv, WriteSession
from service.api.schemas import (
    ActivationOut,
    AssignmentPage,
    AssignmentRow,
    DiffOut,
    ExplainOut,
    PlanItem,
    PlanOut,
    PlanPage,
    RegionLinksOut,
    SiteHourPage,
    SiteHourRow,
    WorkloadsOut,
    errors,
)

router = APIRouter(prefix="/plans", tags=["plans"], responses=errors(401, 403))

PlanId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_PAGE = 10_000
_CSV: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "workload_id,site_id,accelerator,timestamp,hour,devices,tokens_per_s\n"
                "train-llm-a,nx-west,H100,2025-07-15T00:00:00+08:00,0,32,\n",
            }
        },
        "description": "a page of rows (JSON, or CSV with Accept: text/csv)",
    }
}


def _csv(table: str, rows: list[dict[str, Any]], total: int) -> Response:
    return Response(
        plans.page_csv(table, rows),
        media_type="text/csv; charset=utf-8",
        headers={"X-Total-Count": str(total)},
    )


@router.get("", response_model=PlanPage)
def list_plans(
    session: ReadSession,
    who: Viewer,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> PlanPage:
    """Stored plans, newest first."""
    items, total = plans.list_plans(session, offset=offset, limit=limit)
    active = plans.active_plan_id(session)
    return PlanPage(
        items=[PlanItem.of(p, active) for p in items], total=total, offset=offset, limit=limit
    )


@router.get("/active", response_model=PlanOut, responses=errors(404))
def active(session: ReadSession, who: Viewer) -> PlanOut:
    """The active plan (404 with a hint when none is active yet)."""
    p = plans.active_plan(session)
    return PlanOut.of(p, p.id)


@router.get("/{plan_id}", response_model=PlanOut, responses=errors(404))
def get_plan(session: ReadSession, who: Viewer, plan_id: PlanId) -> PlanOut:
    """A plan's summary: KPIs, baselines, status, gap, timings, scenario fingerprint."""
    return PlanOut.of(plans.get_plan(session, plan_id), plans.active_plan_id(session))


@router.get(
    "/{plan_id}/assignments", response_model=AssignmentPage, responses={**_CSV, **errors(404)}
)
def assignments(
    session: ReadSession,
    who: Viewer,
    csv: WantsCsv,
    plan_id: PlanId,
    site_id: str | None = Query(None, max_length=200),
    workload_id: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(1000, ge=1, le=MAX_PAGE),
) -> Any:
    """Who runs where and when: one row per workload, site, accelerator and hour."""
    rows, total = plans.rows(
        session,
        plan_id,
        "assignments",
        site_id=site_id,
        workload_id=workload_id,
        offset=offset,
        limit=limit,
    )
    if csv:
        return _csv("assignments", rows, total)
    return AssignmentPage(
        plan_id=plan_id,
        total=total,
        offset=offset,
        limit=limit,
        items=[AssignmentRow(**r) for r in rows],
    )


@router.get("/{plan_id}/site-hours", response_model=SiteHourPage, responses={**_CSV, **errors(404)})
def site_hours(
    session: ReadSession,
    who: Viewer,
    csv: WantsCsv,
    plan_id: PlanId,
    site_id: str | None = Query(None, max_length=200),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(1000, ge=1, le=MAX_PAGE),
) -> Any:
    """Energy per site and hour: IT and facility power, grid, green used and curtailed,
    battery, prices, cost, emissions."""
    rows, total = plans.rows(
        session,
        plan_id,
        "site_hours",
        site_id=site_id,
        workload_id=None,
        offset=offset,
        limit=limit,
    )
    if csv:
        return _csv("site_hours", rows, total)
    return SiteHourPage(
        plan_id=plan_id,
        total=total,
        offset=offset,
        limit=limit,
        items=[SiteHourRow(**r) for r in rows],
    )


@router.get("/{plan_id}/workloads", response_model=WorkloadsOut, responses=errors(404))
def workloads(session: ReadSession, who: Viewer, plan_id: PlanId) -> WorkloadsOut:
    """Every job and inference service: placed or not, where, and why."""
    return WorkloadsOut(plan_id=plan_id, items=plans.workloads(session, plan_id))


@router.get("/{plan_id}/explain", response_model=ExplainOut, responses=errors(404))
def explain(session: ReadSession, who: Viewer, plan_id: PlanId) -> ExplainOut:
    """Why the plan looks as it does: binding hours per site, unplaced work and its reason,
    moves with their savings, policy violations."""
    return ExplainOut(plan_id=plan_id, **plans.explain_plan(session, plan_id))


@router.get("/{plan_id}/links", response_model=RegionLinksOut, responses=errors(404))
def links(session: ReadSession, who: Viewer, plan_id: PlanId) -> RegionLinksOut:
    """Which demand regions each site serves inference to: tokens, hours and services per
    (site, region) link, with its latency (from the bundle's service_flows.csv)."""
    return RegionLinksOut(plan_id=plan_id, items=plans.links(session, plan_id))


@router.get(
    "/{plan_id}/bundle",
    response_class=Response,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the plan bundle as a zip",
        },
        **errors(404, 500),
    },
)
def bundle(session: ReadSession, who: Viewer, plan_id: PlanId) -> Response:
    """The plan bundle (summary.json and the CSV tables), byte-for-byte as
    `Plan.write_bundle` wrote it when the plan was solved, as a zip."""
    return Response(
        plans.bundle_zip(session, plan_id),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="plan-{plan_id}.zip"'},
    )


@router.post("/{plan_id}/activate", response_model=ActivationOut, responses=errors(404, 409))
def activate(session: WriteSession, who: Planner, plan_id: PlanId) -> ActivationOut:
    """Make a stored plan the active one (not a what-if's: 409)."""
    return ActivationOut(
        **plans.activate(session, plan_id, by=who.label, reason="activated over the API")
    )


@router.get("/{plan_a}/diff/{plan_b}", response_model=DiffOut, responses=errors(404))
def diff(session: ReadSession, who: Viewer, plan_a: PlanId, plan_b: PlanId) -> DiffOut:
    """What changes going from plan a to plan b: totals, per site, and each job moved,
    retimed, newly placed or unplaced."""
    return DiffOut(**plans.diff(session, plan_a, plan_b))
