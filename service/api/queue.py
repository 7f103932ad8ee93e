"""/jobs and /services: the workload queue. Submit (create or replace by id: a retry is
harmless), read, cancel, and report a job's progress. Reads: viewer; changes: planner (the
queue is day-to-day operations, like starting a run; the scenario's data stays admin's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from service import queue
from service.api.deps import (
    Planner,
    ReadSession,
    TableUploadDep,
    UploadFileName,
    Viewer,
    WriteSession,
)
from service.api.schemas import JobIn, ProgressIn, QueueItemOut, QueueOut, ServiceIn, errors
from service.errors import UnsupportedMediaType

router = APIRouter(tags=["queue"], responses=errors(401, 403))

WorkloadId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _out(item: Any, outcome: str | None = None) -> QueueItemOut:
    return QueueItemOut.model_validate(item).model_copy(update={"outcome": outcome})


def _spec(body: Any) -> dict[str, Any]:
    spec: dict[str, Any] = body.model_dump(mode="json", exclude_none=True)
    return spec


@router.put("/jobs/{job_id}", response_model=QueueItemOut, responses=errors(409, 422))
def put_job(session: WriteSession, who: Planner, job_id: WorkloadId, body: JobIn) -> QueueItemOut:  # type: ignore[valid-type]
    """Submit a job, or replace its spec (its reported progress stays). The same body
    again changes nothing. Checked with the current scenario (sites, types, regions)."""
    done = queue.submit(session, "job", job_id, _spec(body), by=who.label)
    return _out(done.item, done.outcome)


@router.get("/jobs", response_model=QueueOut)
def list_jobs(session: ReadSession, who: Viewer) -> QueueOut:
    """Every job in the queue, cancelled ones too."""
    return QueueOut(items=[_out(i) for i in queue.listing(session, "job")])


@router.get("/jobs/{job_id}", response_model=QueueItemOut, responses=errors(404))
def get_job(session: ReadSession, who: Viewer, job_id: WorkloadId) -> QueueItemOut:
    return _out(queue.get(session, "job", job_id))


@router.delete("/jobs/{job_id}", response_model=QueueItemOut, responses=errors(404))
def cancel_job(session: WriteSession, who: Planner, job_id: WorkloadId) -> QueueItemOut:
    """Cancel a job: it leaves the next night's scenario (cancelling twice is harmless)."""
    return _out(queue.cancel(session, "job", job_id, by=who.label))


@router.post(
    "/jobs/{job_id}/progress", response_model=QueueItemOut, responses=errors(404, 409, 422)
)
def progress(
    session: WriteSession, who: Planner, job_id: WorkloadId, body: ProgressIn
) -> QueueItemOut:
    """Report a job's progress: device-hours done so far and where it runs now. The next
    night plans its remaining work from that site."""
    item = queue.report_progress(
        session,
        job_id,
        done_device_hours=body.done_device_hours,
        current_site=body.current_site,
        by=who.label,
    )
    return _out(item)


_PROGRESS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": ",".join(queue.PROGRESS_COLUMNS)
                + "\ntrain-7,120.5,horinger\nbatch-3,8,\n",
            }
        },
    }
}


@router.post(
    "/jobs/progress",
    response_model=QueueOut,
    openapi_extra=_PROGRESS_BODY,
    responses=errors(404, 409, 413, 415, 422),
)
def progress_file(
    session: WriteSession,
    who: Planner,
    body: TableUploadDep,
    file_name: UploadFileName = "upload",
) -> QueueOut:
    """Report the progress of many jobs at once from a CSV (columns job_id,
    done_device_hours, current_site; the site empty when a job is not running), as a
    scheduler's accounting export would give it. Every row lands or none: a 422 names
    each problem's row and column."""
    kind, data = body
    if kind != "csv":
        raise UnsupportedMediaType("send the progress file as text/csv (or a multipart `file`)")
    items = queue.report_progress_file(session, data, file=file_name, by=who.label)
    return QueueOut(items=[_out(i) for i in items])


@router.put("/services/{service_id}", response_model=QueueItemOut, responses=errors(409, 422))
def put_service(
    session: WriteSession,
    who: Planner,
    service_id: WorkloadId,
    body: ServiceIn,  # type: ignore[valid-type]
) -> QueueItemOut:
    """Submit a service, or replace its spec. Its demand series stay data
    (service_demand)."""
    done = queue.submit(session, "service", service_id, _spec(body), by=who.label)
    return _out(done.item, done.outcome)


@router.get("/services", response_model=QueueOut)
def list_services(session: ReadSession, who: Viewer) -> QueueOut:
    return QueueOut(items=[_out(i) for i in queue.listing(session, "service")])


@router.get("/services/{service_id}", response_model=QueueItemOut, responses=errors(404))
def get_service(session: ReadSession, who: Viewer, service_id: WorkloadId) -> QueueItemOut:
    return _out(queue.get(session, "service", service_id))


@router.delete("/services/{service_id}", response_model=QueueItemOut, responses=errors(404))
def cancel_service(session: WriteSession, who: Planner, service_id: WorkloadId) -> QueueItemOut:
    return _out(queue.cancel(session, "service", service_id, by=who.label))
