"""Reading a feed document into hourly series, every problem at once and each naming the
file, row (CSV) or field (JSON), column and hour at fault. A document with any problem
yields nothing: the caller stores all of it or none.

Formats (docs/service.md, "Forecast feeds"):
- the feed JSON document: ``{"provider", "issued_at", "series": [{"series", <key fields>,
  "start", "values", "p10"?, "p90"?}]}``;
- the long CSV: ``series, site_id | service_id + demand_region, timestamp, value, issued_at``
  and optional ``provider, p10, p90`` columns, a row per entity and hour;
- the scenario format: a ``site_series.csv`` (``site_id, timestamp`` and any of the feed's
  columns, with their quantile columns such as ``green_available_p10_mw``) or
  ``service_demand.csv`` table, with the issue time given beside it;
- the period-forecast JSON of a carbon-intensity API, ``{"data": [{"from", "to",
  "intensity": {"forecast"}}]}`` (and ``"price"`` in place of ``"intensity"`` for prices),
  periods of any length averaged to hours. The shape is the GB Carbon Intensity API's
  (api.carbonintensity.org.uk; https://carbon-intensity.github.io/api-definitions/, shape
  as in https://schemas.apis.io/schemas/carbon-intensity/intensity-period/): half-hour
  periods, `forecast` in gCO2/kWh (numerically kg/MWh), `actual` null ahead of time.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.feeds.series import (
    QUANTILES,
    SERIES_BY_COLUMN,
    SERIES_BY_NAME,
    HourlySeries,
    Provenance,
    SeriesSpec,
)
from optimizer.scenario import InputValidationError, Problem, schema

HOUR = pd.Timedelta(hours=1)
PERIOD_FIELDS: Mapping[str, str] = {"grid_carbon": "intensity", "grid_price": "price"}
"""The object holding a period's forecast in the period-forecast JSON, by series."""
LONG_CSV_REQUIRED = ("series", "timestamp", "value", "issued_at")


class FeedError(InputValidationError):
    """A feed document with problems (each a `Problem`: file, row, column, hour)."""


