"""Run the check families in a fixed order (like `optimizer/model/build.py`'s module list)
and report every violation; read a bundle directory for the check.

Adding a family is one new module with `check(c)` and one line in `MODULES`. Order matters
only for what a family leaves on the checker for the ones after it: the bundle check
records the usable tables, jobs and services the devices they hold, capacity the busy
devices, power the energy, policy the requirements the totals price.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from optimizer.scenario.types import Scenario
from optimizer.validate import (
    bundle,
    capacity,
    churn,
    flexible,
    jobs,
    policy,
    power,
    robust,
    services,
    totals,
)
from optimizer.validate.names import EXTRA_TABLES, TABLE_COLUMNS
from optimizer.validate.report import CHECKS, ValidationReport, Violation
from optimizer.validate.state import Checker, PlanTables

MODULES: tuple[ModuleType, ...] = (
    bundle,  # records the usable tables and each row's hour
    jobs,  # leaves c.jobs
    flexible,  # flexible lanes: their jobs' devices count once in c.jobs.busy
    services,  # leaves c.services
    churn,  # from c.services and assignments: c.churn
    capacity,  # sums jobs' and services' devices: c.busy
    power,  # from c.busy: c.power
    policy,  # from c.power: c.policy
    totals,  # prices all of it
    robust,  # from c.power and the totals: green cases and the robustness claim
)


def validate_plan(
    scenario: Scenario, plan: PlanTables, *, rel_tol: float = 1e-6, abs_tol: float = 1e-6
) -> ValidationReport:
    """Recompute every limit and total of `plan` on `scenario`; report every violation."""
    t = time.perf_counter()
    c = Checker(scenario, plan, rel_tol, abs_tol)
    for module in MODULES:
        module.check(c)
    order = {name: i for i, name in enumerate(CHECKS)}
    violations = sorted(c.violations, key=lambda v: order.get(v.check, len(CHECKS)))
    return ValidationReport(violations, c.checked, c.recomputed, time.perf_counter() - t)


@dataclass(frozen=True)
class BundleTables:
    """A bundle directory's summary and tables as read from disk (a missing file: an empty
    table, reported by the check)."""

    summary: Any
    workloads: pd.DataFrame
    assignments: pd.DataFrame
    site_hours: pd.DataFrame
    site_hour_devices: pd.DataFrame
    service_hours: pd.DataFrame
    service_flows: pd.DataFrame
    binding: pd.DataFrame
    moves: pd.DataFrame
    actions: pd.DataFrame
    churn: pd.DataFrame
    pricing_duals: pd.DataFrame


def read_bundle(root: Path) -> BundleTables:
    """The bundle's files as the contract says to read them: summary.json as JSON, each
    CSV with only empty cells missing (a text cell "NA" stays text)."""
    tables = {}
    for name in (*TABLE_COLUMNS, *EXTRA_TABLES):
        f = root / f"{name}.csv"
        tables[name] = (
            pd.read_csv(f, keep_default_na=False, na_values=[""]) if f.is_file() else pd.DataFrame()
        )
    return BundleTables(summary=json.loads((root / "summary.json").read_text()), **tables)


def validate_bundle(scenario: Scenario, path: str | Path, **tolerances: float) -> ValidationReport:
    """Validate a bundle directory: its files must exist, then `validate_plan` on its tables."""
    root = Path(path)
    missing = [
        f
        for f in ("summary.json", *(f"{n}.csv" for n in TABLE_COLUMNS))
        if not (root / f).is_file()
    ]
    if "summary.json" in missing:
        v = Violation("bundle", "table_missing", "summary.json is missing", table="summary")
        return ValidationReport([v], dict.fromkeys(CHECKS, 0) | {"bundle": 1}, {})
    report = validate_plan(scenario, read_bundle(root), **tolerances)
    report.violations[:0] = [
        Violation("bundle", "file_missing", f"{f} is missing", table=f)
        for f in missing
        if f != "summary.json"
    ]
    return report
