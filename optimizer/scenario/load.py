"""Turn a scenario directory (or the same tables in memory) into a validated `Scenario`.

Every check runs before anything is built and every problem is collected, so a user sees
all of them at once, each with its file, row, column and hour (`InputValidationError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from optimizer.scenario import schema
from optimizer.scenario.schema import REQUIRED, Column, Table
from optimizer.scenario.types import (
    Accelerator,
    Battery,
    InputValidationError,
    Job,
    Policy,
    Problem,
    Scenario,
    Service,
    Site,
)

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_MAX_LISTED = 8  # hours listed in one "missing hours" message before summarising


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
            frac = ok & (np.abs(values - np.round(values)) > 1e-9)
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


def _rows(df: pd.DataFrame) -> Iterator[Any]:
    """A typed table's rows as named tuples (typed Any: columns are checked by the parser)."""
    return df.itertuples(index=False)


def _keyval(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


# ----------------------------------------------------------------------------- manifest
def _parse_manifest(
    manifest: Mapping[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], Policy]:
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
    tz = out.get("timezone")
    if tz is not None:
        try:
            pd.Timestamp("2000-01-01").tz_localize(str(tz))
        except Exception:  # pytz/zoneinfo raise various types for unknown zones
            problems.append(
                Problem(
                    file,
                    f"unknown timezone {tz!r} (use an IANA name such as Asia/Shanghai)",
                    column="timezone",
                )
            )
            out["timezone"] = tz = None
    hours = out.get("hours")
    if hours is not None and (
        not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 744
    ):
        problems.append(
            Problem(
                file, f"hours must be a whole number from 1 to 744, got {hours!r}", column="hours"
            )
        )
        out["hours"] = None
    start = out.get("start")
    if start is not None:
        try:
            ts = pd.Timestamp(start) if not isinstance(start, pd.Timestamp) else start
            if tz is not None:
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
                    problems.append(
                        Problem(file, f"start {start!s} is not on the hour", column="start")
                    )
            out["start"] = ts
        except (ValueError, TypeError):
            problems.append(
                Problem(file, f"start is not a valid timestamp: {start!r}", column="start")
            )
            out["start"] = None
    policy_raw = manifest.get("policy", {}) or {}
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
        if val is None:
            if key.default is not None:  # only keys that may be absent (a budget) take null
                problems.append(
                    Problem(file, "must be a number, got null", column=f"policy.{key.name}")
                )
                continue
            pvals[key.name] = None
            continue
        if isinstance(val, bool) or not isinstance(val, int | float):
            problems.append(
                Problem(file, f"must be a number, got {val!r}", column=f"policy.{key.name}")
            )
            continue
        v = float(val)
        if not math.isfinite(v):
            problems.append(Problem(file, "value is not finite", column=f"policy.{key.name}"))
            continue
        if key.min is not None and v < key.min:
            problems.append(
                Problem(
                    file,
                    f"negative value {v:g}: must be at least {key.min:g}",
                    column=f"policy.{key.name}",
                )
            )
            continue
        if key.max is not None and v > key.max:
            problems.append(
                Problem(
                    file,
                    f"value {v:g} out of range: must be at most {key.max:g}",
                    column=f"policy.{key.name}",
                )
            )
            continue
        pvals[key.name] = v
    policy = Policy(**{k: v for k, v in pvals.items()})
    return out, policy


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
    return _assemble(p, meta, policy, typed)


def _as_text(raw: pd.DataFrame) -> pd.DataFrame:
    """Cells as text; missing cells (None/NaN from JSON or typed frames) become empty."""
    obj = raw.astype(object)
    return obj.where(obj.notna(), "").astype(str)


def _assemble(
    p: _Parser, meta: dict[str, Any], policy: Policy, t: dict[str, pd.DataFrame | None]
) -> Scenario:
    tz: str = meta["timezone"]
    start: pd.Timestamp = meta["start"]
    H: int = meta["hours"]

    sites_df, acc_df = t["sites"], t["accelerators"]
    sites: list[Site] = []
    if sites_df is not None:
        for row in _rows(sites_df):
            batt = None
            if row.battery_mwh > 0 or row.battery_mw > 0:
                batt = Battery(
                    float(row.battery_mwh),
                    float(row.battery_mw),
                    float(row.battery_efficiency),
                    float(row.battery_initial_soc),
                )
            sites.append(
                Site(
                    site_id=row.site_id,
                    name=row.name or row.site_id,
                    hub=row.hub,
                    zone=row.zone,
                    residency_region=row.residency_region,
                    lat=None if pd.isna(row.lat) else float(row.lat),
                    lon=None if pd.isna(row.lon) else float(row.lon),
                    pue=float(row.pue),
                    grid_limit_mw=float(row.grid_limit_mw),
                    battery=batt,
                    min_green_share=float(row.min_green_share),
                )
            )
        if not sites:
            p.add("sites.csv", "no sites")
    accs: list[Accelerator] = []
    if acc_df is not None:
        for row in _rows(acc_df):
            accs.append(
                Accelerator(
                    row.accelerator,
                    float(row.busy_kw),
                    float(row.idle_kw),
                    float(row.relative_throughput),
                )
            )
            if row.idle_kw > row.busy_kw:
                p.add(
                    "accelerators.csv",
                    f"idle_kw {row.idle_kw:g} exceeds busy_kw {row.busy_kw:g}",
                    row=len(accs),
                    column="idle_kw",
                )
        if not accs:
            p.add("accelerators.csv", "no accelerator types")
    site_ids = {s.site_id: i for i, s in enumerate(sites)}
    acc_ids = {a.accelerator: i for i, a in enumerate(accs)}
    S, A = len(sites), len(accs)
    regions_of_sites = {s.residency_region for s in sites}

    def check_ref(
        file: str,
        df: pd.DataFrame,
        column: str,
        known: Mapping[str, int],
        what: str,
        allow_empty: bool = False,
    ) -> np.ndarray:
        vals = df[column].to_numpy(dtype=object)
        ok = np.array([(v in known) or (allow_empty and v == "") for v in vals], dtype=bool)
        for r in np.flatnonzero(~ok):
            if vals[r] == "":
                continue  # already reported as empty
            p.add(file, f"unknown {what} {vals[r]!r}", row=int(r) + 1, column=column)
        return ok

    # fleets
    fleet: dict[tuple[str, str], int] = {}
    fl = t["fleets"]
    if fl is not None:
        ok = check_ref("fleets.csv", fl, "site_id", site_ids, "site") & check_ref(
            "fleets.csv", fl, "accelerator", acc_ids, "accelerator"
        )
        for r, row in enumerate(_rows(fl)):
            if ok[r] and not pd.isna(row.devices) and row.devices >= 0:
                fleet[(row.site_id, row.accelerator)] = int(row.devices)
    installed = np.zeros((S, A), dtype=np.int64)
    for (s, a), n in fleet.items():
        installed[site_ids[s], acc_ids[a]] = n

    # hourly site series
    arrays = {
        c: np.full((S, H), np.nan)
        for c in (
            "grid_price_cny_per_mwh",
            "grid_carbon_kg_per_mwh",
            "green_available_mw",
            "green_price_cny_per_mwh",
        )
    }
    ss = t["site_series"]
    if ss is not None:
        ok = check_ref("site_series.csv", ss, "site_id", site_ids, "site")
        sidx = np.array([site_ids.get(v, -1) for v in ss["site_id"]], dtype=int)
        hrs = _grid_hours(p, "site_series.csv", ss, H)
        good = ok & (hrs >= 0)
        for c, arr in arrays.items():
            arr[sidx[good], hrs[good]] = ss[c].to_numpy(dtype=float)[good]
        present = np.zeros((S, H), dtype=bool)
        present[sidx[good], hrs[good]] = True
        for si, site in enumerate(sites):
            _report_missing_hours(
                p, "site_series.csv", f"site {site.site_id}", present[si], start, tz
            )
    # bad cells were reported while parsing; fill so later arithmetic stays finite
    for arr in arrays.values():
        np.nan_to_num(arr, copy=False, nan=0.0)

    # availability
    avail = np.ones((S, A, H))
    av = t["availability"]
    if av is not None and len(av):
        ok = check_ref("availability.csv", av, "site_id", site_ids, "site") & check_ref(
            "availability.csv", av, "accelerator", acc_ids, "accelerator"
        )
        sidx = np.array([site_ids.get(v, -1) for v in av["site_id"]], dtype=int)
        aidx = np.array([acc_ids.get(v, -1) for v in av["accelerator"]], dtype=int)
        hrs = _grid_hours(p, "availability.csv", av, H)
        good = ok & (hrs >= 0)
        vals = av["available_fraction"].to_numpy(dtype=float)
        avail[sidx[good], aidx[good], hrs[good]] = np.nan_to_num(vals[good], nan=1.0)
        present = np.zeros((S, A, H), dtype=bool)
        present[sidx[good], aidx[good], hrs[good]] = True
        for si, ai in {(int(a), int(b)) for a, b in zip(sidx[good], aidx[good], strict=True)}:
            _report_missing_hours(
                p,
                "availability.csv",
                f"site {sites[si].site_id}, accelerator {accs[ai].accelerator}",
                present[si, ai],
                start,
                tz,
            )
            if (sites[si].site_id, accs[ai].accelerator) not in fleet:
                p.add(
                    "availability.csv",
                    f"site {sites[si].site_id} has no {accs[ai].accelerator} in fleets.csv",
                )

    # latency
    latency: dict[tuple[str, str], float] = {}
    lat = t["latency"]
    if lat is not None:
        ok = check_ref("latency.csv", lat, "site_id", site_ids, "site")
        for r, row in enumerate(_rows(lat)):
            if ok[r] and np.isfinite(row.latency_ms):
                latency[(row.site_id, row.demand_region)] = float(row.latency_ms)

    # jobs
    jobs: list[Job] = []
    jb = t["jobs"]
    biggest = {a.accelerator: int(installed[:, i].max()) if S else 0 for i, a in enumerate(accs)}
    if jb is not None:
        rel_h = p.hour_index(jb["release"])
        dl_h = p.hour_index(jb["deadline"])
        for r, row in enumerate(_rows(jb)):
            rn = r + 1
            f = "jobs.csv"
            if row.kind not in schema.JOB_KINDS:
                p.add(
                    f,
                    f"unknown kind {row.kind!r}; use one of {', '.join(schema.JOB_KINDS)}",
                    row=rn,
                    column="kind",
                )
            for a in row.accelerators:
                if a not in acc_ids:
                    p.add(f, f"unknown accelerator {a!r}", row=rn, column="accelerators")
            if not row.accelerators:
                p.add(f, "no accelerator type given", row=rn, column="accelerators")
            for col in ("data_origin_site", "current_site"):
                v = getattr(row, col)
                if v and v not in site_ids:
                    p.add(f, f"unknown site {v!r}", row=rn, column=col)
            for reg in row.allowed_regions:
                if reg not in regions_of_sites:
                    p.add(
                        f,
                        f"allowed region {reg!r} matches no site's residency_region",
                        row=rn,
                        column="allowed_regions",
                    )
            gang = row.gang
            known_accs = [a for a in row.accelerators if a in acc_ids]
            if known_accs and not pd.isna(gang) and gang > max(biggest[a] for a in known_accs):
                best = max(known_accs, key=lambda a: biggest[a])
                p.add(
                    f,
                    f"gang of {int(gang)} devices is larger than any site's fleet of {', '.join(known_accs)} (largest: {biggest[best]} {best})",
                    row=rn,
                    column="gang",
                )
            release = 0.0 if np.isnan(rel_h[r]) else float(rel_h[r])
            deadline = dl_h[r]
            if np.isnan(deadline):
                continue  # reported by the parser
            if deadline <= release:
                p.add(
                    f,
                    f"deadline {p.iso(row.deadline)} is not after release {p.iso(row.release) or p.iso(start)}",
                    row=rn,
                    column="deadline",
                )
                continue
            if deadline <= 0:
                p.add(
                    f,
                    f"deadline {p.iso(row.deadline)} is before the horizon start {start.isoformat()}",
                    row=rn,
                    column="deadline",
                )
                continue
            if release >= H:
                p.add(
                    f,
                    f"release {p.iso(row.release)} is at or after the horizon end",
                    row=rn,
                    column="release",
                )
                continue
            if any(pd.isna(v) for v in (row.gang, row.work_device_hours)):
                continue
            jobs.append(
                Job(
                    job_id=row.job_id,
                    kind=row.kind,
                    accelerators=tuple(row.accelerators),
                    gang=int(row.gang),
                    work_device_hours=float(row.work_device_hours),
                    release=max(0, math.ceil(release - 1e-9)),
                    deadline=math.floor(deadline + 1e-9),
                    preemptible=bool(row.preemptible),
                    allowed_regions=tuple(row.allowed_regions),
                    data_origin_site=row.data_origin_site or None,
                    data_gb=float(row.data_gb),
                    current_site=row.current_site or None,
                    lost_hours_on_move=float(row.lost_hours_on_move),
                    priority=float(row.priority),
                    unplaced_penalty_cny=None
                    if pd.isna(row.unplaced_penalty_cny)
                    else float(row.unplaced_penalty_cny),
                )
            )
            if jobs[-1].deadline <= jobs[-1].release:
                p.add(
                    f,
                    "release and deadline round to the same hour: no whole hour to run in",
                    row=rn,
                    column="deadline",
                )

    # services, throughput, demand
    sv, tp, dm = t["services"], t["service_throughput"], t["service_demand"]
    svc_ids: dict[str, int] = {}
    throughput: dict[str, dict[str, float]] = {}
    if sv is not None:
        svc_ids = {v: i for i, v in enumerate(sv["service_id"])}
    if tp is not None:
        ok = check_ref("service_throughput.csv", tp, "service_id", svc_ids, "service") & check_ref(
            "service_throughput.csv", tp, "accelerator", acc_ids, "accelerator"
        )
        for r, row in enumerate(_rows(tp)):
            if ok[r] and np.isfinite(row.tokens_per_s_per_device):
                throughput.setdefault(row.service_id, {})[row.accelerator] = float(
                    row.tokens_per_s_per_device
                )
    services: list[Service] = []
    if sv is not None:
        for r, row in enumerate(_rows(sv)):
            if row.service_id not in throughput and tp is not None:
                p.add(
                    "services.csv",
                    f"service {row.service_id!r} has no rows in service_throughput.csv",
                    row=r + 1,
                    column="service_id",
                )
            services.append(
                Service(
                    service_id=row.service_id,
                    latency_limit_ms=float(row.latency_limit_ms),
                    throughput_tokens_per_s=MappingProxyType(
                        dict(throughput.get(row.service_id, {}))
                    ),
                    unmet_penalty_cny_per_mtoken=None
                    if pd.isna(row.unmet_penalty_cny_per_mtoken)
                    else float(row.unmet_penalty_cny_per_mtoken),
                )
            )
    latency_regions = {r for (_, r) in latency}
    demand_regions: list[str] = []
    demand = np.zeros((len(services), 0, H))
    if dm is not None:
        ok = check_ref("service_demand.csv", dm, "service_id", svc_ids, "service")
        regs = dm["demand_region"].to_numpy(dtype=object)
        for ri in np.flatnonzero(ok):
            if regs[ri] and regs[ri] not in latency_regions:
                p.add(
                    "service_demand.csv",
                    f"demand region {regs[ri]!r} has no entry in latency.csv",
                    row=int(ri) + 1,
                    column="demand_region",
                )
        demand_regions = sorted({v for v in regs if v})
        reg_ids = {v: i for i, v in enumerate(demand_regions)}
        demand = np.zeros((len(services), len(demand_regions), H))
        kidx = np.array([svc_ids.get(v, -1) for v in dm["service_id"]], dtype=int)
        ridx = np.array([reg_ids.get(v, -1) for v in regs], dtype=int)
        hrs = _grid_hours(p, "service_demand.csv", dm, H)
        good = ok & (hrs >= 0) & (ridx >= 0)
        demand[kidx[good], ridx[good], hrs[good]] = np.nan_to_num(
            dm["tokens_per_s"].to_numpy(dtype=float)[good], nan=0.0
        )
        present = np.zeros(demand.shape, dtype=bool)
        present[kidx[good], ridx[good], hrs[good]] = True
        for ki, rj in sorted(
            {(int(a), int(b)) for a, b in zip(kidx[good], ridx[good], strict=True)}
        ):
            _report_missing_hours(
                p,
                "service_demand.csv",
                f"service {services[ki].service_id}, region {demand_regions[rj]}",
                present[ki, rj],
                start,
                tz,
            )

    # the idle load of available devices is fixed; if the grid and green supply cannot carry
    # it, no plan exists at all, so say where
    if S and A and not p.problems:
        cap = np.floor(installed[:, :, None] * avail + 1e-9)
        idle_mw = np.einsum("sah,a->sh", cap, np.array([a.idle_kw for a in accs])) / 1000.0
        facility_idle = idle_mw * np.array([s.pue for s in sites])[:, None]
        supply = np.array([s.grid_limit_mw for s in sites])[:, None] + arrays["green_available_mw"]
        for si, h in zip(*np.nonzero(facility_idle > supply + 1e-9), strict=True):
            p.add(
                "sites.csv",
                f"site {sites[si].site_id}: the idle load of its available devices ({facility_idle[si, h]:.3f} MW facility) exceeds grid limit + green supply ({supply[si, h]:.3f} MW)",
                column="grid_limit_mw",
                hour=(start + pd.Timedelta(hours=int(h))).isoformat(),
            )

    if p.problems:
        raise InputValidationError(p.problems)

    sc = Scenario(
        name=str(meta["name"]),
        timezone=tz,
        start=start,
        hours=H,
        policy=policy,
        sites=tuple(sites),
        accelerators=tuple(accs),
        fleet=MappingProxyType(fleet),
        grid_price_cny_per_mwh=arrays["grid_price_cny_per_mwh"],
        grid_carbon_kg_per_mwh=arrays["grid_carbon_kg_per_mwh"],
        green_available_mw=arrays["green_available_mw"],
        green_price_cny_per_mwh=arrays["green_price_cny_per_mwh"],
        available_fraction=avail,
        latency_ms=MappingProxyType(latency),
        demand_regions=tuple(demand_regions),
        jobs=tuple(jobs),
        services=tuple(services),
        demand_tokens_per_s=demand,
        description=str(meta.get("description") or ""),
    )
    return sc


def _grid_hours(p: _Parser, file: str, df: pd.DataFrame, H: int) -> np.ndarray:
    """Hour index of each row's timestamp; -1 (and a problem) if off the grid or outside the horizon."""
    h = p.hour_index(df["timestamp"])
    out = np.full(len(df), -1, dtype=int)
    ok = np.isfinite(h)
    off_grid = ok & (np.abs(h - np.round(h)) > 1e-9)
    for r in np.flatnonzero(off_grid):
        p.add(
            file,
            "timestamp is not on the hour",
            row=int(r) + 1,
            column="timestamp",
            hour=p.iso(df["timestamp"].iloc[r]),
        )
    hr = np.round(np.where(ok, h, -1)).astype(int)
    outside = ok & ~off_grid & ((hr < 0) | (hr >= H))
    for r in np.flatnonzero(outside):
        p.add(
            file,
            f"hour outside the horizon ({H} h from {p.iso(p.start)})",
            row=int(r) + 1,
            column="timestamp",
            hour=p.iso(df["timestamp"].iloc[r]),
        )
    good = ok & ~off_grid & ~outside
    out[good] = hr[good]
    return out


def _report_missing_hours(
    p: _Parser, file: str, what: str, present: np.ndarray, start: pd.Timestamp, tz: str
) -> None:
    missing = np.flatnonzero(~present)
    if missing.size == 0:
        return
    stamps = [
        (start + pd.Timedelta(hours=int(h))).tz_convert(tz).isoformat()
        for h in missing[:_MAX_LISTED]
    ]
    more = f" and {missing.size - _MAX_LISTED} more" if missing.size > _MAX_LISTED else ""
    if missing.size == 1:
        p.add(file, f"{what}: missing hour", hour=stamps[0])
    else:
        p.add(
            file, f"{what}: {missing.size} missing hours: {', '.join(stamps)}{more}", hour=stamps[0]
        )


# ----------------------------------------------------------------------------- writing
def scenario_to_tables(sc: Scenario) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The manifest and typed tables of `sc`; `scenario_from_tables` of them gives `sc` back."""
    ts = sc.timestamps
    iso = np.array([t.isoformat() for t in ts], dtype=object)
    manifest: dict[str, Any] = {
        "name": sc.name,
        "timezone": sc.timezone,
        "start": sc.start.isoformat(),
        "hours": sc.hours,
        "description": sc.description,
        "policy": {k: v for k, v in sc.policy.__dict__.items() if v is not None},
    }
    sites = pd.DataFrame(
        [
            {
                "site_id": s.site_id,
                "name": s.name,
                "hub": s.hub,
                "zone": s.zone,
                "residency_region": s.residency_region,
                "lat": s.lat,
                "lon": s.lon,
                "pue": s.pue,
                "grid_limit_mw": s.grid_limit_mw,
                "battery_mwh": s.battery.energy_mwh if s.battery else 0.0,
                "battery_mw": s.battery.power_mw if s.battery else 0.0,
                "battery_efficiency": s.battery.round_trip_efficiency if s.battery else 0.9,
                "battery_initial_soc": s.battery.initial_soc if s.battery else 0.5,
                "min_green_share": s.min_green_share,
            }
            for s in sc.sites
        ],
        columns=schema.SITES.column_names,
    )
    accelerators = pd.DataFrame(
        [a.__dict__ for a in sc.accelerators], columns=schema.ACCELERATORS.column_names
    )
    fleets = pd.DataFrame(
        [(s, a, n) for (s, a), n in sc.fleet.items()], columns=schema.FLEETS.column_names
    )
    S, H = len(sc.sites), sc.hours
    series = pd.DataFrame(
        {
            "site_id": np.repeat(np.array(sc.site_ids, dtype=object), H),
            "timestamp": np.tile(iso, S),
            "grid_price_cny_per_mwh": sc.grid_price_cny_per_mwh.reshape(-1),
            "grid_carbon_kg_per_mwh": sc.grid_carbon_kg_per_mwh.reshape(-1),
            "green_available_mw": sc.green_available_mw.reshape(-1),
            "green_price_cny_per_mwh": sc.green_price_cny_per_mwh.reshape(-1),
        }
    )
    av_rows = []
    for si, s in enumerate(sc.sites):
        for ai, a in enumerate(sc.accelerators):
            frac = sc.available_fraction[si, ai]
            if (s.site_id, a.accelerator) in sc.fleet and np.any(frac < 1.0):
                av_rows.append(
                    pd.DataFrame(
                        {
                            "site_id": s.site_id,
                            "accelerator": a.accelerator,
                            "timestamp": iso,
                            "available_fraction": frac,
                        }
                    )
                )
    availability = (
        pd.concat(av_rows, ignore_index=True)
        if av_rows
        else pd.DataFrame(columns=schema.AVAILABILITY.column_names)
    )
    latency = pd.DataFrame(
        [(s, r, ms) for (s, r), ms in sc.latency_ms.items()], columns=schema.LATENCY.column_names
    )
    jobs = pd.DataFrame(
        [
            {
                "job_id": j.job_id,
                "kind": j.kind,
                "accelerators": ";".join(j.accelerators),
                "gang": j.gang,
                "work_device_hours": j.work_device_hours,
                "release": sc.timestamp(j.release).isoformat(),
                "deadline": sc.timestamp(j.deadline).isoformat(),
                "preemptible": "true" if j.preemptible else "false",
                "allowed_regions": ";".join(j.allowed_regions),
                "data_origin_site": j.data_origin_site or "",
                "data_gb": j.data_gb,
                "current_site": j.current_site or "",
                "lost_hours_on_move": j.lost_hours_on_move,
                "priority": j.priority,
                "unplaced_penalty_cny": ""
                if j.unplaced_penalty_cny is None
                else j.unplaced_penalty_cny,
            }
            for j in sc.jobs
        ],
        columns=schema.JOBS.column_names,
    )
    services = pd.DataFrame(
        [
            {
                "service_id": k.service_id,
                "latency_limit_ms": k.latency_limit_ms,
                "unmet_penalty_cny_per_mtoken": ""
                if k.unmet_penalty_cny_per_mtoken is None
                else k.unmet_penalty_cny_per_mtoken,
            }
            for k in sc.services
        ],
        columns=schema.SERVICES.column_names,
    )
    throughput = pd.DataFrame(
        [(k.service_id, a, v) for k in sc.services for a, v in k.throughput_tokens_per_s.items()],
        columns=schema.SERVICE_THROUGHPUT.column_names,
    )
    dem_rows = []
    for ki, k in enumerate(sc.services):
        for ri, r in enumerate(sc.demand_regions):
            d = sc.demand_tokens_per_s[ki, ri]
            if np.any(d > 0):
                dem_rows.append(
                    pd.DataFrame(
                        {
                            "service_id": k.service_id,
                            "demand_region": r,
                            "timestamp": iso,
                            "tokens_per_s": d,
                        }
                    )
                )
    demand = (
        pd.concat(dem_rows, ignore_index=True)
        if dem_rows
        else pd.DataFrame(columns=schema.SERVICE_DEMAND.column_names)
    )
    tables = {
        "sites": sites,
        "accelerators": accelerators,
        "fleets": fleets,
        "site_series": series,
        "availability": availability,
        "latency": latency,
        "jobs": jobs,
        "services": services,
        "service_throughput": throughput,
        "service_demand": demand,
    }
    return manifest, tables


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
        if len(df):
            df = df.sort_values(list(schema.TABLES_BY_NAME[name].key), kind="stable")
        h.update(name.encode())
        h.update(df.to_csv(index=False, float_format="%.9g").encode())
    return h.hexdigest()[:16]
