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

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from optimizer.scenario import schema
from service import scenarios
from service.db import Database
from service.errors import Conflict, InvalidInput, NotFound
from service.models import QueueItem, ScenarioVersion, utcnow
from service.repo import queue as repo

log = logging.getLogger("greenopt.queue")

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
    item = _reportable(session, workload_id)
    sites = _site_ids(session)
    problems = _progress_problems(item, done_device_hours, current_site, sites, {"file": "request"})
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the progress report", problems=problems)
    return _apply_progress(session, item, done_device_hours, current_site, by)


def _reportable(session: Session, workload_id: str) -> QueueItem:
    item = repo.get(session, "job", workload_id, lock=True)
    why = _not_reportable(item, workload_id)
    if why is not None:
        raise (NotFound if item is None else Conflict)(why)
    assert item is not None
    return item


def _not_reportable(item: QueueItem | None, workload_id: str) -> str | None:
    """Why no progress can be reported on `item` (the job `workload_id`), or None."""
    if item is None:
        return f"no job {workload_id!r} in the queue"
    if item.state == "cancelled":
        return f"job {workload_id!r} is cancelled; submit it again to report on it"
    return None


def _site_ids(session: Session) -> set[str]:
    version = scenarios.current_version(session)
    return set(scenarios.scenario_of(session, version).site_ids)


def _progress_problems(
    item: QueueItem,
    done_device_hours: float,
    current_site: str | None,
    sites: set[str],
    where: dict[str, Any],
) -> list[dict[str, Any]]:
    """What is wrong with one report on `item` (`where`: file and row to name)."""
    work = float(item.spec["work_device_hours"])
    problems = []
    if not 0 <= done_device_hours <= work:
        problems.append(
            {
                **where,
                "column": "done_device_hours",
                "message": f"must be between 0 and the job's work, {work:g} device-hours",
            }
        )
    if current_site is not None and current_site not in sites:
        problems.append(
            {
                **where,
                "column": "current_site",
                "message": f"unknown site {current_site!r}; sites: {', '.join(sorted(sites))}",
            }
        )
    return problems


def _apply_progress(
    session: Session, item: QueueItem, done_device_hours: float, current_site: str | None, by: str
) -> QueueItem:
    item.done_device_hours, item.current_site = float(done_device_hours), current_site
    item.progress_at = item.updated_at = utcnow()
    item.updated_by = by
    item.revision += 1
    session.flush()
    return item


PROGRESS_COLUMNS = ("job_id", "done_device_hours", "current_site")
"""A progress file's columns (CSV with a header); current_site empty: not running now."""


def report_progress_file(session: Session, body: bytes, *, file: str, by: str) -> list[QueueItem]:
    """Every report of a progress file (one row per job, as `report_progress`), or none: a
    problem anywhere is a 422 naming its file, row and column, and nothing changes."""
    rows, problems = _progress_rows(body, file)
    items: dict[str, QueueItem] = {}
    sites = _site_ids(session) if rows else set()
    for n, (job_id, done, site) in rows.items():
        where = {"file": file, "row": n}
        item = repo.get(session, "job", job_id, lock=True)
        why = _not_reportable(item, job_id)
        if why is not None or item is None:
            problems.append({**where, "column": "job_id", "message": why})
            continue
        problems += _progress_problems(item, done, site, sites, where)
        items[job_id] = item
    if problems:
        raise InvalidInput(
            f"progress file {file}: {len(problems)} problem(s), nothing changed", problems=problems
        )
    return [_apply_progress(session, items[j], done, site, by) for j, done, site in rows.values()]


def _progress_rows(
    body: bytes, file: str
) -> tuple[dict[int, tuple[str, float, str | None]], list[dict[str, Any]]]:
    """The file's reports by row number (1 = the first data row) and its format problems."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return {}, [{"file": file, "message": f"not UTF-8 text ({exc.reason} at byte {exc.start})"}]
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in PROGRESS_COLUMNS[:2] if c not in header]
    unknown = [c for c in header if c not in PROGRESS_COLUMNS]
    if missing or unknown:
        what = "; ".join(
            x
            for x in (
                f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
            )
            if x
        )
        return {}, [
            {"file": file, "row": 0, "message": f"{what}; columns: {', '.join(PROGRESS_COLUMNS)}"}
        ]
    rows: dict[int, tuple[str, float, str | None]] = {}
    problems: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for n, rec in enumerate(reader, start=1):
        where = {"file": file, "row": n}
        job_id = (rec.get("job_id") or "").strip()
        raw = (rec.get("done_device_hours") or "").strip()
        site = (rec.get("current_site") or "").strip() or None
        if not job_id:
            problems.append({**where, "column": "job_id", "message": "empty"})
            continue
        if job_id in first_row:
            problems.append(
                {
                    **where,
                    "column": "job_id",
                    "message": f"{job_id!r} again (row {first_row[job_id]})",
                }
            )
            continue
        first_row[job_id] = n
        try:
            done = float(raw)
        except ValueError:
            done = math.nan
        if not math.isfinite(done):
            problems.append(
                {
                    **where,
                    "column": "done_device_hours",
                    "message": f"{raw!r} is not a finite number",
                }
            )
            continue
        rows[n] = (job_id, done, site)
    if not rows and not problems:
        problems.append({"file": file, "message": "no reports (a header and no rows)"})
    return rows, problems


def scan_progress_folder(db: Database, folder: Path) -> list[str]:
    """Apply each progress file (*.csv) dropped in `folder`, each in its own transaction,
    then rename it to <name>.applied; a bad file changes nothing, stays where it is and is
    named in the problems returned (again each night until it is fixed or removed). A
    report is a total, not an increment, so a file applied twice (a crash between commit
    and rename) changes nothing the second time."""
    if not folder.is_dir():
        return [f"progress folder {folder} does not exist"]
    problems = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv"):
        try:
            with db.write() as s:
                done = report_progress_file(
                    s, path.read_bytes(), file=path.name, by=f"folder:{folder}"
                )
        except InvalidInput as err:
            first = err.problems[0] if err.problems else {}
            where = ", ".join(
                f"{k} {first[k]}" for k in ("row", "column") if first.get(k) is not None
            )
            problems.append(f"{err.message}, e.g. {first.get('message', '')} ({where})")
            continue
        path.replace(path.with_name(path.name + ".applied"))
        log.info("progress file %s: %s job(s) reported", path.name, len(done))
    return problems
