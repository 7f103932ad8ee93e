"""Service functions for plans: store one (immutable), read it back, activate, explain,
diff, and export the plan bundle.

What `optimizer.plan.Plan.write_bundle` writes is the audited contract. At store time the
bundle is written once and the sha256 of every file is kept; `assignments` and `site_hours`
are stored as rows (for paginated queries) and every other file as its exact bytes. The
bundle endpoint rebuilds the two row tables, checks every file against its digest and
refuses (500) rather than serve a bundle that differs from the one solved.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import logging
import math
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from optimizer.diff import diff_plans, explain, region_links
from optimizer.plan import Plan as OptPlan
from service.errors import Conflict, NotFound, PlanIntegrityError
from service.models import Plan, Run, ScenarioVersion, utcnow
from service.repo import plans as repo
from service.scenarios import _LRU, cache_key

log = logging.getLogger("greenopt.plans")

ROW_TABLES = ("assignments", "site_hours")
SUMMARY_FILE = "summary.json"
CSV_FLOAT_FORMAT = "%.10g"  # what Plan.write_bundle uses; rebuilt CSVs must match it
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same plan zips to the same bytes

_loaded: _LRU[tuple[str, int], OptPlan] = _LRU(8)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _row_columns(table: str) -> list[str]:
    return repo.row_keys(table)


def rows_csv(table: str, rows: list[dict[str, Any]]) -> bytes:
    """A row table as the CSV `write_bundle` writes for it."""
    df = pd.DataFrame(rows, columns=_row_columns(table))
    return df.to_csv(index=False, float_format=CSV_FLOAT_FORMAT).encode()


def _records(df: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    cols = _row_columns(table)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(
            f"the plan's {table} table lacks column(s) {', '.join(missing)}: the bundle "
            "contract changed and service/models.py must follow it"
        )
    recs: list[dict[str, Any]] = []
    for raw in df[cols].to_dict(orient="records"):
        r: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, np.generic):
                v = v.item()
            r[str(k)] = None if isinstance(v, float) and math.isnan(v) else v
        recs.append(r)
    return recs


def bundle_files(plan: OptPlan) -> dict[str, bytes]:
    """The plan bundle exactly as `Plan.write_bundle` writes it, file name -> bytes."""
    with tempfile.TemporaryDirectory(prefix="greenopt-bundle-") as tmp:
        root = plan.write_bundle(Path(tmp) / "bundle")
        return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def store_plan(
    session: Session,
    *,
    run: Run,
    plan: OptPlan,
    version: ScenarioVersion,
    extra_summary: dict[str, Any] | None = None,
) -> Plan:
    """Store `plan` (from `run`) with its rows and artifacts. No commit: the caller's
    transaction also records the run's final state, so both land or neither does."""
    row = repo.add(
        session,
        run_id=run.id,
        kind=run.kind,
        planner=str(plan.summary.get("planner", "milp")),
        created_at=utcnow(),
        scenario_version_id=version.id,
        scenario_fingerprint=str(plan.summary.get("scenario_fingerprint", version.fingerprint)),
        status=plan.status,
        objective=_num(plan.summary.get("objective")),
        bound=_num(plan.summary.get("bound")),
        gap=_num(plan.summary.get("gap")),
        total_cost=_num(plan.summary.get("total_cost")),
        emissions_t=_num(plan.summary.get("emissions_t")),
        emissions_location_t=_num(plan.summary.get("emissions_location_t")),
        green_share=_num(plan.summary.get("green_share")),
        timings={},
        summary={},
        bundle_sha256={},
    )
    summary = dict(plan.summary)
    summary.update(extra_summary or {})
    summary.update({"plan_id": row.id, "run_id": run.id, "scenario_version_id": version.id})
    plan = dataclasses.replace(plan, summary=summary)
    files = bundle_files(plan)
    # the summary column holds what summary.json says (JSON round trip of the same values)
    row.summary = json.loads(files[SUMMARY_FILE])
    row.timings = row.summary.get("timings_s", {})
    row.bundle_sha256 = {name: _sha(b) for name, b in files.items()}
    for table in ROW_TABLES:
        recs = _records(plan.table(table), table)
        for i, r in enumerate(recs):
            r["plan_id"], r["seq"] = row.id, i
        repo.add_rows(session, table, recs)
        if rows_csv(table, recs) != files[f"{table}.csv"]:
            # the rows cannot give the file back (a column the tables do not hold, or a
            # type that does not survive): keep the exact bytes too, and say so
            log.warning("plan %s: %s.csv kept as bytes, rows do not reproduce it", row.id, table)
        else:
            files.pop(f"{table}.csv")
    for name, content in files.items():
        repo.add_artifact(
            session,
            plan_id=row.id,
            name=name,
            content=gzip.compress(content, mtime=0),
            sha256=_sha(content),
            size_bytes=len(content),
        )
    session.flush()
    return row


