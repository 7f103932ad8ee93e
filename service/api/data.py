"""/data: the scenario the service plans for. Viewers read; admins change it. Every change
is validated as a whole scenario and stored as a new version, or rejected (422) with every
problem listed and nothing changed. A change that would empty a table or remove more than
half of its rows is refused (409 `confirmation_required`) unless `confirm_removal=true`;
`dry_run=true` answers the same without writing; identical content makes no version; any
version can be restored. Each version records who made it (the key's name and id)."""

from __future__ import annotations

import enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from service import scenarios
from service.api.deps import Admin, ReadSession, TableUploadDep, Viewer, WantsCsv, WriteSession
from service.api.schemas import (
    ChangeOut,
    DataOut,
    PolicyChangeOut,
    PolicyIn,
    PolicyOut,
    TableOut,
    VersionOut,
    VersionPage,
    errors,
)

router = APIRouter(prefix="/data", tags=["data"], responses=errors(401, 403))

TableName = enum.StrEnum("TableName", {n: n for n in scenarios.TABLE_NAMES})  # type: ignore[misc]
MAX_TABLE_ROWS = 1_000_000
TablePath = Annotated[TableName, Path(description="scenario table")]  # type: ignore[valid-type]
DryRun = Annotated[
    bool,
    Query(
        description="validate and return the diff (rows added/removed/changed per table) "
        "without writing anything"
    ),
]
ConfirmRemoval = Annotated[
    bool,
    Query(
        description="needed for a change that empties a table or removes more than half of "
        "its rows; without it such a change is refused with 409 confirmation_required"
    ),
]


def _options(dry_run: bool, confirm_removal: bool = False) -> scenarios.ChangeOptions:
    return scenarios.ChangeOptions(dry_run=dry_run, confirm_removal=confirm_removal)


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "the rows: a JSON array of objects (column -> value), a CSV body "
        "(header + rows, as in the scenario directory), or a multipart form with the CSV in `file`",
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": True},
                },
                "example": [
                    {
                        "job_id": "batch-new",
                        "accelerators": "H100",
                        "gang": 8,
                        "work_device_hours": 16,
                        "deadline": "2025-07-15T20:00:00+08:00",
                    }
                ],
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "site_id,accelerator,devices\nsh-east,H100,64\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "site_id,accelerator,devices\nsh-east,H100,64\n",
            }
        },
        "description": "the rows (JSON, or CSV with Accept: text/csv)",
    }
}


@router.get("", response_model=DataOut, responses=errors(404))
def current(session: ReadSession, who: Viewer) -> DataOut:
    """The current scenario version: id, fingerprint, sizes, manifest."""
    return DataOut.of(scenarios.current_version(session))


