"""The workload queue as state (issue 13): jobs and services submitted, replaced and
cancelled over the API by id, a job's progress reported (device-hours done, the site it
runs on now), and the scenario tables a night is planned from, built from the queue as it
is on top of the current scenario version's sites, fleets and series.

A spec is the row of the scenario's jobs (services) table the item becomes, so it is
checked by the optimizer's own loader: submitting builds the queue's tables with it and
validates them with the current version, and a problem comes back as a 422 naming the
column. Kinds: once the queue has held a job (a service), the queue's jobs (services)
replace the version's own table; before that the version's table stands, so a deployment
that uploads whole scenarios is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from optimizer.scenario import schema
from service import scenarios
from service.errors import Conflict, InvalidInput, NotFound
from service.models import QueueItem, ScenarioVersion, utcnow
from service.repo import queue as repo

JOB_STATE_COLUMNS = ("job_id", "current_site")
"""jobs.csv columns the queue sets itself (the id from the path, the site from progress)."""
THROUGHPUT = "throughput"
"""A service spec's accelerator -> tokens/s per device (its service_throughput rows)."""


def job_spec_columns() -> list[str]:
    return [c for c in schema.TABLES_BY_NAME["jobs"].column_names if c not in JOB_STATE_COLUMNS]


def service_spec_columns() -> list[str]:
    return [c for c in schema.TABLES_BY_NAME["services"].column_names if c != "service_id"]


@dataclass(frozen=True)
class Submitted:
    item: QueueItem
    outcome: str  # created, replaced, unchanged


def _row(
    workload_id: str, spec: dict[str, Any], item: QueueItem | None, kind: str
) -> dict[str, str]:
    """A queue item as the text row of the jobs (services) table it becomes."""
    if kind == "service":
        cols = {c: scenarios._cell(spec.get(c)) for c in service_spec_columns()}
        return {"service_id": workload_id, **cols}
    row = {c: scenarios._cell(spec.get(c)) for c in job_spec_columns()}
    done = item.done_device_hours if item is not None else 0.0
    work = float(spec["work_device_hours"])
    row["work_device_hours"] = repr(max(work - done, 0.0))  # what is left to do
    row["current_site"] = (item.current_site or "") if item is not None else ""
    return {"job_id": workload_id, **row}


def _live(item: QueueItem) -> bool:
    if item.state != "active":
        return False
    if item.kind == "job":
        return float(item.spec["work_device_hours"]) - item.done_device_hours > 0
    return True


def scenario_tables(
    session: Session, version: ScenarioVersion, *, pending: QueueItem | None = None
) -> dict[str, pd.DataFrame]:
    """The version's tables with its jobs (services) taken from the queue: active items,
    a job's work reduced by what it reports done (a job with none left drops out), its
    current site from its progress. `pending` stands in for its own stored row (a spec
    being checked before it is stored)."""
    tables = {k: v.copy() for k, v in scenarios.raw_tables(session, version).items()}
    for kind in ("job", "service"):
        stored = {i.workload_id: i for i in repo.items(session, kind)}
        if pending is not None and pending.kind == kind:
            stored[pending.workload_id] = pending
        if not stored:
            continue
        live = [i for _, i in sorted(stored.items()) if _live(i)]
        if kind == "job":
            rows = [_row(i.workload_id, i.spec, i, "job") for i in live]
            tables["jobs"] = pd.DataFrame(rows, columns=schema.TABLES_BY_NAME["jobs"].column_names)
            continue
        _service_tables(tables, live)
    return tables


def _service_tables(tables: dict[str, pd.DataFrame], live: list[QueueItem]) -> None:
    """services and service_throughput from the queue; service_demand keeps the series of
    the queued services (the demand forecast is data, not part of a submission)."""
    ids = [i.workload_id for i in live]
    tables["services"] = pd.DataFrame(
        [_row(i.workload_id, i.spec, i, "service") for i in live],
        columns=schema.TABLES_BY_NAME["services"].column_names,
    )
    tables["service_throughput"] = pd.DataFrame(
        [
            {
                "service_id": i.workload_id,
                "accelerator": a,
                "tokens_per_s_per_device": repr(float(t)),
            }
            for i in live
            for a, t in sorted(i.spec.get(THROUGHPUT, {}).items())
        ],
        columns=schema.TABLES_BY_NAME["service_throughput"].column_names,
    )
    demand = tables.get("service_demand")
    if demand is not None:
        tables["service_demand"] = demand[demand["service_id"].isin(ids)].reset_index(drop=True)