# ----------------------------------------------------------------------------- reading
def get_plan(session: Session, plan_id: int) -> Plan:
    row = repo.get(session, plan_id)
    if row is None:
        raise NotFound(f"no plan {plan_id}")
    return row


def list_plans(session: Session, *, offset: int, limit: int) -> tuple[list[Plan], int]:
    rows, total = repo.page(session, offset=offset, limit=limit)
    return list(rows), total


def active_plan(session: Session) -> Plan:
    act = repo.active(session)
    if act is None:
        raise NotFound(
            'no plan is active yet: solve one with POST /runs {"activate": true} '
            "or activate an existing plan with POST /plans/{id}/activate"
        )
    return get_plan(session, act.plan_id)


def active_plan_id(session: Session) -> int | None:
    act = repo.active(session)
    return act.plan_id if act is not None else None


def rows(
    session: Session,
    plan_id: int,
    table: str,
    *,
    site_id: str | None,
    workload_id: str | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    get_plan(session, plan_id)
    return repo.rows_page(
        session,
        table,
        plan_id,
        site_id=site_id,
        workload_id=workload_id,
        offset=offset,
        limit=limit,
    )


def page_csv(table: str, rows_: list[dict[str, Any]]) -> bytes:
    return rows_csv(table, rows_)


def bundle(session: Session, plan_id: int) -> dict[str, bytes]:
    """Every bundle file, byte-for-byte as solved (checked against the stored digests)."""
    row = get_plan(session, plan_id)
    arts = repo.artifacts(session, plan_id)
    files = {name: gzip.decompress(a.content) for name, a in arts.items()}
    for table in ROW_TABLES:
        name = f"{table}.csv"
        if name not in files:
            recs, _ = repo.rows_page(session, table, plan_id)
            files[name] = rows_csv(table, recs)
    expected = row.bundle_sha256
    bad = sorted(
        n for n in set(expected) | set(files) if _sha(files.get(n, b"")) != expected.get(n)
    )
    if bad:
        raise PlanIntegrityError(
            f"plan {plan_id}: stored bundle file(s) {', '.join(bad)} do not match the digests "
            "recorded when it was solved"
        )
    return {n: files[n] for n in sorted(files)}


def bundle_zip(session: Session, plan_id: int) -> bytes:
    files = bundle(session, plan_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, content)
    return buf.getvalue()


def load_plan(session: Session, plan_id: int) -> OptPlan:
    """The stored plan as an `optimizer.plan.Plan`, read exactly as `Plan.read_bundle` reads
    a bundle from disk (cached: plans never change)."""

    def make() -> OptPlan:
        files = bundle(session, plan_id)
        with tempfile.TemporaryDirectory(prefix="greenopt-plan-") as tmp:
            for name, content in files.items():
                (Path(tmp) / name).write_bytes(content)
            return OptPlan.read_bundle(tmp)

    return _loaded.get_or(cache_key(session, plan_id), make)


def workloads(session: Session, plan_id: int) -> list[dict[str, Any]]:
    get_plan(session, plan_id)
    rows: list[dict[str, Any]] = jsonable(
        load_plan(session, plan_id).workloads.to_dict(orient="records")
    )
    return rows


def explain_plan(session: Session, plan_id: int) -> dict[str, Any]:
    get_plan(session, plan_id)
    return jsonable(explain(load_plan(session, plan_id)))


def links(session: Session, plan_id: int) -> list[dict[str, Any]]:
    get_plan(session, plan_id)
    return jsonable(region_links(load_plan(session, plan_id)))


def diff(session: Session, a: int, b: int) -> dict[str, Any]:
    get_plan(session, a)
    get_plan(session, b)
    return jsonable(diff_plans(load_plan(session, a), load_plan(session, b)))


WHAT_IF_KINDS = ("whatif", "sweep_point")


def activate(
    session: Session, plan_id: int, *, by: str, run_id: int | None = None, reason: str = ""
) -> dict[str, Any]:
    """Make `plan_id` the active plan and record it in the history.

    A what-if plan was made for a scenario changed by its overrides (an outage that did not
    happen, a price that is not today's); it never becomes the plan ops run by.
    """
    plan = get_plan(session, plan_id)
    if plan.kind in WHAT_IF_KINDS:
        raise Conflict(
            f"plan {plan_id} answers a what-if ({plan.kind}): it was made for changed data and "
            "cannot be activated; change the data (PUT/PATCH /data/...) and start a run instead"
        )
    previous = active_plan_id(session)
    now = utcnow()
    repo.set_active(session, plan_id=plan_id, by=by, now=now, run_id=run_id, reason=reason)
    return {
        "plan_id": plan_id,
        "previous_plan_id": previous,
        "activated_by": by,
        "activated_at": now,
    }


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars unwrapped, NaN and infinities as null, tuples as lists."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
