"""Check family `bundle`: the bundle's format. summary.json carries the contract keys with
values of the right kind and was made for this scenario; every table is present with its
contract columns, finite numbers and timestamps on the horizon's hours.

The usable tables are recorded on the checker (`Checker.tables`, and the hour of each row in
`Checker.hours`) for the families that follow; an unusable table is reported once, here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from optimizer.scenario.load import fingerprint as scenario_fingerprint
from optimizer.validate.names import (
    EXTRA_TABLES,
    NUMERIC_COLUMNS,
    PLAN_STATUSES,
    SUMMARY_KEYS,
    SUMMARY_NON_NUMERIC_KEYS,
    SUMMARY_OBJECT_KEYS,
    TABLE_COLUMNS,
)
from optimizer.validate.state import Checker

CHECK = "bundle"


def check(c: Checker) -> None:
    summary = c.plan.summary if isinstance(c.plan.summary, dict) else None
    if summary is None:
        c.add(CHECK, "summary", "summary is not a JSON object", table="summary")
        summary = {}
    summary_keys(c, summary)
    status(c, summary)
    currency(c, summary)
    summary_objects(c, summary)
    summary_numbers(c, summary)
    fingerprint(c, summary)
    hours(c, summary)
    for name, cols in TABLE_COLUMNS.items():
        table(c, name, cols)
    for name in EXTRA_TABLES:  # present is enough
        c.count(CHECK, 1)
        if not isinstance(getattr(c.plan, name, None), pd.DataFrame):
            c.add(CHECK, "table_missing", f"{name}.csv is missing", table=name)


# ------------------------------------------------------------------------------ summary.json
def summary_keys(c: Checker, summary: dict[str, Any]) -> None:
    """Every contract key is there."""
    for key in SUMMARY_KEYS:
        c.count(CHECK, 1)
        if key not in summary:
            c.add(CHECK, "summary_key", f"summary.json lacks {key!r}", table="summary")


def status(c: Checker, summary: dict[str, Any]) -> None:
    """The status is one of the plan statuses."""
    status = summary.get("status")
    if "status" in summary and status not in PLAN_STATUSES:
        c.add(
            CHECK,
            "status",
            f"status {status!r} is not one of {', '.join(PLAN_STATUSES)}",
            table="summary",
            actual=status,
        )


def currency(c: Checker, summary: dict[str, Any]) -> None:
    """The plan's money is in the scenario's currency."""
    given = summary.get("currency")
    if "currency" in summary and given != c.sc.currency:
        c.add(
            CHECK,
            "currency",
            f"currency {given!r}, the scenario's money is in {c.sc.currency!r}",
            table="summary",
            expected=c.sc.currency,
            actual=given,
        )


def summary_objects(c: Checker, summary: dict[str, Any]) -> None:
    """The nested blocks are objects."""
    for key in SUMMARY_OBJECT_KEYS:
        if key in summary and not isinstance(summary[key], dict):
            c.add(
                CHECK,
                "summary_key",
                f"{key} must be an object, got {type(summary[key]).__name__}",
                table="summary",
            )


def summary_numbers(c: Checker, summary: dict[str, Any]) -> None:
    """Every other contract key holds a finite number."""
    for key in SUMMARY_KEYS:
        if key in SUMMARY_NON_NUMERIC_KEYS:
            continue
        v = summary.get(key)
        if key in summary and (
            isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
        ):
            c.add(
                CHECK, "summary_key", f"{key} must be a finite number, got {v!r}", table="summary"
            )


def fingerprint(c: Checker, summary: dict[str, Any]) -> None:
    """The plan was made for this scenario."""
    expected_fp = c.sc.fingerprint or scenario_fingerprint(c.sc)
    if "scenario_fingerprint" in summary and summary["scenario_fingerprint"] != expected_fp:
        c.add(
            CHECK,
            "fingerprint",
            f"plan was made for scenario {summary['scenario_fingerprint']!r}, not this one ({expected_fp!r})",
            table="summary",
            expected=expected_fp,
            actual=summary["scenario_fingerprint"],
        )


def hours(c: Checker, summary: dict[str, Any]) -> None:
    """The plan spans the scenario's horizon."""
    if summary.get("hours") not in (None, c.H):
        c.add(
            CHECK,
            "summary_key",
            f"hours {summary.get('hours')!r} differ from the scenario's {c.H}",
            table="summary",
        )


# ------------------------------------------------------------------------------ tables
def table(c: Checker, name: str, cols: tuple[str, ...]) -> None:
    """A contract table: present with its columns (else unusable), numbers, timestamps."""
    df = getattr(c.plan, name, None)
    c.count(CHECK, 1 + len(cols))
    if not isinstance(df, pd.DataFrame) or len(df.columns) == 0:
        c.add(CHECK, "table_missing", f"{name}.csv is missing", table=name)
        c.tables[name] = None
        return
    missing = [col for col in cols if col not in df.columns]
    for col in missing:
        c.add(CHECK, "column_missing", f"{name}.csv lacks column {col!r}", table=name)
    if missing:
        c.tables[name] = None
        return
    df = df.reset_index(drop=True)
    c.tables[name] = df
    numbers(c, name, df)
    if "timestamp" in cols:
        timestamps(c, name, df)


def numbers(c: Checker, name: str, df: pd.DataFrame) -> None:
    """The numeric columns hold finite numbers."""
    for col in NUMERIC_COLUMNS.get(name, ()):
        bad = np.flatnonzero(~np.isfinite(c.num(df, col)))
        if bad.size:
            c.add(
                CHECK,
                "not_a_number",
                f"{bad.size} row(s) of {col!r} are not finite numbers (first data row {bad[0] + 1})",
                table=name,
            )


def timestamps(c: Checker, name: str, df: pd.DataFrame) -> None:
    """Timestamps are hours of the horizon; an `hour` column, where present, agrees."""
    hours = c.parse_hours(name, df["timestamp"], "timestamp", in_horizon=True)
    c.hours[name] = np.where(np.isfinite(hours), hours, -1).astype(np.int64)
    if "hour" not in df.columns:
        return
    # plan.py adds an `hour` column; the timestamp is authoritative, cross-check it
    given = c.num(df, "hour")
    bad = np.flatnonzero(np.isfinite(hours) & (given != hours))
    if bad.size:
        c.add(
            CHECK,
            "hour_column",
            f"{bad.size} row(s) whose `hour` disagrees with their timestamp (first data row {bad[0] + 1})",
            table=name,
            hour=int(hours[bad[0]]),
        )
