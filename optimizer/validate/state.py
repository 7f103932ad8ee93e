"""The state every check family shares: the `Checker` of one validation run (the scenario's
indices, the tolerances, the usable tables, what each family found) and the helpers that
read bundle cells, whichever way a CSV round trip typed them."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from optimizer.scenario.types import Job, Scenario
from optimizer.validate.report import CHECKS, Violation

WHOLE_TOL = 1e-9  # slack when rounding a float to whole hours or devices

_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


class PlanTables(Protocol):
    """What the validator reads of a plan: its summary and its bundle tables (an
    `optimizer.plan.Plan`, or the tables of a bundle read back from disk)."""

    @property
    def summary(self) -> Any: ...

    @property
    def workloads(self) -> pd.DataFrame: ...

    @property
    def assignments(self) -> pd.DataFrame: ...

    @property
    def site_hours(self) -> pd.DataFrame: ...

    @property
    def site_hour_devices(self) -> pd.DataFrame: ...

    @property
    def service_hours(self) -> pd.DataFrame: ...

    @property
    def service_flows(self) -> pd.DataFrame: ...

    @property
    def binding(self) -> pd.DataFrame: ...

    @property
    def moves(self) -> pd.DataFrame: ...


# ------------------------------------------------------------------------------ cells
def cell_text(x: Any) -> str:
    """A cell as text: missing is empty; CSV round trips may turn "7" into 7 or 7.0."""
    if x is None:
        return ""
    if isinstance(x, float):
        if math.isnan(x):
            return ""
        if x.is_integer():
            return str(int(x))
    return str(x).strip()


def cell_bool(x: Any) -> bool | None:
    """A cell as a boolean; None if it is not one."""
    if isinstance(x, bool | np.bool_):
        return bool(x)
    s = cell_text(x).lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    return None


def cell_list(x: Any) -> list[str]:
    """A `;`-separated cell as its items."""
    return [p.strip() for p in cell_text(x).split(";") if p.strip()]


def finite_number(x: Any) -> float | None:
    """A JSON value as a float if it is a finite number (not a bool), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def fmt(x: Any) -> str:
    """A value for a message: floats to 6 significant digits."""
    if isinstance(x, float | np.floating):
        return f"{float(x):.6g}"
    return str(x)


def ceil_hours(x: float) -> int:
    """Whole hours to hold `x` hours of work, at least one."""
    return max(1, math.ceil(x - WHOLE_TOL))


def work_in_horizon(c: Checker, job: Job) -> float:
    """Rolling horizon: the pro-rata share W x (H - release) / (deadline - release)."""
    if job.deadline <= c.H:
        return job.work_device_hours
    return job.work_device_hours * (c.H - job.release) / (job.deadline - job.release)


# ------------------------------------------------------------------------------ findings
@dataclass
class JobFindings:
    """What the job check derives and later checks reuse."""

    placed: np.ndarray  # bool per scenario job: it has run hours
    site: np.ndarray  # site position per job, -1 if none
    acc: np.ndarray  # accelerator position per job, -1 if none
    moved: np.ndarray
    migration_cny: np.ndarray
    transfer_cny: np.ndarray
    work_in_horizon: np.ndarray
    busy: np.ndarray  # [site, accelerator, hour] devices held by jobs
    row_of: dict[str, int] = field(default_factory=dict)  # job id -> workloads row


@dataclass
class ServiceFindings:
    """What the service check derives: the flows, devices and unmet demand as planned."""

    flows: np.ndarray  # [service, region, site, hour] tokens/s
    devices: np.ndarray  # [service, site, accelerator, hour]
    unmet: np.ndarray  # [service, region, hour] tokens/s


@dataclass
class PowerFindings:
    """What the power check derives: recomputed IT and facility power, planned supply."""

    it_mw: np.ndarray  # [site, hour], recomputed
    facility_mw: np.ndarray  # recomputed
    grid_mw: np.ndarray  # as planned (site_hours.csv)
    green_mw: np.ndarray
    ok: bool  # site_hours.csv usable
    busy_known: bool = True  # assignments.csv usable, so IT and facility power are recomputed


# ------------------------------------------------------------------------------ checker
@dataclass
class ChurnFindings:
    """Churn recounted by the churn check, for the totals (issue 12)."""

    replica_starts: int = 0
    replica_stops: int = 0
    pauses: int = 0
    replica_start_cost: float = 0.0
    pause_cost: float = 0.0


