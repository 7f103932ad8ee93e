"""Service functions for scenario data: the current version, its tables, and every change.

A version is a manifest plus one text table per entity (cells exactly as given, so a user
gets back what they uploaded). Every change builds the complete new set of tables from the
current version (or, a restore, from an older one) and goes through `_apply`: content equal
to the current version makes no version; otherwise it is validated with
`optimizer.scenario.scenario_from_tables` (a rejected change raises `InvalidInput` listing
every problem), a change removing most of a table must be confirmed, and a dry run stops
there. Each version records who made it and why. Versions are immutable, so parsed tables and scenarios are cached by
content hash and version id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optimizer.scenario import (
    InputValidationError,
    Problem,
    Scenario,
    read_scenario_dir,
    scenario_from_tables,
    schema,
)
from service.db import on_commit
from service.errors import (
    ConfirmationRequired,
    Conflict,
    InvalidInput,
    NotFound,
    invalid_input,
)
from service.models import ScenarioVersion
from service.repo import scenarios as repo
from service.scenario_diff import TRUE_TEXT, TableDiff, row_keys, table_diff

log = logging.getLogger("greenopt.data")

TABLE_NAMES = tuple(t.name for t in schema.TABLES)
POLICY_KEYS = tuple(k.name for k in schema.POLICY_KEYS)
# arbitrary constant: the PostgreSQL transaction lock serialising scenario edits, so two
# admins editing at once both land (one after the other) instead of one getting a 409
EDIT_LOCK_ID = 0x64617461  # "data"

K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A small thread-safe LRU for immutable values (parsed blobs, built scenarios)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        value = make()
        with self._lock:
            self._d[key] = value
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return value


_frames: _LRU[str, pd.DataFrame] = _LRU(64)
_scenarios: _LRU[tuple[tuple[str, int], str], Scenario] = _LRU(8)


def cache_key(session: Session, row_id: int) -> tuple[str, int]:
    """A cache key for an immutable row: ids are unique within one database only, and one
    process may use several (the test suite does; so may tools)."""
    return str(session.get_bind().engine.url), row_id


# ----------------------------------------------------------------------------- encoding
def encode_table(df: pd.DataFrame) -> tuple[str, bytes, bytes]:
    """(sha256 of the CSV, gzip of it, the CSV): the stored form of a text table."""
    csv = df.to_csv(index=False).encode("utf-8")
    # mtime=0: the same table always compresses to the same bytes
    return hashlib.sha256(csv).hexdigest(), gzip.compress(csv, mtime=0), csv


def decode_csv(csv: bytes) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(csv), dtype=str, keep_default_na=False, skipinitialspace=True
    ).fillna("")


def empty_table(table: str) -> pd.DataFrame:
    return pd.DataFrame(columns=schema.TABLES_BY_NAME[table].column_names, dtype=str)


# ----------------------------------------------------------------------------- reading
def current_version(session: Session) -> ScenarioVersion:
    v = repo.current(session)
    if v is None:
        raise NotFound("no scenario loaded yet")
    return v


def get_version(session: Session, version_id: int | None) -> ScenarioVersion:
    if version_id is None:
        return current_version(session)
    v = repo.get(session, version_id)
    if v is None:
        raise NotFound(f"no scenario version {version_id}")
    return v


def list_versions(
    session: Session, *, offset: int, limit: int
) -> tuple[list[ScenarioVersion], int]:
    rows, total = repo.page(session, offset=offset, limit=limit)
    return list(rows), total


def table_csv(session: Session, version: ScenarioVersion, table: str) -> bytes:
    """The stored CSV of a table (the schema's header alone for an absent optional one)."""
    _check_table(table)
    digest = version.tables.get(table)
    if digest is None:
        return empty_table(table).to_csv(index=False).encode()
    content = repo.blob_content(session, digest)
    if content is None:  # blobs are never deleted; this is a broken database
        raise NotFound(f"table {table} of version {version.id} is missing its data")
    return gzip.decompress(content)


def table_frame(session: Session, version: ScenarioVersion, table: str) -> pd.DataFrame:
    """A table of a version as text cells. Shared from a cache: copy before changing it."""
    _check_table(table)
    digest = version.tables.get(table)
    if digest is None:
        return empty_table(table)
    return _frames.get_or(digest, lambda: decode_csv(table_csv(session, version, table)))


def raw_tables(session: Session, version: ScenarioVersion) -> dict[str, pd.DataFrame]:
    return {name: table_frame(session, version, name) for name in version.tables}


def scenario_of(session: Session, version: ScenarioVersion) -> Scenario:
    """The validated `Scenario` of a stored version (cached: versions never change; the key
    holds the fingerprint too, so a database recreated under the same URL, as tests do,
    never gets another database's scenario for a reused id)."""
    return _scenarios.get_or(
        (cache_key(session, version.id), version.fingerprint),
        lambda: scenario_from_tables(version.manifest, raw_tables(session, version)),
    )


def records(df: pd.DataFrame, table: str) -> list[dict[str, Any]]:
    """Rows as JSON objects, cells typed by the schema (numbers, booleans; empty -> null)."""
    spec = schema.TABLES_BY_NAME[table]
    known = {c.name: c for c in spec.columns}
    out: dict[str, list[Any]] = {}
    for col in df.columns:
        text_col = df[col].astype(str)
        c = known.get(col)
        if c is None or c.dtype in ("str", "timestamp", "list"):
            out[col] = [v if v != "" else None for v in text_col]
        elif c.dtype == "bool":
            out[col] = [None if v == "" else v.strip().lower() in TRUE_TEXT for v in text_col]
        else:
            num = pd.to_numeric(text_col.where(text_col != "", None), errors="coerce")
            vals: list[Any] = []
            for v in num:
                if pd.isna(v):
                    vals.append(None)
                elif c.dtype == "int" and float(v).is_integer():
                    vals.append(int(v))
                else:
                    vals.append(float(v))
            out[col] = vals
    cols = list(df.columns)
    return [dict(zip(cols, row, strict=True)) for row in zip(*(out[c] for c in cols), strict=True)]


# ----------------------------------------------------------------------------- uploads
UploadKind = Literal["json", "csv"]


@dataclass(frozen=True)
class TableUpload:
    """Rows sent by a client: a text frame and which cells the client actually gave (a JSON
    row may leave columns out; in a PATCH those keep their current value)."""

    frame: pd.DataFrame
    given: np.ndarray  # bool [rows, columns]


def parse_upload(kind: UploadKind, body: bytes, table: str) -> TableUpload:
    _check_table(table)
    file = schema.TABLES_BY_NAME[table].file
    if kind == "csv":
        try:
            df = decode_csv(body)
        except pd.errors.EmptyDataError:  # an empty body: no rows, not even a header
            df = empty_table(table)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise invalid_input(
                InputValidationError([Problem(file, f"cannot be read as CSV: {exc}")])
            ) from None
        df.columns = [str(c).strip() for c in df.columns]
        return TableUpload(df, np.ones(df.shape, dtype=bool))
    try:
        rows = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid_input(
            InputValidationError([Problem("request", f"body is not valid JSON: {exc}")])
        ) from None
    if isinstance(rows, dict) and isinstance(rows.get("rows"), list):
        rows = rows["rows"]  # accept the shape GET returns, so a GET can be PUT back
    if not isinstance(rows, list):
        raise invalid_input(
            InputValidationError(
                [Problem("request", "body must be a JSON array of row objects (or CSV)")]
            )
        )
    problems: list[Problem] = []
    cols: dict[str, None] = {}
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            problems.append(Problem(file, "row is not a JSON object", row=i))
            continue
        for k, v in row.items():
            cols.setdefault(str(k), None)
            if isinstance(v, dict) or (
                isinstance(v, list) and not all(isinstance(x, str | int | float) for x in v)
            ):
                problems.append(Problem(file, "value must be a scalar", row=i, column=str(k)))
    if problems:
        raise invalid_input(InputValidationError(problems))
    names = list(cols) if rows else schema.TABLES_BY_NAME[table].column_names
    data = [[_cell(r.get(c)) for c in names] for r in rows]
    given = np.array([[c in r for c in names] for r in rows], dtype=bool).reshape(
        len(rows), len(names)
    )
    return TableUpload(pd.DataFrame(data, columns=names, dtype=str), given)


def _cell(v: Any) -> str:
    """A JSON value as the text a CSV cell would hold."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # shortest round-trip form; nan/inf are reported by the validator
    if isinstance(v, list):
        return ";".join(str(x) for x in v)
    return str(v)


# ----------------------------------------------------------------------------- changes
Outcome = Literal["created", "unchanged", "dry_run"]


@dataclass(frozen=True)
class ChangeOptions:
    """How a change is applied. `dry_run`: validate and diff, write nothing.
    `confirm_removal`: the client means to empty a table or remove more than half of its
    rows (`scenario_diff.MAX_UNCONFIRMED_REMOVAL_SHARE`); without it such a change is
    refused."""

    dry_run: bool = False
    confirm_removal: bool = False


@dataclass(frozen=True)
class Change:
    """What a change did, or (a dry run) would do. `version` is the version now current:
    the new one when `outcome` is `created`, else the unchanged current one."""

    outcome: Outcome
    version: ScenarioVersion
    diff: tuple[TableDiff, ...]  # the tables that differ, in schema order
    manifest_changed: bool
    message: str


def bootstrap(session: Session, path: Path) -> ScenarioVersion | None:
    """Load a scenario directory into version 1 when the database has no version."""
    lock_edits(session)
    if repo.count(session) > 0:
        return None
    manifest, tables = read_scenario_dir(path)
    return store_version(
        session,
        parent=None,
        manifest=_json_manifest(manifest),
        tables=tables,
        actor="bootstrap",
        note=f"loaded from {path}",
    )


def replace_table(
    session: Session,
    table: str,
    upload: TableUpload,
    *,
    actor: str,
    options: ChangeOptions = ChangeOptions(),
) -> Change:
    lock_edits(session)
    base = current_version(session)
    return _apply(
        session,
        base,
        manifest=base.manifest,
        source=base,
        frames={table: upload.frame},
        actor=actor,
        note=f"replaced {table} ({len(upload.frame)} rows)",
        options=options,
    )


def upsert_rows(
    session: Session,
    table: str,
    upload: TableUpload,
    *,
    actor: str,
    options: ChangeOptions = ChangeOptions(),
) -> Change:
    """Rows whose key exists are updated (only the cells given), the others are added."""
    lock_edits(session)
    base = current_version(session)
    tz = str(base.manifest.get("timezone") or "UTC")
    merged, n_new = _upserted(table_frame(session, base, table), upload, table, tz)
    return _apply(
        session,
        base,
        manifest=base.manifest,
        source=base,
        frames={table: merged},
        actor=actor,
        note=f"{table}: {len(upload.frame) - n_new} row(s) updated, {n_new} added",
        options=options,
    )


def _upserted(
    current: pd.DataFrame, upload: TableUpload, table: str, tz: str
) -> tuple[pd.DataFrame, int]:
    """`current` with the upload's rows merged in by key; and how many rows were new."""
    spec = schema.TABLES_BY_NAME[table]
    patch, given = upload.frame, upload.given
    missing = [k for k in spec.key if k not in patch.columns]
    if missing:
        raise invalid_input(
            InputValidationError(
                [Problem(spec.file, "key column missing from the rows", column=k) for k in missing]
            )
        )
    cols = list(dict.fromkeys([*current.columns, *patch.columns]))
    merged = current.reindex(columns=cols, fill_value="").astype(str).reset_index(drop=True)
    pkeys = row_keys(patch, spec, tz)
    dup = pkeys.duplicated(keep="first").to_numpy()
    if dup.any():
        first = {k: i + 1 for i, k in reversed(list(enumerate(pkeys)))}
        raise invalid_input(
            InputValidationError(
                [
                    Problem(
                        spec.file,
                        f"the same key is given twice in the request; first in row {first[pkeys.iloc[i]]}",
                        row=int(i) + 1,
                    )
                    for i in np.flatnonzero(dup)
                ]
            )
        )
    where = {k: i for i, k in enumerate(row_keys(merged, spec, tz))}
    new_rows = []
    for i in range(len(patch)):
        target = where.get(pkeys.iloc[i])
        row_given = given[i]
        if target is None:
            new_rows.append(
                {c: patch.iat[i, j] if row_given[j] else "" for j, c in enumerate(patch.columns)}
            )
            continue
        for j, c in enumerate(patch.columns):
            # key cells keep their stored text: equal as keys (the same instant) is enough,
            # and "…Z" would not pass where the scenario writes local offsets
            if row_given[j] and c not in spec.key:
                merged.at[target, c] = str(patch.iat[i, j])
    if new_rows:
        merged = pd.concat(
            [merged, pd.DataFrame(new_rows, columns=patch.columns, dtype=str)], ignore_index=True
        ).fillna("")
    return merged, len(new_rows)


def delete_job(
    session: Session, job_id: str, *, actor: str, options: ChangeOptions = ChangeOptions()
) -> Change:
    """Remove one job. Naming the job is the confirmation, even when it is the last one."""
    lock_edits(session)
    base = current_version(session)
    jobs = table_frame(session, base, "jobs")
    keep = jobs["job_id"].astype(str).str.strip() != job_id
    if keep.all():
        raise NotFound(f"no job {job_id!r} in scenario version {base.id}")
    return _apply(
        session,
        base,
        manifest=base.manifest,
        source=base,
        frames={"jobs": jobs[keep].reset_index(drop=True)},
        actor=actor,
        note=f"deleted job {job_id}",
        options=dataclasses.replace(options, confirm_removal=True),
    )


def restore_version(
    session: Session, version_id: int, *, actor: str, options: ChangeOptions = ChangeOptions()
) -> Change:
    """A new version whose manifest and tables are those of `version_id` (the very same
    stored blobs). Naming the version is the confirmation of whatever it removes."""
    lock_edits(session)
    base = current_version(session)
    old = get_version(session, version_id)
    return _apply(
        session,
        base,
        manifest=old.manifest,
        source=old,
        frames={},
        actor=actor,
        note=f"restored from version {old.id}",
        options=dataclasses.replace(options, confirm_removal=True),
    )


def policy_of(version: ScenarioVersion, scenario: Scenario) -> dict[str, Any]:
    """Effective policy (defaults filled in) and which keys the manifest sets."""
    explicit = version.manifest.get("policy") or {}
    return {
        "values": {k: getattr(scenario.policy, k) for k in POLICY_KEYS},
        "explicit": sorted(k for k in explicit if k in POLICY_KEYS),
    }


def put_policy(
    session: Session,
    values: Mapping[str, Any],
    *,
    actor: str,
    options: ChangeOptions = ChangeOptions(),
) -> Change:
    """Replace the manifest's [policy]: keys left out (or null) take their defaults."""
    lock_edits(session)
    base = current_version(session)
    manifest = dict(base.manifest)
    # a null would reach the optimizer as a None price; leaving the key out means "default"
    manifest["policy"] = {k: v for k, v in values.items() if v is not None}
    return _apply(
        session,
        base,
        manifest=manifest,
        source=base,
        frames={},
        actor=actor,
        note="policy replaced",
        options=options,
    )


def _apply(
    session: Session,
    base: ScenarioVersion,
    *,
    manifest: dict[str, Any],
    source: ScenarioVersion,
    frames: Mapping[str, pd.DataFrame],
    actor: str,
    note: str,
    options: ChangeOptions,
) -> Change:
    """The one path of every change to the current version `base`: the new scenario is
    `source`'s stored tables with `frames` put in their place. Identical content makes no
    version; otherwise it is validated (422), checked for mass removal (409) and, unless a
    dry run, stored."""
    kept = {n: d for n, d in source.tables.items() if n not in frames}
    tables = {n: table_frame(session, source, n) for n in kept} | dict(frames)
    diff = _diff(session, base, tables, kept)
    manifest_changed = manifest != base.manifest
    if not diff and not manifest_changed:
        return Change(
            "unchanged",
            base,
            (),
            False,
            f"no change: the content equals the current version {base.id}; no version made",
        )
    scenario = _validated(manifest, tables)
    destructive = [d for d in diff if d.needs_confirmation]
    if destructive and not options.confirm_removal:
        raise ConfirmationRequired(
            f"refused: this would remove most of {', '.join(d.table for d in destructive)} "
            "(more than half of the rows, or all); nothing changed. Send it again with "
            "confirm_removal=true if that is what you mean.",
            problems=[_removal_problem(d) for d in destructive],
        )
    if options.dry_run:
        return Change(
            "dry_run",
            base,
            diff,
            manifest_changed,
            f"dry run: valid; would make a new version after {base.id}; nothing written",
        )
    v = store_version(
        session,
        parent=base,
        manifest=manifest,
        tables=tables,
        kept=kept,
        actor=actor,
        note=note,
        scenario=scenario,
    )
    summary = "; ".join(d.describe() for d in diff) or "tables unchanged"
    on_commit(
        session,
        lambda: log.info(
            "scenario version %s made by %s: %s (%s)",
            v.id,
            actor,
            note,
            summary,
            extra={"event": "data_change", "version_id": v.id, "actor": actor, "note": note},
        ),
    )
    return Change("created", v, diff, manifest_changed, f"version {v.id} made: {note}")


def _diff(
    session: Session,
    base: ScenarioVersion,
    tables: Mapping[str, pd.DataFrame],
    kept: Mapping[str, str],
) -> tuple[TableDiff, ...]:
    """The tables that differ from `base` (a table stored as the same blob cannot)."""
    tz = str(base.manifest.get("timezone") or "UTC")
    out = []
    for name in TABLE_NAMES:
        if name not in tables and name not in base.tables:
            continue
        if name in kept and kept[name] == base.tables.get(name):
            continue
        after = tables[name] if name in tables else empty_table(name)
        d = table_diff(name, table_frame(session, base, name), after, tz)
        if not d.is_empty:
            out.append(d)
    return tuple(out)


def _removal_problem(d: TableDiff) -> dict[str, Any]:
    return {
        "table": d.table,
        "file": schema.TABLES_BY_NAME[d.table].file,
        "row": None,
        "column": None,
        "hour": None,
        "message": f"{d.describe()}: confirm_removal=true is needed to remove that many rows",
        "rows_before": d.rows_before,
        "rows_after": d.rows_after,
        "removed": d.removed,
    }


def _validated(manifest: dict[str, Any], tables: Mapping[str, pd.DataFrame]) -> Scenario:
    try:
        return scenario_from_tables(manifest, tables)
    except InputValidationError as err:
        raise _located(err, tables) from None


def store_version(
    session: Session,
    *,
    parent: ScenarioVersion | None,
    manifest: dict[str, Any],
    tables: Mapping[str, pd.DataFrame],
    actor: str,
    note: str,
    kept: Mapping[str, str] | None = None,
    scenario: Scenario | None = None,
) -> ScenarioVersion:
    """Store the complete new scenario as the next version, validating it first unless
    `scenario` is its validated form. Tables in `kept` (name -> digest) are already stored
    blobs and keep them as they are."""
    sc = scenario if scenario is not None else _validated(manifest, tables)
    kept = kept or {}
    encoded = {name: encode_table(df) for name, df in tables.items() if name not in kept}
    have = repo.existing_blobs(session, (e[0] for e in encoded.values()))
    for name, (digest, gz, _) in encoded.items():
        if digest not in have:
            repo.add_blob(
                session, sha256=digest, content=gz, rows=len(tables[name]), size_bytes=len(gz)
            )
            have.add(digest)
    try:
        v = repo.add_version(
            session,
            parent_id=parent.id if parent is not None else None,
            created_by=actor,
            note=note,
            fingerprint=sc.fingerprint,
            manifest=manifest,
            tables={name: kept[name] if name in kept else encoded[name][0] for name in tables},
            sizes=sizes_of(sc, tables),
        )
    except IntegrityError:
        raise Conflict(
            "the scenario changed while this request was processed; retry against the new version"
        ) from None
    _scenarios.get_or((cache_key(session, v.id), v.fingerprint), lambda: sc)
    return v


def sizes_of(sc: Scenario, tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    return {
        "sites": len(sc.sites),
        "accelerators": len(sc.accelerators),
        "hours": sc.hours,
        "jobs": len(sc.jobs),
        "services": len(sc.services),
        "demand_regions": len(sc.demand_regions),
        "rows": {name: len(tables[name]) for name in TABLE_NAMES if name in tables},
    }


def lock_edits(session: Session) -> None:
    """Serialise scenario edits until the end of the transaction (SQLite: BEGIN IMMEDIATE
    already did)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": EDIT_LOCK_ID})


# ----------------------------------------------------------------------------- helpers
def _check_table(table: str) -> None:
    if table not in schema.TABLES_BY_NAME:
        raise NotFound(f"unknown table {table!r}; tables: {', '.join(TABLE_NAMES)}")


def _located(err: InputValidationError, tables: Mapping[str, pd.DataFrame]) -> InvalidInput:
    """The optimizer's problems, each also naming the key of the row at fault (row numbers
    of a merged table mean little to someone who sent a few rows)."""
    out = invalid_input(err)
    by_file = {schema.TABLES_BY_NAME[n].file: n for n in tables if n in schema.TABLES_BY_NAME}
    for p in out.problems:
        name = by_file.get(p["file"])
        row = p.get("row")
        if name is None or row is None:
            continue
        df = tables[name]
        if 1 <= row <= len(df):
            spec = schema.TABLES_BY_NAME[name]
            p["key"] = {k: str(df.iloc[row - 1][k]) for k in spec.key if k in df.columns}
    return out


def _json_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """TOML may hold dates and times; the manifest is stored as JSON."""

    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dt.datetime | dt.date | dt.time):
            return v.isoformat()
        return v

    return conv(manifest)
