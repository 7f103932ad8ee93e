"""/feeds: forecast feed documents uploaded (admin: they are data) and the series stored,
with their provenance (viewer). Formats: docs/service.md, "Forecast feeds"."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from service import feeds
from service.api.deps import (
    Admin,
    ReadSession,
    TableUploadDep,
    UploadFileName,
    Viewer,
    WriteSession,
)
from service.api.schemas import Page, errors
from service.models import FeedSeries
from service.repo import feeds as repo

router = APIRouter(prefix="/feeds", tags=["feeds"], responses=errors(401, 403))

_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "series": "grid_carbon",
    "entity": "horinger",
    "provider": "grid-operator",
    "channel": "upload",
    "source": "carbon-2025-07-16.json",
    "issued_at": "2025-07-15T10:00:00Z",
    "start_at": "2025-07-15T16:00:00Z",
    "hours": 48,
    "horizon_h": 54,
    "quantiles": ["p10", "p90"],
    "received_at": "2025-07-15T10:02:11Z",
    "received_by": "admin",
}


class FeedSeriesOut(BaseModel):
    """A stored feed series' provenance (its values stay in the database)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})
    id: int
    series: str = Field(description="green_available, grid_price, grid_carbon, inference_demand")
    entity: str = Field(description="site id, or service_id/demand_region for demand")
    provider: str
    channel: str = Field(description="upload, folder or http")
    source: str = Field(description="file name or URL it was read from")
    issued_at: dt.datetime
    start_at: dt.datetime
    hours: int
    horizon_h: int = Field(description="hours from its issue to its last hour's end")
    quantiles: list[str]
    received_at: dt.datetime
    received_by: str

    @classmethod
    def of(cls, row: FeedSeries) -> FeedSeriesOut:
        return cls(
            id=row.id,
            series=row.series,
            entity=row.entity,
            provider=row.provider,
            channel=row.channel,
            source=row.source,
            issued_at=row.issued_at,
            start_at=row.start_at,
            hours=row.hours,
            horizon_h=row.horizon_h,
            quantiles=sorted(row.quantiles or {}),
            received_at=row.received_at,
            received_by=row.received_by,
        )


class FeedUploadOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"stored": [_EXAMPLE]}]})
    stored: list[FeedSeriesOut]


FeedPage = Page[FeedSeriesOut]

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a feed JSON document, a long feed CSV, or a scenario-format "
        "site_series / service_demand CSV (then `issued_at` is required)",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "provider": "grid-operator",
                    "issued_at": "2025-07-15T18:00:00+08:00",
                    "series": [
                        {
                            "series": "grid_carbon",
                            "site_id": "horinger",
                            "start": "2025-07-16T00:00:00+08:00",
                            "values": [612.0, 608.5, 601.2],
                        }
                    ],
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "series,site_id,timestamp,value,issued_at\n"
                "grid_carbon,horinger,2025-07-16T00:00:00+08:00,612,2025-07-15T18:00:00+08:00\n",
            },
        },
    }
}


@router.post(
    "",
    response_model=FeedUploadOut,
    openapi_extra=_BODY,
    responses=errors(413, 415, 422),
)
def upload(
    who: Admin,
    body: TableUploadDep,
    session: WriteSession,
    file_name: UploadFileName = "upload",
    provider: Annotated[
        str, Query(min_length=1, max_length=100, description="when the document names none")
    ] = "upload",
    issued_at: Annotated[
        dt.datetime | None,
        Query(description="issue time of a scenario-format table (with UTC offset)"),
    ] = None,
) -> FeedUploadOut:
    """Store every series of a feed document, or none: 422 names each problem's file,
    row (CSV) or field (JSON), column and hour."""
    kind, data = body
    issued = pd.Timestamp(issued_at) if issued_at is not None else None
    if issued is not None and issued.tzinfo is None:
        issued = issued.tz_localize("UTC")
    rows = feeds.ingest(
        session,
        data,
        kind=kind,
        file=file_name,
        provider=provider,
        issued_at=issued,
        channel="upload",
        by=who.label,
    )
    return FeedUploadOut(stored=[FeedSeriesOut.of(r) for r in rows])


@router.get("", response_model=FeedPage)
def listing(
    session: ReadSession,
    who: Viewer,
    series: Annotated[str | None, Query(max_length=32)] = None,
    entity: Annotated[str | None, Query(max_length=400)] = None,
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
) -> FeedPage:
    """The stored feed series, newest received first, with their provenance."""
    rows, total = repo.page(session, series=series, entity=entity, offset=offset, limit=limit)
    return FeedPage(
        items=[FeedSeriesOut.of(r) for r in rows], total=total, offset=offset, limit=limit
    )