def _check(session: Session, pending: QueueItem) -> None:
    """The queue with `pending` in it must make a valid scenario with the current version.
    A queued job may be due in a later window than the version's, so its timing is checked
    here (release before deadline) and every job is placed in the version's window for the
    loader's check of the rest (types, gang, regions, sites)."""
    if pending.kind == "job":
        _check_window(pending.spec)
    version = scenarios.current_version(session)
    tables = scenario_tables(session, version, pending=pending)
    start = pd.Timestamp(version.manifest["start"])
    end = start + pd.Timedelta(hours=int(version.manifest["hours"]))
    jobs = tables["jobs"].copy()
    jobs["release"], jobs["deadline"] = start.isoformat(), end.isoformat()
    scenarios._validated(version.manifest, {**tables, "jobs": jobs})


def _check_window(spec: dict[str, Any]) -> None:
    deadline = pd.Timestamp(spec["deadline"])
    release = spec.get("release")
    if release is not None and pd.Timestamp(release) >= deadline:
        raise InvalidInput(
            "the job's release is not before its deadline",
            problems=[
                {"file": "request", "column": "deadline", "message": "must be after release"}
            ],
        )


def submit(
    session: Session, kind: str, workload_id: str, spec: dict[str, Any], *, by: str
) -> Submitted:
    """Create or replace a job (service) by id. The same spec again changes nothing
    (`unchanged`), so a client may retry; a cancelled id submitted again comes back active
    with its progress kept."""
    if kind == "job" and not _finite(spec.get("work_device_hours")):
        raise InvalidInput(
            "work_device_hours must be a finite number",
            problems=[
                {"file": "request", "column": "work_device_hours", "message": "required number"}
            ],
        )
    scenarios.lock_edits(session)
    item = repo.get(session, kind, workload_id, lock=True)
    if item is not None and item.spec == spec and item.state == "active":
        return Submitted(item, "unchanged")
    now = utcnow()
    candidate = QueueItem(
        kind=kind,
        workload_id=workload_id,
        spec=spec,
        state="active",
        revision=(item.revision + 1) if item is not None else 1,
        done_device_hours=item.done_device_hours if item is not None else 0.0,
        current_site=item.current_site if item is not None else None,
        progress_at=item.progress_at if item is not None else None,
        submitted_at=item.submitted_at if item is not None else now,
        updated_at=now,
        updated_by=by,
    )
    _check(session, candidate)
    if item is None:
        return Submitted(repo.add(session, candidate), "created")
    for col in ("spec", "state", "revision", "updated_at", "updated_by"):
        setattr(item, col, getattr(candidate, col))
    session.flush()
    return Submitted(item, "replaced")


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def get(session: Session, kind: str, workload_id: str) -> QueueItem:
    item = repo.get(session, kind, workload_id)
    if item is None:
        raise NotFound(f"no {kind} {workload_id!r} in the queue")
    return item


def listing(session: Session, kind: str) -> list[QueueItem]:
    return list(repo.items(session, kind))


def cancel(session: Session, kind: str, workload_id: str, *, by: str) -> QueueItem:
    """Cancel: the item leaves the next night's scenario; its row stays (idempotent)."""
    item = repo.get(session, kind, workload_id, lock=True)
    if item is None:
        raise NotFound(f"no {kind} {workload_id!r} in the queue")
    if item.state != "cancelled":
        item.state, item.revision = "cancelled", item.revision + 1
        item.updated_at, item.updated_by = utcnow(), by
        session.flush()
    return item


def report_progress(
    session: Session,
    workload_id: str,
    *,
    done_device_hours: float,
    current_site: str | None,
    by: str,
) -> QueueItem:
    """A job's progress: reference device-hours done so far (the total, not an increment, so
    a repeated report is harmless) and the site it runs on now (none: not running)."""
    item = repo.get(session, "job", workload_id, lock=True)
    if item is None:
        raise NotFound(f"no job {workload_id!r} in the queue")
    if item.state == "cancelled":
        raise Conflict(f"job {workload_id!r} is cancelled; submit it again to report on it")
    work = float(item.spec["work_device_hours"])
    problems = []
    if not 0 <= done_device_hours <= work:
        problems.append(
            {
                "file": "request",
                "column": "done_device_hours",
                "message": f"must be between 0 and the job's work, {work:g} device-hours",
            }
        )
    version = scenarios.current_version(session)
    sites = set(scenarios.scenario_of(session, version).site_ids)
    if current_site is not None and current_site not in sites:
        problems.append(
            {
                "file": "request",
                "column": "current_site",
                "message": f"unknown site {current_site!r}; sites: {', '.join(sorted(sites))}",
            }
        )
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the progress report", problems=problems)
    item.done_device_hours, item.current_site = float(done_device_hours), current_site
    item.progress_at = item.updated_at = utcnow()
    item.updated_by = by
    item.revision += 1
    session.flush()
    return item
