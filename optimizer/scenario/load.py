"""Turn a scenario directory (or the same tables in memory) into a validated `Scenario`,
and a `Scenario` back into its tables.

Every check runs before anything is built and every problem is collected, so a user sees
all of them at once, each with its file, row, column and hour (`InputValidationError`).
Here: reading, the manifest, parsing each column as `schema.py` declares it, and writing;
`assemble.py` builds the `Scenario` from the typed tables, one builder per table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.scenario import schema
from optimizer.scenario.assemble import assemble
from optimizer.scenario.schema import REQUIRED, Column, Table
from optimizer.scenario.types import (
    InputValidationError,
    Policy,
    Problem,
    Scenario,
    Site,
)

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


# ----------------------------------------------------------------------------- reading
def read_scenario_dir(path: str | Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Read the manifest and the raw CSV tables (all cells as text) of a scenario directory."""
    root = Path(path)
    problems: list[Problem] = []
    manifest: dict[str, Any] = {}
    mpath = root / schema.MANIFEST_FILE
    if not root.is_dir():
        raise InputValidationError([Problem(str(root), "scenario directory not found")])
    if not mpath.is_file():
        problems.append(Problem(schema.MANIFEST_FILE, "manifest file missing"))
    else:
        try:
            manifest = tomllib.loads(mpath.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(Problem(schema.MANIFEST_FILE, f"not valid TOML: {exc}"))
    tables: dict[str, pd.DataFrame] = {}
    for table in schema.TABLES:
        fpath = root / table.file
        if not fpath.is_file():
            if not table.optional:
                problems.append(Problem(table.file, "file missing"))
            continue
        try:
            tables[table.name] = pd.read_csv(
                fpath, dtype=str, keep_default_na=False, skipinitialspace=True
            )
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            problems.append(Problem(table.file, f"cannot be read as CSV: {exc}"))
    if problems:
        raise InputValidationError(problems)
    return manifest, tables


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario directory; raises `InputValidationError` listing every problem."""
    manifest, tables = read_scenario_dir(path)
    return scenario_from_tables(manifest, tables)


# ----------------------------------------------------------------------------- parsing
class _Parser:
    """Parses typed columns out of text tables, collecting problems instead of raising."""

    def __init__(self, timezone: str | None, start: pd.Timestamp | None, hours: int | None):
        self.problems: list[Problem] = []
        self.tz = timezone
        self.start = start
        self.hours = hours
        self._hours: np.ndarray | None = None  # timestamp text of the table being parsed

    def add(
        self,
        file: str,
        message: str,
        row: int | None = None,
        column: str | None = None,
        hour: str | None = None,
    ) -> None:
        hours = self._hours
        in_hourly_row = hours is not None and row is not None and 0 < row <= len(hours)
        if hour is None and in_hourly_row and column != "timestamp" and hours[row - 1]:  # type: ignore[index,operator]
            hour = str(hours[row - 1])  # type: ignore[index,operator]  # the row's hour, named too
        self.problems.append(Problem(file, message, row, column, hour))

    def table(self, table: Table, raw: pd.DataFrame | None) -> pd.DataFrame | None:
        """Typed copy of `raw` with every declared column; None if the table is unusable."""
        if raw is None:
            return None
        raw = raw.rename(columns=lambda c: str(c).strip())
        missing = [c.name for c in table.columns if c.required and c.name not in raw.columns]
        for name in missing:
            self.add(table.file, "required column missing", column=name)
        if missing:
            return None
        out = pd.DataFrame(index=raw.index)
        rows = np.arange(1, len(raw) + 1)
        self._hours = (
            raw["timestamp"].astype(str).str.strip().to_numpy()
            if "timestamp" in raw.columns
            else None
        )
        for col in table.columns:
            if col.name in raw.columns:
                text = raw[col.name].astype(str).str.strip()
            else:
                text = pd.Series([""] * len(raw), index=raw.index, dtype=object)
            out[col.name] = self._column(table, col, text, rows)
        self._duplicates(table, out, rows)
        self._hours = None
        return out

    def _column(self, table: Table, col: Column, text: pd.Series, rows: np.ndarray) -> pd.Series:
        empty = text == ""
        if col.required:
            for r in rows[empty.to_numpy()]:
                self.add(table.file, "empty value in required column", row=int(r), column=col.name)
        if col.dtype == "str":
            return text.where(~empty, "" if col.default in (REQUIRED, None) else str(col.default))
        if col.dtype == "list":
            default = "" if col.default in (REQUIRED, None) else str(col.default)
            filled = text.where(~empty, default)
            return filled.map(lambda s: tuple(p.strip() for p in s.split(";") if p.strip()))
        if col.dtype == "bool":
            low = text.str.lower()
            bad = ~empty & ~low.isin(_TRUE | _FALSE)
            for r, v in zip(rows[bad.to_numpy()], text[bad], strict=True):
                self.add(
                    table.file,
                    f"not a boolean: {v!r} (use true/false)",
                    row=int(r),
                    column=col.name,
                )
            flag = bool(col.default) if col.default not in (REQUIRED, None) else False
            return pd.Series(np.where(empty, flag, low.isin(_TRUE)), index=text.index, dtype=bool)
        if col.dtype == "timestamp":
            return self.timestamps(table.file, col.name, text, rows)
        # numbers
        num = pd.to_numeric(text.where(~empty, None), errors="coerce")
        lowered = text.str.lower()
        is_nan_text = lowered.isin({"nan", "-nan", "+nan", "na", "n/a", "null", "none"})
        bad_text = ~empty & num.isna() & ~is_nan_text
        for r, v in zip(rows[bad_text.to_numpy()], text[bad_text], strict=True):
            self.add(table.file, f"not a number: {v!r}", row=int(r), column=col.name)
        for r in rows[is_nan_text.to_numpy()]:
            self.add(table.file, "value is NaN", row=int(r), column=col.name)
        inf = np.isinf(num.to_numpy(dtype=float, na_value=np.nan))
        for r in rows[inf]:
            self.add(table.file, "value is not finite", row=int(r), column=col.name)
        values = num.to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(values)
        if col.min is not None:
            below = ok & ((values <= col.min) if col.min_exclusive else (values < col.min))
            word = "greater than" if col.min_exclusive else "at least"
            for r, v in zip(rows[below], values[below], strict=True):
                what = (
                    "negative value"
                    if col.min == 0 and not col.min_exclusive
                    else "value out of range"
                )
                self.add(
                    table.file,
                    f"{what} {v:g}: must be {word} {col.min:g}",
                    row=int(r),
                    column=col.name,
                )
        if col.max is not None:
            above = ok & (values > col.max)
            for r, v in zip(rows[above], values[above], strict=True):
                self.add(
                    table.file,
                    f"value {v:g} out of range: must be at most {col.max:g}",
                    row=int(r),
                    column=col.name,
                )
        if col.dtype == "int":
            finite = np.where(ok, values, 0.0)  # inf and NaN were reported above
            frac = ok & (np.abs(finite - np.round(finite)) > 1e-9)
            for r, v in zip(rows[frac], values[frac], strict=True):
                self.add(table.file, f"not a whole number: {v:g}", row=int(r), column=col.name)
        number = np.nan if col.default in (REQUIRED, None) else float(col.default)
        values = np.where(empty.to_numpy(), number, values)
        return pd.Series(values, index=text.index, dtype=float)

    def timestamps(self, file: str, column: str, text: pd.Series, rows: np.ndarray) -> pd.Series:
        """UTC instants; naive text is local time in the scenario's zone; offsets must match it."""
        empty = (text == "").to_numpy()
        result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
        if self.tz is None:
            return result
        has_offset = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).to_numpy()
        with_off = ~empty & has_offset
        naive = ~empty & ~has_offset
        if with_off.any():
            parsed = pd.to_datetime(text[with_off], utc=True, errors="coerce", format="ISO8601")
            result[with_off] = parsed
            given = (
                text[with_off]
                .str.extract(r"(Z|[+-]\d\d:?\d\d)$")[0]
                .str.replace(":", "", regex=False)
            )
            given = given.replace("Z", "+0000")
            ok = parsed.notna()
            expected = pd.Series("", index=parsed.index)
            expected[ok] = parsed[ok].dt.tz_convert(self.tz).dt.strftime("%z")
            mismatch = ok & (given != expected)
            for idx in text[with_off].index[mismatch.to_numpy()]:
                r = int(rows[text.index.get_loc(idx)])
                self.add(
                    file,
                    f"timezone mismatch: {text[idx]!r} has offset {given[idx]} but {self.tz} is at {expected[idx]} then",
                    row=r,
                    column=column,
                )
        if naive.any():
            local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
            # text that is not a date gives NaT (reported below); mixed offsets give objects
            with contextlib.suppress(TypeError, AttributeError):
                result[naive] = local.dt.tz_localize(
                    self.tz, ambiguous="NaT", nonexistent="NaT"
                ).dt.tz_convert("UTC")
        bad = ~empty & result.isna().to_numpy()
        for r, v in zip(rows[bad], text[bad], strict=True):
            if not any(
                p.row == int(r) and p.column == column and p.file == file
                for p in self.problems[-50:]
            ):
                self.add(
                    file,
                    f"not a valid timestamp: {v!r} (use ISO 8601, e.g. 2025-07-15T00:00:00+08:00)",
                    row=int(r),
                    column=column,
                )
        return result

    def hour_index(self, stamps: pd.Series) -> np.ndarray:
        """Fractional hours since the horizon start (NaN where the timestamp is missing)."""
        assert self.start is not None
        delta = (stamps - self.start.tz_convert("UTC")).dt.total_seconds() / 3600.0
        return delta.to_numpy(dtype=float, na_value=np.nan)

    def _duplicates(self, table: Table, df: pd.DataFrame, rows: np.ndarray) -> None:
        key = list(table.key)
        if any(df[k].isna().all() for k in key):
            return
        dup = df.duplicated(subset=key, keep="first").to_numpy()
        if not dup.any():
            return
        first = df.drop_duplicates(subset=key, keep="first")
        first_row = {
            tuple(_keyval(v) for v in vals): int(r)
            for vals, r in zip(first[key].itertuples(index=False), rows[~dup], strict=True)
        }
        for vals, r in zip(df[key][dup].itertuples(index=False), rows[dup], strict=True):
            k = tuple(_keyval(v) for v in vals)
            hour = None
            if "timestamp" in key:
                hour = self.iso(vals[key.index("timestamp")])
            label = ", ".join(
                f"{n}={_keyval(v)}" for n, v in zip(key, vals, strict=True) if n != "timestamp"
            )
            what = "duplicate hour" if "timestamp" in key else "duplicate key"
            self.add(
                table.file,
                f"{what} ({label}); first given in row {first_row.get(k, '?')}",
                row=r,
                hour=hour,
            )

    def iso(self, ts: Any) -> str | None:
        if ts is None or pd.isna(ts) or self.tz is None:
            return None
        return pd.Timestamp(ts).tz_convert(self.tz).isoformat()