@dataclass
class _Points:
    """One entity's points of one series while a document is read."""

    spec: SeriesSpec
    key: str
    provenance: Provenance
    where: list[tuple[int | None, str]] = field(default_factory=list)  # (row, field) per point
    stamps: list[pd.Timestamp] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    quantiles: dict[str, list[float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- cells
def _time(
    raw: Any, problems: list[Problem], file: str, *, row: int | None, column: str
) -> pd.Timestamp | None:
    """A timezone-aware timestamp, or None with a problem."""
    try:
        ts = pd.Timestamp(str(raw).strip())
    except (ValueError, TypeError):
        problems.append(Problem(file, f"{raw!r} is not an ISO 8601 time", row=row, column=column))
        return None
    if pd.isna(ts) or ts.tzinfo is None:
        problems.append(Problem(file, f"{raw!r} needs a UTC offset", row=row, column=column))
        return None
    return ts


def _number(
    raw: Any,
    spec: SeriesSpec,
    problems: list[Problem],
    file: str,
    *,
    row: int | None,
    column: str,
    hour: pd.Timestamp | None,
) -> float | None:
    """A finite number within the scenario column's range, or None with a problem."""
    at = hour.isoformat() if hour is not None else None
    try:
        v = float(raw) if not isinstance(raw, bool) and raw not in ("", None) else math.nan
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        problems.append(Problem(file, f"{raw!r} is not a finite number", row, column, at))
        return None
    col = spec.column_spec
    if col.min is not None and v < col.min:
        problems.append(Problem(file, f"{v} {col.unit} is below {col.min}", row, column, at))
        return None
    if col.max is not None and v > col.max:
        problems.append(Problem(file, f"{v} {col.unit} is above {col.max}", row, column, at))
        return None
    return v


# ----------------------------------------------------------------------------- assembly
def _assemble(groups: Sequence[_Points], file: str, problems: list[Problem]) -> list[HourlySeries]:
    """Series from grouped points: on the hour, hourly, no duplicate or missing hour,
    quantiles around the central value."""
    out: list[HourlySeries] = []
    for g in groups:
        if not g.stamps:
            continue
        order = np.argsort(np.array([t.value for t in g.stamps]), kind="stable")
        stamps = [g.stamps[i] for i in order]
        where = [g.where[i] for i in order]
        bad = False
        for t, (row, field_) in zip(stamps, where, strict=True):
            if t != t.floor("h"):
                col = "timestamp" if row is not None else field_
                problems.append(Problem(file, "not on the hour", row, col, t.isoformat()))
                bad = True
        for a, b, (row, field_) in zip(stamps, stamps[1:], where[1:], strict=False):
            col = "timestamp" if row is not None else field_  # a CSV row's time is its own cell
            if b == a:
                msg = f"{g.spec.name} {g.key}: this hour is given twice"
                problems.append(Problem(file, msg, row, col, b.isoformat()))
                bad = True
            elif b - a != HOUR and not bad:
                msg = f"{g.spec.name} {g.key}: gap, hours {(a + HOUR).isoformat()} to {b - HOUR} missing"
                problems.append(Problem(file, msg, row, col, (a + HOUR).isoformat()))
                bad = True
        values = np.array(g.values, dtype=float)[order]
        quantiles = {q: np.array(v, dtype=float)[order] for q, v in g.quantiles.items()}
        bad |= _check_quantiles(g, values, quantiles, stamps, where, file, problems)
        if not bad:
            out.append(HourlySeries(g.spec.name, g.key, stamps[0], values, g.provenance, quantiles))
    return out


def _check_quantiles(
    g: _Points,
    values: np.ndarray,
    quantiles: Mapping[str, np.ndarray],
    stamps: Sequence[pd.Timestamp],
    where: Sequence[tuple[int | None, str]],
    file: str,
    problems: list[Problem],
) -> bool:
    """Problems for quantiles of the wrong length or out of order (P10 <= P50 <= P90)."""
    bad = False
    for q, arr in quantiles.items():
        if len(arr) != len(values):
            problems.append(
                Problem(
                    file,
                    f"{g.spec.name} {g.key}: {q} has {len(arr)} values, the series {len(values)}",
                    where[0][0],
                    q,
                )
            )
            bad = True
    if bad:
        return True
    lo, hi = quantiles.get(schema.GREEN_LOW, values), quantiles.get(schema.GREEN_HIGH, values)
    wrong = np.flatnonzero((lo > values + 1e-9) | (values > hi + 1e-9))
    for i in wrong[:5]:
        problems.append(
            Problem(
                file,
                f"{g.spec.name} {g.key}: quantiles out of order "
                f"(p10 {lo[i]}, value {values[i]}, p90 {hi[i]})",
                where[i][0],
                where[i][1],
                stamps[i].isoformat(),
            )
        )
    return bool(len(wrong))


# ----------------------------------------------------------------------------- JSON document
def parse_json_document(
    body: bytes | str, *, file: str, default_provider: str
) -> list[HourlySeries]:
    """The feed JSON document (module docstring)."""
    problems: list[Problem] = []
    doc = _json(body, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list):
        raise FeedError(
            [Problem(file, 'must be a JSON object with a "series" list', column="series")]
        )
    provider = str(doc.get("provider") or default_provider)
    issued = _time(doc.get("issued_at"), problems, file, row=None, column="issued_at")
    groups: list[_Points] = []
    for i, item in enumerate(doc["series"]):
        g = _json_series(item, f"series[{i}]", file, provider, issued, problems)
        if g is not None:
            groups.append(g)
    out = _assemble(groups, file, problems)
    if problems:
        raise FeedError(problems)
    if not out:
        raise FeedError([Problem(file, "no series in the document", column="series")])
    return out


def _json(body: bytes | str, file: str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError([Problem(file, f"not valid JSON: {exc}")]) from None


def _json_series(
    item: Any,
    at: str,
    file: str,
    provider: str,
    issued: pd.Timestamp | None,
    problems: list[Problem],
) -> _Points | None:
    if not isinstance(item, dict):
        problems.append(Problem(file, "must be an object", column=at))
        return None
    spec = SERIES_BY_NAME.get(str(item.get("series")))
    if spec is None:
        problems.append(
            Problem(
                file,
                f"unknown series {item.get('series')!r}; one of {sorted(SERIES_BY_NAME)}",
                column=f"{at}.series",
            )
        )
        return None
    missing = [c for c in spec.key_columns if not str(item.get(c) or "").strip()]
    for c in missing:
        problems.append(Problem(file, f"{spec.name} needs {c}", column=f"{at}.{c}"))
    start = _time(item.get("start"), problems, file, row=None, column=f"{at}.start")
    values = item.get("values")
    if not isinstance(values, list) or not values:
        problems.append(Problem(file, "must be a non-empty list of numbers", column=f"{at}.values"))
        return None
    if missing or start is None or issued is None:
        return None
    g = _Points(
        spec,
        spec.key_of({c: str(item[c]).strip() for c in spec.key_columns}),
        Provenance(provider, issued, file),
    )
    for h, raw in enumerate(values):
        t = start + h * HOUR
        v = _number(raw, spec, problems, file, row=None, column=f"{at}.values[{h}]", hour=t)
        g.stamps.append(t)
        g.where.append((None, f"{at}.values[{h}]"))
        g.values.append(math.nan if v is None else v)
    for q in QUANTILES:
        if q in item:
            g.quantiles[q] = _json_quantile(item[q], spec, start, at, q, file, problems)
    return g


def _json_quantile(
    raw: Any,
    spec: SeriesSpec,
    start: pd.Timestamp,
    at: str,
    q: str,
    file: str,
    problems: list[Problem],
) -> list[float]:
    if not isinstance(raw, list):
        problems.append(Problem(file, "must be a list of numbers", column=f"{at}.{q}"))
        return []
    out = []
    for h, x in enumerate(raw):
        v = _number(
            x, spec, problems, file, row=None, column=f"{at}.{q}[{h}]", hour=start + h * HOUR
        )
        out.append(math.nan if v is None else v)
    return out


# ----------------------------------------------------------------------------- CSV
def _records(df: pd.DataFrame) -> list[dict[str, str]]:
    return [{str(k): str(v) for k, v in r.items()} for r in df.to_dict("records")]


def parse_csv_document(
    body: bytes | str,
    *,
    file: str,
    default_provider: str,
    issued_at: pd.Timestamp | None = None,
) -> list[HourlySeries]:
    """The long CSV, or a scenario-format table (which needs `issued_at`)."""
    try:
        raw = body.encode() if isinstance(body, str) else body
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FeedError([Problem(file, f"cannot be read as CSV: {exc}")]) from None
    df.columns = [str(c).strip() for c in df.columns]
    problems: list[Problem] = []
    if "series" in df.columns:
        groups = _long_csv(df, file, default_provider, problems)
    else:
        groups = _scenario_csv(df, file, default_provider, issued_at, problems)
    out = _assemble(groups, file, problems)
    if problems:
        raise FeedError(problems)
    if not out:
        raise FeedError([Problem(file, "no rows")])
    return out


def _long_csv(df: pd.DataFrame, file: str, provider: str, problems: list[Problem]) -> list[_Points]:
    for c in LONG_CSV_REQUIRED:
        if c not in df.columns:
            problems.append(Problem(file, "required column missing", column=c))
    if problems:
        return []
    groups: dict[tuple[str, str], _Points] = {}
    for i, rec in enumerate(_records(df), start=1):
        spec = SERIES_BY_NAME.get(rec["series"])
        if spec is None:
            problems.append(Problem(file, f"unknown series {rec['series']!r}", i, "series"))
            continue
        empty = [c for c in spec.key_columns if not str(rec.get(c) or "").strip()]
        for c in empty:
            problems.append(Problem(file, f"{spec.name} needs {c}", i, c))
        t = _time(rec["timestamp"], problems, file, row=i, column="timestamp")
        issued = _time(rec["issued_at"], problems, file, row=i, column="issued_at")
        if empty or t is None or issued is None:
            continue
        key = spec.key_of(rec)
        prov = Provenance(str(rec.get("provider") or provider), issued, file)
        g = groups.setdefault((spec.name, key), _Points(spec, key, prov))
        if prov != g.provenance:
            problems.append(
                Problem(
                    file,
                    f"{spec.name} {key}: one provider and issue time per "
                    f"series (first row says {g.provenance.provider} "
                    f"{g.provenance.issued_at.isoformat()})",
                    i,
                    "issued_at",
                    t.isoformat(),
                )
            )
            continue
        _add_point(g, rec, "value", i, t, file, problems, quantile_cols={q: q for q in QUANTILES})
    return list(groups.values())


def _add_point(
    g: _Points,
    rec: Mapping[str, Any],
    column: str,
    row: int,
    t: pd.Timestamp,
    file: str,
    problems: list[Problem],
    *,
    quantile_cols: Mapping[str, str],
) -> None:
    """A row's value, and its quantiles (`quantile_cols`: quantile -> column) where given."""
    v = _number(rec[column], g.spec, problems, file, row=row, column=column, hour=t)
    g.stamps.append(t)
    g.where.append((row, column))
    g.values.append(math.nan if v is None else v)
    for q, col in quantile_cols.items():
        if str(rec.get(col) or "").strip():
            x = _number(rec[col], g.spec, problems, file, row=row, column=col, hour=t)
            g.quantiles.setdefault(q, []).append(math.nan if x is None else x)


def _scenario_csv(
    df: pd.DataFrame,
    file: str,
    provider: str,
    issued_at: pd.Timestamp | None,
    problems: list[Problem],
) -> list[_Points]:
    """A site_series / service_demand table: a series per feed column present."""
    for table in ("site_series", "service_demand"):
        key = schema.TABLES_BY_NAME[table].key
        specs = [SERIES_BY_COLUMN[(table, c)] for c in df.columns if (table, c) in SERIES_BY_COLUMN]
        if set(key) <= set(df.columns) and specs:
            break
    else:
        problems.append(
            Problem(
                file,
                "neither a long feed CSV (a `series` column) nor a "
                "site_series / service_demand table with a feed column",
            )
        )
        return []
    if issued_at is None:
        problems.append(
            Problem(
                file,
                "a scenario-format table needs its issue time (issued_at) given beside it",
                column="issued_at",
            )
        )
        return []
    groups: dict[tuple[str, str], _Points] = {}
    prov = Provenance(provider, issued_at, file)
    for i, rec in enumerate(_records(df), start=1):
        t = _time(rec["timestamp"], problems, file, row=i, column="timestamp")
        if t is None:
            continue
        for spec in specs:
            k = spec.key_of(rec)
            g = groups.setdefault((spec.name, k), _Points(spec, k, prov))
            qcols = {q: c for q in QUANTILES if (c := spec.quantile_column(q)) in df.columns}
            _add_point(g, rec, spec.column, i, t, file, problems, quantile_cols=qcols)
    return list(groups.values())


# ----------------------------------------------------------------------------- periods
def parse_period_forecasts(
    body: bytes | str,
    *,
    file: str,
    series: str,
    key: str,
    provenance: Provenance,
    value_field: str = "forecast",
) -> HourlySeries:
    """The period-forecast JSON of a carbon-intensity API: ``{"data": [{"from", "to",
    <field>: {"forecast": x}}]}``, `<field>` "intensity" for carbon (gCO2/kWh = kg/MWh),
    "price" for prices (in the scenario's currency per MWh). Each hour is the
    time-weighted mean of the periods in it (a period's value is its average, as the API
    publishes); hours at either end that the periods cover only in part are dropped, one
    inside left uncovered is a problem."""
    spec = SERIES_BY_NAME[series]
    obj = PERIOD_FIELDS[series]
    doc = _json(body, file)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list) or not doc["data"]:
        raise FeedError(
            [Problem(file, 'must be an object with a non-empty "data" list', column="data")]
        )
    problems: list[Problem] = []
    periods: list[tuple[pd.Timestamp, pd.Timestamp, float, dict[str, float]]] = []
    for i, item in enumerate(doc["data"]):
        p = _period(item, f"data[{i}]", obj, value_field, spec, file, problems)
        if p is not None:
            periods.append(p)
    if problems:
        raise FeedError(problems)
    return _hourly_of_periods(periods, spec, key, provenance, file)


def _period(
    item: Any,
    at: str,
    obj: str,
    value_field: str,
    spec: SeriesSpec,
    file: str,
    problems: list[Problem],
) -> tuple[pd.Timestamp, pd.Timestamp, float, dict[str, float]] | None:
    if not isinstance(item, dict) or not isinstance(item.get(obj), dict):
        problems.append(Problem(file, f'needs "from", "to" and an "{obj}" object', column=at))
        return None
    t0 = _time(item.get("from"), problems, file, row=None, column=f"{at}.from")
    t1 = _time(item.get("to"), problems, file, row=None, column=f"{at}.to")
    if t0 is None or t1 is None:
        return None
    if t1 <= t0:
        problems.append(
            Problem(file, "period ends before it starts", None, f"{at}.to", t0.isoformat())
        )
        return None
    fields = item[obj]
    v = _number(
        fields.get(value_field),
        spec,
        problems,
        file,
        row=None,
        column=f"{at}.{obj}.{value_field}",
        hour=t0,
    )
    qs = {}
    for q in QUANTILES:
        if q in fields:
            x = _number(
                fields[q], spec, problems, file, row=None, column=f"{at}.{obj}.{q}", hour=t0
            )
            if x is not None:
                qs[q] = x
    return None if v is None else (t0, t1, v, qs)


def _hourly_of_periods(
    periods: list[tuple[pd.Timestamp, pd.Timestamp, float, dict[str, float]]],
    spec: SeriesSpec,
    key: str,
    provenance: Provenance,
    file: str,
) -> HourlySeries:
    periods.sort(key=lambda p: p[0])
    first = periods[0][0].ceil("h")
    last = periods[-1][1].floor("h")
    n = int((last - first) / HOUR)
    if n < 1:
        raise FeedError([Problem(file, "the periods cover no whole hour", column="data")])
    covered = np.zeros(n)
    sums = np.zeros(n)
    qsum: dict[str, np.ndarray] = {
        q: np.zeros(n) for q in QUANTILES if all(q in p[3] for p in periods)
    }
    for t0, t1, v, qs in periods:
        for h in range(
            max(int((t0.floor("h") - first) / HOUR), 0), min(int((t1.ceil("h") - first) / HOUR), n)
        ):
            h0 = first + h * HOUR
            overlap = (min(t1, h0 + HOUR) - max(t0, h0)) / HOUR
            if overlap > 0:
                covered[h] += overlap
                sums[h] += overlap * v
                for q in qsum:
                    qsum[q][h] += overlap * qs[q]
    gaps = np.flatnonzero(np.abs(covered - 1.0) > 1e-6)
    if len(gaps):
        problems = [
            Problem(
                file,
                f"hour covered {covered[h]:.2f} times by the periods (gap or overlap)",
                column="data",
                hour=(first + int(h) * HOUR).isoformat(),
            )
            for h in gaps[:10]
        ]
        raise FeedError(problems)
    return HourlySeries(spec.name, key, first, sums, provenance, qsum)