@router.get("/versions", response_model=VersionPage)
def versions(
    session: ReadSession,
    who: Viewer,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> VersionPage:
    """Every accepted version, newest first."""
    items, total = scenarios.list_versions(session, offset=offset, limit=limit)
    return VersionPage(
        items=[VersionOut.of(v) for v in items], total=total, offset=offset, limit=limit
    )


@router.get("/policy", response_model=PolicyOut, responses=errors(404))
def get_policy(session: ReadSession, who: Viewer) -> PolicyOut:
    """The policy of the current version (carbon price, green share, budget, weights)."""
    v = scenarios.current_version(session)
    return PolicyOut(version_id=v.id, **scenarios.policy_of(v, scenarios.scenario_of(session, v)))


@router.put("/policy", response_model=PolicyChangeOut, responses=errors(404, 409, 422))
def put_policy(
    body: PolicyIn,  # type: ignore[valid-type]
    session: WriteSession,
    who: Admin,
    dry_run: DryRun = False,
) -> PolicyChangeOut:
    """Replace the policy; keys left out take their defaults. Makes a new version unless
    the policy is the same (`outcome`: `unchanged`)."""
    c = scenarios.put_policy(
        session,
        body.model_dump(),  # type: ignore[attr-defined]
        actor=who.label,
        options=_options(dry_run),
    )
    v = c.version
    return PolicyChangeOut(
        version_id=v.id,
        outcome=c.outcome,
        message=c.message,
        **scenarios.policy_of(v, scenarios.scenario_of(session, v)),
    )


@router.post(
    "/versions/{version_id}/restore", response_model=ChangeOut, responses=errors(404, 409, 422)
)
def restore_version(
    session: WriteSession,
    who: Admin,
    version_id: int = Path(ge=1, le=2**31 - 1),
    dry_run: DryRun = False,
) -> ChangeOut:
    """Make the content of an earlier version current again: a new version equal to it,
    noted "restored from version N" with who did it. Nothing is made when the current
    version already has that content."""
    c = scenarios.restore_version(session, version_id, actor=who.label, options=_options(dry_run))
    return ChangeOut.of_change(c)


@router.get("/{table}", response_model=TableOut, responses={**_CSV_RESPONSE, **errors(404)})
def get_table(
    session: ReadSession,
    who: Viewer,
    csv: WantsCsv,
    table: TablePath,
    version_id: int | None = Query(None, ge=1, le=2**31 - 1, description="default: current"),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(MAX_TABLE_ROWS, ge=1, le=MAX_TABLE_ROWS),
) -> Any:
    """A table's rows: JSON (cells typed) or, with `Accept: text/csv`, the CSV as stored."""
    name = str(table.value)
    v = scenarios.get_version(session, version_id)
    df = scenarios.table_frame(session, v, name)
    total = len(df)
    if csv:
        body = (
            scenarios.table_csv(session, v, name)
            if offset == 0 and total <= limit
            else df.iloc[offset : offset + limit].to_csv(index=False).encode()
        )
        return Response(
            body, media_type="text/csv; charset=utf-8", headers={"X-Total-Count": str(total)}
        )
    page = df.iloc[offset : offset + limit]
    return TableOut(
        version_id=v.id,
        table=name,
        columns=list(df.columns),
        rows=scenarios.records(page, name),
        total=total,
        offset=offset,
        limit=limit,
    )


@router.put(
    "/{table}",
    response_model=ChangeOut,
    openapi_extra=_UPLOAD_BODY,
    responses=errors(404, 409, 413, 415, 422),
)
def put_table(
    who: Admin,
    upload: TableUploadDep,
    session: WriteSession,
    table: TablePath,
    dry_run: DryRun = False,
    confirm_removal: ConfirmRemoval = False,
) -> ChangeOut:
    """Replace a whole table. The new scenario is validated first: 422 lists every problem
    and changes nothing. Emptying the table or removing more than half of its rows needs
    `confirm_removal=true` (else 409 naming the table and its row counts)."""
    name = str(table.value)
    parsed = scenarios.parse_upload(upload[0], upload[1], name)
    c = scenarios.replace_table(
        session, name, parsed, actor=who.label, options=_options(dry_run, confirm_removal)
    )
    return ChangeOut.of_change(c)


@router.patch(
    "/{table}",
    response_model=ChangeOut,
    openapi_extra=_UPLOAD_BODY,
    responses=errors(404, 409, 413, 415, 422),
)
def patch_table(
    who: Admin,
    upload: TableUploadDep,
    session: WriteSession,
    table: TablePath,
    dry_run: DryRun = False,
) -> ChangeOut:
    """Upsert rows by the table's key (e.g. new jobs; a forecast update of some hours in
    site_series, keyed by site_id + timestamp). A row whose key exists changes only the
    cells it gives; the others are added."""
    name = str(table.value)
    parsed = scenarios.parse_upload(upload[0], upload[1], name)
    c = scenarios.upsert_rows(session, name, parsed, actor=who.label, options=_options(dry_run))
    return ChangeOut.of_change(c)


@router.delete("/jobs/{job_id}", response_model=ChangeOut, responses=errors(404, 409, 422))
def delete_job(
    session: WriteSession,
    who: Admin,
    job_id: str = Path(max_length=200),
    dry_run: DryRun = False,
) -> ChangeOut:
    """Remove a job; makes a new version."""
    return ChangeOut.of_change(
        scenarios.delete_job(session, job_id, actor=who.label, options=_options(dry_run))
    )