def _keyval(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


# ----------------------------------------------------------------------------- manifest
def _parse_manifest(
    manifest: Mapping[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], Policy]:
    """The manifest's keys (timezone, hours and start checked and typed) and its policy."""
    file = schema.MANIFEST_FILE
    out: dict[str, Any] = {}
    for key in schema.MANIFEST_KEYS:
        val = manifest.get(key.name, None)
        if val is None or val == "":
            if key.required:
                problems.append(Problem(file, "required key missing", column=key.name))
            out[key.name] = None if key.required else key.default
            continue
        out[key.name] = val
    out["timezone"] = _timezone(out.get("timezone"), problems)
    out["hours"] = _hours(out.get("hours"), problems)
    if out.get("start") is not None:
        out["start"] = _start(out["start"], out["timezone"], problems)
    return out, _policy(manifest.get("policy", {}) or {}, problems)


def _timezone(tz: Any, problems: list[Problem]) -> Any:
    """`tz` if it names a time zone, else None with a problem."""
    if tz is None:
        return None
    try:
        pd.Timestamp("2000-01-01").tz_localize(str(tz))
    except Exception:  # pytz/zoneinfo raise various types for unknown zones
        problems.append(
            Problem(
                schema.MANIFEST_FILE,
                f"unknown timezone {tz!r} (use an IANA name such as Asia/Shanghai)",
                column="timezone",
            )
        )
        return None
    return tz


def _hours(hours: Any, problems: list[Problem]) -> Any:
    """`hours` if a whole number of hours within the horizon's range, else None with a problem.

    The range is the manifest schema's (`schema.MANIFEST_KEYS`), the one place it lives."""
    key = schema.manifest_key("hours")
    assert key.min is not None and key.max is not None  # declared with its range
    lo, hi = int(key.min), int(key.max)
    if hours is not None and (
        not isinstance(hours, int) or isinstance(hours, bool) or not lo <= hours <= hi
    ):
        problems.append(
            Problem(
                schema.MANIFEST_FILE,
                f"hours must be a whole number from {lo:,} to {hi:,}, got {hours!r}",
                column="hours",
            )
        )
        return None
    return hours


def _start(start: Any, tz: Any, problems: list[Problem]) -> pd.Timestamp | None:
    """The horizon start in the scenario's zone: on the hour, its offset the zone's."""
    file = schema.MANIFEST_FILE
    try:
        ts = pd.Timestamp(start) if not isinstance(start, pd.Timestamp) else start
    except (ValueError, TypeError):
        problems.append(Problem(file, f"start is not a valid timestamp: {start!r}", column="start"))
        return None
    if tz is None:
        return ts
    if ts.tzinfo is None:
        ts = ts.tz_localize(str(tz))
    else:
        expected = ts.tz_convert(str(tz)).strftime("%z")
        if ts.strftime("%z") != expected:
            problems.append(
                Problem(
                    file,
                    f"timezone mismatch: start offset {ts.strftime('%z')} but {tz} is at {expected} then",
                    column="start",
                )
            )
        ts = ts.tz_convert(str(tz))
    if ts.minute or ts.second or ts.microsecond:
        problems.append(Problem(file, f"start {start!s} is not on the hour", column="start"))
    return ts


def _policy(policy_raw: Any, problems: list[Problem]) -> Policy:
    """The `[policy]` table: known keys only, each a finite number within its bounds."""
    file = schema.MANIFEST_FILE
    if not isinstance(policy_raw, Mapping):
        problems.append(Problem(file, "[policy] must be a table", column="policy"))
        policy_raw = {}
    known = {k.name for k in schema.POLICY_KEYS}
    for k in policy_raw:
        if k not in known:
            problems.append(
                Problem(
                    file,
                    f"unknown policy key {k!r}; known: {', '.join(sorted(known))}",
                    column=f"policy.{k}",
                )
            )
    pvals: dict[str, Any] = {}
    for key in schema.POLICY_KEYS:
        val = policy_raw.get(key.name, key.default)
        if val is None and key.default is None:  # only keys that may be absent (a budget)
            pvals[key.name] = None
            continue
        message = _policy_value_problem(key, val)
        if message is None and key.name == "robust_green_quantile":
            message = robust_level_problem(float(val))
        if message is not None:
            problems.append(Problem(file, message, column=f"policy.{key.name}"))
            continue
        pvals[key.name] = float(val)
    return Policy(**pvals)


def robust_level_problem(level: float) -> str | None:
    """Robust mode plans for a quantile the scenario format carries, or none."""
    if any(math.isclose(level, known) for known in schema.ROBUST_LEVELS):
        return None
    known = ", ".join(f"{v:g}" for v in schema.ROBUST_LEVELS)
    return f"value {level:g} is not a green quantile robust mode can plan for ({known})"


def _policy_value_problem(key: Column, val: Any) -> str | None:
    """What is wrong with one policy value, or None."""
    if val is None:
        return "must be a number, got null"
    if isinstance(val, bool) or not isinstance(val, int | float):
        return f"must be a number, got {val!r}"
    v = float(val)
    if not math.isfinite(v):
        return "value is not finite"
    if key.min is not None and v < key.min:
        return f"negative value {v:g}: must be at least {key.min:g}"
    if key.max is not None and v > key.max:
        return f"value {v:g} out of range: must be at most {key.max:g}"
    return None


# ----------------------------------------------------------------------------- assembly
def scenario_from_tables(
    manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> Scenario:
    """Validate `manifest` and raw `tables` (by table name, cells as text or typed) into a Scenario."""
    problems: list[Problem] = []
    meta, policy = _parse_manifest(manifest, problems)
    tz, start, hours = meta.get("timezone"), meta.get("start"), meta.get("hours")
    p = _Parser(tz, start, hours)
    p.problems = problems
    for name in tables:
        if name not in schema.TABLES_BY_NAME:
            p.add(name, f"unknown table; known: {', '.join(schema.TABLES_BY_NAME)}")
    typed: dict[str, pd.DataFrame | None] = {}
    for table in schema.TABLES:
        raw = tables.get(table.name)
        if raw is None and not table.optional:
            p.add(table.file, "file missing")
        typed[table.name] = p.table(table, None if raw is None else _as_text(raw))
    if tz is None or start is None or hours is None:
        raise InputValidationError(p.problems)
    return assemble(p, meta, policy, typed)


def _as_text(raw: pd.DataFrame) -> pd.DataFrame:
    """Cells as text; missing cells (None/NaN from JSON or typed frames) become empty."""
    obj = raw.astype(object)
    return obj.where(obj.notna(), "").astype(str)


# ----------------------------------------------------------------------------- writing
def scenario_to_tables(sc: Scenario) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The manifest and typed tables of `sc`; `scenario_from_tables` of them gives `sc` back.

    Every table of the schema, with the schema's columns in its order: a column the schema
    declares and no writer fills is an error here, not a silently empty column.
    """
    iso = np.array([t.isoformat() for t in sc.timestamps], dtype=object)
    manifest: dict[str, Any] = {
        key.name: sc.start.isoformat() if key.dtype == "timestamp" else getattr(sc, key.name)
        for key in schema.MANIFEST_KEYS
        # the default currency is left out, so the fingerprints of existing scenarios stay
        if not (key.name == "currency" and sc.currency == key.default)
    }
    manifest["policy"] = {
        key.name: getattr(sc.policy, key.name)
        for key in schema.POLICY_KEYS
        if getattr(sc.policy, key.name) is not None
    }
    return manifest, {table.name: _WRITERS[table.name](sc, iso) for table in schema.TABLES}


def _cell(sc: Scenario, col: Column, value: Any) -> Any:
    """A `Scenario` field as the table's cell: lists `;`-joined, hours as timestamps,
    booleans as text, missing as empty."""
    if value is None:
        return ""
    if col.dtype == "list":
        return ";".join(value)
    if col.dtype == "timestamp":
        return sc.timestamp(value).isoformat()
    if col.dtype == "bool":
        return "true" if value else "false"
    return value


def _records(
    sc: Scenario, table: Table, objects: Iterable[Any], **special: Callable[[Any], Any]
) -> pd.DataFrame:
    """One row per object: each column the object's field of that name (as `_cell`), or
    what `special` computes for it."""
    return pd.DataFrame(
        [
            {
                col.name: special[col.name](obj)
                if col.name in special
                else _cell(sc, col, getattr(obj, col.name))
                for col in table.columns
            }
            for obj in objects
        ],
        columns=table.column_names,
    )


def _frame(table: Table, columns: Mapping[str, Any]) -> pd.DataFrame:
    """A table from its columns, in the schema's order; every column must be given."""
    if set(columns) != set(table.column_names):
        raise KeyError(f"{table.name}: columns {sorted(columns)}, schema {table.column_names}")
    return pd.DataFrame({name: columns[name] for name in table.column_names})


def _hourly(table: Table, pieces: list[dict[str, Any]]) -> pd.DataFrame:
    """An hourly table made of one block per key (an empty table if none)."""
    if not pieces:
        return pd.DataFrame(columns=table.column_names)
    return pd.concat([_frame(table, cols) for cols in pieces], ignore_index=True)


def _battery(attr: str, none: float) -> Callable[[Site], float]:
    return lambda s: getattr(s.battery, attr) if s.battery else none


def _write_sites(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    default = {c.name: c.default for c in schema.SITES.columns}
    return _records(
        sc,
        schema.SITES,
        sc.sites,
        # no position is kept as a missing number (not empty text), as it always was hashed
        lat=lambda s: s.lat,
        lon=lambda s: s.lon,
        battery_mwh=_battery("energy_mwh", 0.0),
        battery_mw=_battery("power_mw", 0.0),
        battery_efficiency=_battery("round_trip_efficiency", default["battery_efficiency"]),
        battery_initial_soc=_battery("initial_soc", default["battery_initial_soc"]),
    )


def _write_accelerators(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return _records(sc, schema.ACCELERATORS, sc.accelerators)


def _write_fleets(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        [(s, a, n) for (s, a), n in sc.fleet.items()], columns=schema.FLEETS.column_names
    )


def _write_site_series(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    table = schema.SITE_SERIES
    S, H = len(sc.sites), sc.hours
    # each value column is the `Scenario` array of the same name, [site, hour]
    values = {c: getattr(sc, c).reshape(-1) for c in table.column_names if c not in table.key}
    return _frame(
        table,
        {
            "site_id": np.repeat(np.array(sc.site_ids, dtype=object), H),
            "timestamp": np.tile(iso, S),
            **values,
        },
    )


def _write_availability(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    """Only the (site, type) pairs of the fleet not always fully available."""
    pieces = []
    for si, s in enumerate(sc.sites):
        for ai, a in enumerate(sc.accelerators):
            frac = sc.available_fraction[si, ai]
            if (s.site_id, a.accelerator) in sc.fleet and np.any(frac < 1.0):
                pieces.append(
                    {
                        "site_id": s.site_id,
                        "accelerator": a.accelerator,
                        "timestamp": iso,
                        "available_fraction": frac,
                    }
                )
    return _hourly(schema.AVAILABILITY, pieces)


def _write_latency(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        [(s, r, ms) for (s, r), ms in sc.latency_ms.items()], columns=schema.LATENCY.column_names
    )


def _write_demand_regions(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        [(r, p.name, p.lat, p.lon) for r, p in sc.region_points.items()],
        columns=schema.DEMAND_REGIONS.column_names,
    )


def _write_jobs(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return _records(sc, schema.JOBS, sc.jobs)


def _write_services(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return _records(sc, schema.SERVICES, sc.services)


def _write_service_throughput(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        [(k.service_id, a, v) for k in sc.services for a, v in k.throughput_tokens_per_s.items()],
        columns=schema.SERVICE_THROUGHPUT.column_names,
    )


def _write_service_demand(sc: Scenario, iso: np.ndarray) -> pd.DataFrame:
    """Only the (service, region) pairs with some demand."""
    pieces = []
    for ki, k in enumerate(sc.services):
        for ri, r in enumerate(sc.demand_regions):
            d = sc.demand_tokens_per_s[ki, ri]
            if np.any(d > 0):
                pieces.append(
                    {
                        "service_id": k.service_id,
                        "demand_region": r,
                        "timestamp": iso,
                        "tokens_per_s": d,
                    }
                )
    return _hourly(schema.SERVICE_DEMAND, pieces)


_WRITERS: dict[str, Callable[[Scenario, np.ndarray], pd.DataFrame]] = {
    "sites": _write_sites,
    "accelerators": _write_accelerators,
    "fleets": _write_fleets,
    "site_series": _write_site_series,
    "availability": _write_availability,
    "latency": _write_latency,
    "demand_regions": _write_demand_regions,
    "jobs": _write_jobs,
    "services": _write_services,
    "service_throughput": _write_service_throughput,
    "service_demand": _write_service_demand,
}
"""The writer of each schema table, from the `Scenario` and the horizon's timestamps."""


def write_scenario(sc: Scenario, path: str | Path) -> Path:
    """Write `sc` as a scenario directory (manifest + CSV tables)."""
    import tomli_w

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    manifest, tables = scenario_to_tables(sc)
    (root / schema.MANIFEST_FILE).write_text(tomli_w.dumps(manifest), encoding="utf-8")
    for name, df in tables.items():
        table = schema.TABLES_BY_NAME[name]
        if table.optional and df.empty:
            (root / table.file).unlink(missing_ok=True)
            continue
        df.to_csv(root / table.file, index=False, float_format="%.10g")
    return root


def fingerprint(sc: Scenario) -> str:
    """Content hash of the scenario's canonical tables: same inputs, same fingerprint."""
    manifest, tables = scenario_to_tables(sc)
    h = hashlib.sha256()
    h.update(json.dumps(manifest, sort_keys=True, default=str).encode())
    for name in sorted(tables):
        df = tables[name]
        if df.empty and not schema.TABLES_BY_NAME[name].fingerprint_when_empty:
            continue
        if len(df):
            df = df.sort_values(list(schema.TABLES_BY_NAME[name].key), kind="stable")
        h.update(name.encode())
        h.update(df.to_csv(index=False, float_format="%.9g").encode())
    return h.hexdigest()[:16]
