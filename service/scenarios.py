"""Service functions for scenario data: the current version, its tables, and every change.

A version is a manifest plus one text table per entity (cells exactly as given, so a user
gets back what they uploaded). Every change builds the complete new set of tables from the
current version, validates it with `optimizer.scenario.scenario_from_tables`, and only then
stores a new version; a rejected change raises `InvalidInput` listing every problem and
writes nothing. Versions are immutable, so parsed tables and scenarios are cached by
content hash and version id.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
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
from service.errors import Conflict, InvalidInput, NotFound, invalid_input
from service.models import ScenarioVersion
from service.repo import scenarios as repo

TABLE_NAMES = tuple(t.name for t in schema.TABLES)
POLICY_KEYS = tuple(k.name for k in schema.POLICY_KEYS)
# arbitrary constant: the PostgreSQL transaction lock serialising scenario edits, so two
# admins editing at once both land (one after the other) instead of one getting a 409
EDIT_LOCK_ID = 0x64617461  # "data"
_TS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"

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
_scenarios: _LRU[tuple[str, int], Scenario] = _LRU(8)


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
    """The validated `Scenario` of a stored version (cached: versions never change)."""
    return _scenarios.get_or(
        cache_key(session, version.id),
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
            out[col] = [None if v == "" else v.strip().lower() in _TRUE for v in text_col]
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


_TRUE = {"true", "1", "yes", "y", "t"}


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
    session: Session, table: str, upload: TableUpload, *, actor: str, note: str = ""
) -> ScenarioVersion:
    lock_edits(session)
    base = current_version(session)
    tables = dict(raw_tables(session, base))
    tables[table] = upload.frame
    return store_version(
        session,
        parent=base,
        manifest=base.manifest,
        tables=tables,
        actor=actor,
        note=note or f"replaced {table} ({len(upload.frame)} rows)",
    )


def upsert_rows(
    session: Session, table: str, upload: TableUpload, *, actor: str, note: str = ""
) -> ScenarioVersion:
    """Rows whose key exists are updated (only the cells given), the others are added."""
    lock_edits(session)
    base = current_version(session)
    spec = schema.TABLES_BY_NAME[table]
    patch, given = upload.frame, upload.given
    missing = [k for k in spec.key if k not in patch.columns]
    if missing:
        raise invalid_input(
            InputValidationError(
                [Problem(spec.file, "key column missing from the rows", column=k) for k in missing]
            )
        )
    tz = str(base.manifest.get("timezone") or "UTC")
    current = table_frame(session, base, table)
    cols = list(dict.fromkeys([*current.columns, *patch.columns]))
    merged = current.reindex(columns=cols, fill_value="").astype(str).reset_index(drop=True)
    pkeys = _keys(patch, spec, tz)
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
    where = {k: i for i, k in enumerate(_keys(merged, spec, tz))}
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
    tables = dict(raw_tables(session, base))
    tables[table] = merged
    n_new = len(new_rows)
    return store_version(
        session,
        parent=base,
        manifest=base.manifest,
        tables=tables,
        actor=actor,
        note=note or f"{table}: {len(patch) - n_new} row(s) updated, {n_new} added",
    )


def delete_job(session: Session, job_id: str, *, actor: str) -> ScenarioVersion:
    lock_edits(session)
    base = current_version(session)
    jobs = table_frame(session, base, "jobs")
    keep = jobs["job_id"].astype(str).str.strip() != job_id
    if keep.all():
        raise NotFound(f"no job {job_id!r} in scenario version {base.id}")
    tables = dict(raw_tables(session, base))
    tables["jobs"] = jobs[keep].reset_index(drop=True)
    return store_version(
        session,
        parent=base,
        manifest=base.manifest,
        tables=tables,
        actor=actor,
        note=f"deleted job {job_id}",
    )


def policy_of(version: ScenarioVersion, scenario: Scenario) -> dict[str, Any]:
    """Effective policy (defaults filled in) and which keys the manifest sets."""
    explicit = version.manifest.get("policy") or {}
    return {
        "values": {k: getattr(scenario.policy, k) for k in POLICY_KEYS},
        "explicit": sorted(k for k in explicit if k in POLICY_KEYS),
    }


def put_policy(session: Session, values: Mapping[str, Any], *, actor: str) -> ScenarioVersion:
    """Replace the manifest's [policy]: keys left out (or null) take their defaults."""
    lock_edits(session)
    base = current_version(session)
    manifest = dict(base.manifest)
    # a null would reach the optimizer as a None price; leaving the key out means "default"
    manifest["policy"] = {k: v for k, v in values.items() if v is not None}
    return store_version(
        session,
        parent=base,
        manifest=manifest,
        tables=raw_tables(session, base),
        actor=actor,
        note="policy replaced",
    )


def store_version(
    session: Session,
    *,
    parent: ScenarioVersion | None,
    manifest: dict[str, Any],
    tables: Mapping[str, pd.DataFrame],
    actor: str,
    note: str,
) -> ScenarioVersion:
    """Validate the complete new scenario; store it as the next version only if it is valid."""
    try:
        sc = scenario_from_tables(manifest, tables)
    except InputValidationError as err:
        raise _located(err, tables) from None
    encoded = {name: encode_table(df) for name, df in tables.items()}
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
            tables={name: e[0] for name, e in encoded.items()},
            sizes=sizes_of(sc, tables),
        )
    except IntegrityError:
        raise Conflict(
            "the scenario changed while this request was processed; retry against the new version"
        ) from None
    _scenarios.get_or(cache_key(session, v.id), lambda: sc)
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


def _keys(df: pd.DataFrame, spec: schema.Table, tz: str) -> pd.Series:
    """One comparable string per row from its key columns; timestamps compared as instants
    (2025-07-15T00:00+08:00, 2025-07-14T16:00Z and naive local 2025-07-15T00:00 match)."""
    parts = []
    for k in spec.key:
        col = df[k].astype(str).str.strip() if k in df.columns else pd.Series("", index=df.index)
        if spec.column(k).dtype == "timestamp":
            col = _instants(col, tz)
        parts.append(col)
    if not parts:
        return pd.Series([""] * len(df), index=df.index)
    out = parts[0]
    for p in parts[1:]:
        out = out + "\x1f" + p
    return out.reset_index(drop=True)


def _instants(text_col: pd.Series, tz: str) -> pd.Series:
    out = text_col.copy()
    has_off = text_col.str.contains(_TS_OFFSET, regex=True)
    if has_off.any():
        parsed = pd.to_datetime(text_col[has_off], utc=True, errors="coerce", format="ISO8601")
        ok = parsed.notna()
        out[has_off & ok.reindex(out.index, fill_value=False)] = parsed[ok].map(
            lambda t: t.isoformat()
        )
    naive = ~has_off & (text_col != "")
    if naive.any():
        try:
            local = pd.to_datetime(text_col[naive], errors="coerce", format="ISO8601")
            utc = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
            ok = utc.notna()
            out[naive & ok.reindex(out.index, fill_value=False)] = utc[ok].map(
                lambda t: t.isoformat()
            )
        except (TypeError, ValueError, AttributeError):
            pass  # unparseable text stays as given; the validator reports it
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
