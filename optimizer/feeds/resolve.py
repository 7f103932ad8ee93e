"""Choosing each series of a window from ranked providers, and writing the choice into a
scenario's tables.

For each (series, entity) the first provider, in rank order, whose newest issue known at
`as_of` covers the whole window and is at most `max_age` old is used. A provider that had
the series but missing hours or stale is skipped and the fall back said in a warning,
as is every problem a provider reported. What no provider gives keeps the scenario's own
profile (`SCENARIO_PROFILE`), so a window is always complete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from optimizer.feeds.providers import FeedRequest, ProviderResult
from optimizer.feeds.series import (
    QUANTILES,
    SERIES_BY_NAME,
    HourlySeries,
    SeriesSpec,
    entity_keys,
)
from optimizer.scenario import schema

SCENARIO_PROFILE = "scenario-profile"
"""What a series no provider gives falls back to: the scenario's own, re-stamped."""
HOUR = pd.Timedelta(hours=1)
VALUE_DECIMALS = 6


@dataclass(frozen=True)
class Resolution:
    request: FeedRequest
    max_age: pd.Timedelta
    chosen: Mapping[tuple[str, str], HourlySeries]
    warnings: tuple[str, ...]

    def provider_of(self, series: str, key: str) -> str:
        s = self.chosen.get((series, key))
        return s.provenance.provider if s is not None else SCENARIO_PROFILE

    def report(self) -> dict[str, Any]:
        """The JSON a plan summary carries: the window, which provider gave how many
        series of each kind, every chosen series' provenance, and the warnings."""
        used: dict[str, Counter[str]] = {}
        for name, keys in self.request.keys.items():
            used[name] = Counter(self.provider_of(name, k) for k in keys)
        return {
            "start": self.request.start.isoformat(),
            "hours": self.request.hours,
            "as_of": self.request.as_of.isoformat(),
            "max_age_h": self.max_age / HOUR,
            "used": {name: dict(sorted(c.items())) for name, c in used.items()},
            "series": [s.describe() for s in self.chosen.values()],
            "warnings": list(self.warnings),
        }


def resolve(
    request: FeedRequest, results: Sequence[ProviderResult], *, max_age: pd.Timedelta
) -> Resolution:
    """The series of the window, each from the first good provider (module docstring)."""
    warnings = [f"{r.provider}: {p}" for r in results for p in r.problems]
    chosen: dict[tuple[str, str], HourlySeries] = {}
    by_entity: dict[tuple[str, str, str], list[HourlySeries]] = {}
    for r in results:
        for s in r.series:
            if s.provenance.issued_at <= request.as_of:
                by_entity.setdefault((r.provider, s.series, s.key), []).append(s)
    for name, keys in request.keys.items():
        for key in keys:
            reasons: list[str] = []
            for r in results:
                issues = by_entity.get((r.provider, name, key), [])
                pick, why = _pick(issues, request, max_age)
                if pick is not None:
                    chosen[(name, key)] = pick
                    break
                if why:
                    reasons.append(f"{r.provider} {why}")
            if reasons:
                used = (
                    chosen[(name, key)].provenance.provider
                    if (name, key) in chosen
                    else (SCENARIO_PROFILE)
                )
                warnings.append(f"{name} {key}: {'; '.join(reasons)}; {used} used instead")
    return Resolution(request, max_age, chosen, tuple(warnings))


def _pick(
    issues: list[HourlySeries], request: FeedRequest, max_age: pd.Timedelta
) -> tuple[HourlySeries | None, str]:
    """The newest issue covering the window if fresh enough; else None and why not
    ("" when the provider has nothing for this entity)."""
    if not issues:
        return None, ""
    issues = sorted(issues, key=lambda s: s.provenance.issued_at, reverse=True)
    covering = [s for s in issues if s.covers(request.start, request.hours)]
    if not covering:
        s = issues[0]
        return None, (
            f"covers {s.start.isoformat()} to {s.end.isoformat()}, not the whole window "
            f"{request.start.isoformat()} + {request.hours} h"
        )
    s = covering[0]
    age = request.as_of - s.provenance.issued_at
    if age > max_age:
        return None, (
            f"is stale: issued {s.provenance.issued_at.isoformat()}, {age / HOUR:.1f} h before "
            f"{request.as_of.isoformat()} (limit {max_age / HOUR:g} h)"
        )
    return s.window(request.start, request.hours), ""


def apply(tables: Mapping[str, pd.DataFrame], resolution: Resolution) -> dict[str, pd.DataFrame]:
    """Copies of the window's tables with the chosen series written into their columns
    (text cells, as stored); rows of entities no series was chosen for are unchanged."""
    out = dict(tables)
    start = resolution.request.start
    for table in {SERIES_BY_NAME[n].table for n, _ in resolution.chosen}:
        if table not in out or out[table].empty:
            continue
        df = out[table].copy()
        ts = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
        hour = ((ts - start.tz_convert("UTC")) / HOUR).round().astype(int).to_numpy()
        key_columns = next(s.key_columns for s in SERIES_BY_NAME.values() if s.table == table)
        keys = entity_keys(df, key_columns)
        rows_of: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            rows_of.setdefault(k, []).append(i)
        for (name, key), s in resolution.chosen.items():
            spec = SERIES_BY_NAME[name]
            if spec.table != table or key not in rows_of:
                continue
            at = np.array(rows_of[key], dtype=int)
            rows = at[(hour[at] >= 0) & (hour[at] < s.hours)]
            df.loc[df.index[rows], spec.column] = _cells(s.values[hour[rows]])
            _write_quantiles(df, table, spec, s, rows, hour)
        out[table] = df
    return out


def _cells(values: np.ndarray) -> list[str]:
    return [repr(float(v)) for v in np.round(values, VALUE_DECIMALS)]


def _write_quantiles(
    df: pd.DataFrame,
    table: str,
    spec: SeriesSpec,
    s: HourlySeries,
    rows: np.ndarray,
    hour: np.ndarray,
) -> None:
    """The series' quantiles into the scenario's quantile columns where the format has
    them; a series without a quantile empties its cells (no band: the quantile is the
    central value), so an older band never sits around a new central value."""
    declared = set(schema.TABLES_BY_NAME[table].column_names)
    for q in QUANTILES:
        col = spec.quantile_column(q)
        if col not in df.columns and (col not in declared or q not in s.quantiles):
            continue
        if col not in df.columns:
            df[col] = ""
        cells = _cells(s.quantiles[q][hour[rows]]) if q in s.quantiles else [""] * len(rows)
        df.loc[df.index[rows], col] = cells