class Checker:
    """State of one validation run: the scenario's indices, tolerances and findings.

    The families run in the order of `run.MODULES`; each records its violations here and
    leaves what later families reuse in its attribute (`jobs`, `services`, `busy`, `power`,
    `policy`).
    """

    jobs: JobFindings
    services: ServiceFindings
    busy: np.ndarray  # [site, accelerator, hour] devices busy (jobs' gangs + inference)
    power: PowerFindings
    policy: dict[str, Any]  # the policy requirements recomputed (green shares, carbon excess)
    churn: ChurnFindings  # replica starts, pauses and their costs

    def __init__(self, sc: Scenario, plan: PlanTables, rel_tol: float, abs_tol: float):
        self.sc = sc
        self.plan = plan
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        self.violations: list[Violation] = []
        self.checked: dict[str, int] = dict.fromkeys(CHECKS, 0)
        self.recomputed: dict[str, Any] = {}
        self.H = sc.hours
        self.site_ids = [s.site_id for s in sc.sites]
        self.site_pos = {s: i for i, s in enumerate(self.site_ids)}
        self.acc_names = [a.accelerator for a in sc.accelerators]
        self.acc_pos = {a: i for i, a in enumerate(self.acc_names)}
        self.regions = list(sc.demand_regions)
        self.region_pos = {r: i for i, r in enumerate(self.regions)}
        self.job_pos = {j.job_id: i for i, j in enumerate(sc.jobs)}
        self.svc_pos = {k.service_id: i for i, k in enumerate(sc.services)}
        S, A = len(sc.sites), len(sc.accelerators)
        self.installed = np.zeros((S, A), dtype=np.int64)
        for (s, a), n in sc.fleet.items():
            if s in self.site_pos and a in self.acc_pos:
                self.installed[self.site_pos[s], self.acc_pos[a]] = int(n)
        frac = np.asarray(sc.available_fraction, dtype=float)
        self.capacity = np.floor(self.installed[:, :, None] * frac + WHOLE_TOL).astype(np.int64)
        self.busy_kw = np.array([a.busy_kw for a in sc.accelerators], dtype=float)
        self.idle_kw = np.array([a.idle_kw for a in sc.accelerators], dtype=float)
        self.start_utc = pd.Timestamp(sc.start).tz_convert("UTC")
        self.iso = [
            (pd.Timestamp(sc.start) + pd.Timedelta(hours=h)).tz_convert(sc.timezone).isoformat()
            for h in range(self.H)
        ]
        self.tables: dict[str, pd.DataFrame | None] = {}
        self.hours: dict[str, np.ndarray] = {}  # table -> hour of each row (-1: unusable)

    # --- recording ------------------------------------------------------------------
    def add(self, check: str, rule: str, message: str, **where: Any) -> None:
        h = where.get("hour")
        if h is not None:
            h = int(h)
            where["hour"] = h
            if "timestamp" not in where and 0 <= h < self.H:
                where["timestamp"] = self.iso[h]
        for k in ("expected", "actual"):
            if isinstance(where.get(k), np.generic):
                where[k] = where[k].item()
        self.violations.append(Violation(check, rule, message, **where))

    def count(self, check: str, n: int) -> None:
        self.checked[check] += int(n)

    def summary(self) -> dict[str, Any]:
        """summary.json as an object (empty if it is not one: the bundle check says so)."""
        return self.plan.summary if isinstance(self.plan.summary, dict) else {}

    # --- tolerances -----------------------------------------------------------------
    def close(self, a: Any, b: Any) -> np.ndarray:
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        return np.abs(a - b) <= self.abs_tol + self.rel_tol * np.maximum(np.abs(a), np.abs(b))

    def close_scaled(self, a: float, b: float, scale: float) -> bool:
        """a == b within tolerance relative to `scale` (the size of the quantity compared)."""
        return abs(a - b) <= self.abs_tol + self.rel_tol * max(abs(a), abs(b), abs(scale))

    def le(self, a: Any, b: Any) -> np.ndarray:
        """a <= b within tolerance (NaN fails)."""
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        return a <= b + self.abs_tol + self.rel_tol * np.abs(b)

    # --- table access ---------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame | None:
        """The table if usable (present with its contract columns), else None."""
        return self.tables.get(name)

    def usable(self, *names: str) -> bool:
        return all(self.tables.get(n) is not None for n in names)

    def text(self, df: pd.DataFrame, col: str) -> np.ndarray:
        if col not in df.columns:
            return np.full(len(df), "", dtype=object)
        return np.array([cell_text(x) for x in df[col].to_numpy(dtype=object)], dtype=object)

    @staticmethod
    def num(df: pd.DataFrame, col: str) -> np.ndarray:
        if col not in df.columns:
            return np.full(len(df), np.nan)
        return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)

    def row_hours(self, table: str, df: pd.DataFrame) -> np.ndarray:
        """The hour of each row of a timestamped table (-1 where unusable)."""
        return self.hours.get(table, np.full(len(df), -1, np.int64))

    def parse_hours(
        self, table: str, values: Iterable[Any], column: str, *, in_horizon: bool
    ) -> np.ndarray:
        """Hours since the horizon start of ISO timestamps; NaN (and a violation) if unusable."""
        vals = [cell_text(v) for v in values]
        out = np.full(len(vals), np.nan)
        where: dict[str, list[int]] = {}
        for i, v in enumerate(vals):
            where.setdefault(v, []).append(i)
        for v, rows in where.items():
            h, problem = self._hour_of(v, in_horizon)
            if problem:
                self.add(
                    "bundle",
                    "timestamp",
                    f"{column} {v!r} {problem} ({len(rows)} row(s), first data row {rows[0] + 1})",
                    table=table,
                )
                continue
            out[rows] = h
        return out

    def _hour_of(self, v: str, in_horizon: bool) -> tuple[float, str]:
        if not v:
            return math.nan, "is empty"
        if not _OFFSET.search(v):
            return math.nan, "has no UTC offset (ISO 8601 with offset required)"
        try:
            ts = pd.Timestamp(v)
        except (ValueError, TypeError):
            return math.nan, "is not an ISO 8601 timestamp"
        if ts.tzinfo is None:
            return math.nan, "has no UTC offset (ISO 8601 with offset required)"
        h = (ts.tz_convert("UTC") - self.start_utc).total_seconds() / 3600.0
        if abs(h - round(h)) > WHOLE_TOL:
            return math.nan, "is not on the hour"
        h = float(round(h))
        if in_horizon and not 0 <= h < self.H:
            return math.nan, f"lies outside the horizon ({self.iso[0]} + {self.H} h)"
        return h, ""
