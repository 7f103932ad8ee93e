"""The independent validator: recompute every limit and every total of a plan from its
bundle tables and the scenario, and report every violation at once.

It shares no code with what produced the plan (not `optimizer.model`, `optimizer.rules`,
`optimizer.baselines` nor the assembly in `optimizer.plan`): the job rules documented in
`optimizer/rules.py` and the bundle contract in docs/bundle.md are re-derived here from the
`Scenario`'s raw fields. Only the NAMES (tables, columns, KPIs, statuses) come from
`optimizer/plan/contract.py`. It reads only the tables a bundle holds (as `Plan.read_bundle`
gives them back from CSV) and maps timestamps to hours from their ISO strings, so it
audits a bundle on disk and a freshly assembled `Plan` alike.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.plan import Plan, contract
from optimizer.scenario.load import fingerprint as scenario_fingerprint
from optimizer.scenario.types import Job, Scenario
from optimizer.units import KG_PER_T, KW_PER_MW, SECONDS_PER_HOUR, TOKENS_PER_MTOKEN

WHOLE_TOL = 1e-9  # slack when rounding a float to whole hours or devices

CHECKS = ("bundle", "jobs", "services", "capacity", "power", "totals", "policy")
"""The check families, in the order they run; every `Violation.check` is one of them."""

# Names only, from the bundle contract: what the planner must write. Every value under
# these names is recomputed here from the scenario, never taken from the planner's code.
PLAN_STATUSES = contract.PLAN_STATUSES
JOB_KINDS = contract.JOB_KINDS
WORKLOAD_KINDS = contract.WORKLOAD_KINDS
JOB_STATUSES = contract.JOB_STATUSES

SUMMARY_KEYS = contract.SUMMARY_KEYS
"""summary.json keys of the contract."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: t.contract_columns for t in contract.TABLES if t.status == "contract"
}
"""Required tables and their contract columns (more columns are allowed)."""

NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: t.numeric_columns for t in contract.TABLES if t.status == "contract"
}

KPI_KEYS = contract.KPI_KEYS
"""Plan KPIs the validator recomputes (and the keys a baseline's KPI block must carry)."""

COUNT_KPIS = contract.COUNT_KPIS

_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Violation:
    """One broken limit or wrong number, and where."""

    check: str  # one of CHECKS
    rule: str  # the rule within the check, e.g. "contiguous", "latency", "grid_limit"
    message: str
    workload_id: str | None = None
    site_id: str | None = None
    accelerator: str | None = None
    hour: int | None = None
    timestamp: str | None = None
    table: str | None = None
    expected: Any = None
    actual: Any = None

    def location(self) -> str:
        parts = [
            f"{name} {value}"
            for name, value in (
                ("table", self.table),
                ("workload", self.workload_id),
                ("site", self.site_id),
                ("accelerator", self.accelerator),
                ("hour", self.timestamp or self.hour),
            )
            if value not in (None, "")
        ]
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"[{self.check}/{self.rule}] {where + ': ' if where else ''}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ValidationReport:
    violations: list[Violation]
    checked: dict[str, int]  # items each check looked at
    recomputed: dict[str, Any]  # KPIs recomputed from the tables
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_check(self, check: str) -> list[Violation]:
        return [v for v in self.violations if v.check == check]

    def rules(self) -> set[tuple[str, str]]:
        """(check, rule) of every violation."""
        return {(v.check, v.rule) for v in self.violations}

    def raise_if_failed(self) -> None:
        if self.violations:
            raise PlanValidationError(self)

    def __str__(self) -> str:
        looked = ", ".join(f"{c} {n}" for c, n in self.checked.items())
        if self.ok:
            return f"plan valid ({looked})"
        per = Counter(v.check for v in self.violations)
        head = f"{len(self.violations)} violation(s) ({', '.join(f'{c}: {n}' for c, n in per.items())}; checked {looked}):"
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])


class PlanValidationError(ValueError):
    """The plan breaks limits or misreports totals; `violations` lists every one."""

    def __init__(self, report: ValidationReport):
        self.report = report
        self.violations = list(report.violations)
        super().__init__(str(report))


# ------------------------------------------------------------------------------ helpers
def _str(x: Any) -> str:
    """A cell as text: missing is empty; CSV round trips may turn "7" into 7 or 7.0."""
    if x is None:
        return ""
    if isinstance(x, float):
        if math.isnan(x):
            return ""
        if x.is_integer():
            return str(int(x))
    return str(x).strip()


def _bool(x: Any) -> bool | None:
    if isinstance(x, bool | np.bool_):
        return bool(x)
    s = _str(x).lower()
    if s in ("true", "1", "yes"):
        return True
    if s in ("false", "0", "no"):
        return False
    return None


def _split(x: Any) -> list[str]:
    return [p.strip() for p in _str(x).split(";") if p.strip()]


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return f"{float(x):.6g}"
    return str(x)


def _ceil_hours(x: float) -> int:
    return max(1, math.ceil(x - WHOLE_TOL))


class _Checker:
    """State of one validation run: the scenario's indices, tolerances and findings."""

    def __init__(self, sc: Scenario, plan: Plan, rel_tol: float, abs_tol: float):
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
        return np.array([_str(x) for x in df[col].to_numpy(dtype=object)], dtype=object)

    @staticmethod
    def num(df: pd.DataFrame, col: str) -> np.ndarray:
        if col not in df.columns:
            return np.full(len(df), np.nan)
        return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)

    def parse_hours(
        self, table: str, values: Iterable[Any], column: str, *, in_horizon: bool
    ) -> np.ndarray:
        """Hours since the horizon start of ISO timestamps; NaN (and a violation) if unusable."""
        vals = [_str(v) for v in values]
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


# ------------------------------------------------------------------------------ checks
def _check_bundle(c: _Checker) -> None:
    sc, plan = c.sc, c.plan
    summary = plan.summary if isinstance(plan.summary, dict) else None
    if summary is None:
        c.add("bundle", "summary", "summary is not a JSON object", table="summary")
        summary = {}
    for key in SUMMARY_KEYS:
        c.count("bundle", 1)
        if key not in summary:
            c.add("bundle", "summary_key", f"summary.json lacks {key!r}", table="summary")
    status = summary.get("status")
    if "status" in summary and status not in PLAN_STATUSES:
        c.add(
            "bundle",
            "status",
            f"status {status!r} is not one of {', '.join(PLAN_STATUSES)}",
            table="summary",
            actual=status,
        )
    currency = summary.get("currency")
    if "currency" in summary and currency != sc.currency:
        c.add(
            "bundle",
            "currency",
            f"currency {currency!r}, the scenario's money is in {sc.currency!r}",
            table="summary",
            expected=sc.currency,
            actual=currency,
        )
    for key in ("baselines", "timings_s", "model_size"):
        if key in summary and not isinstance(summary[key], dict):
            c.add(
                "bundle",
                "summary_key",
                f"{key} must be an object, got {type(summary[key]).__name__}",
                table="summary",
            )
    for key in SUMMARY_KEYS:
        if key in (
            "status",
            "baselines",
            "timings_s",
            "model_size",
            "scenario_fingerprint",
            "currency",
            "bound",
            "gap",
        ):
            continue
        v = summary.get(key)
        if key in summary and (
            isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
        ):
            c.add(
                "bundle",
                "summary_key",
                f"{key} must be a finite number, got {v!r}",
                table="summary",
            )
    expected_fp = sc.fingerprint or scenario_fingerprint(sc)
    if "scenario_fingerprint" in summary and summary["scenario_fingerprint"] != expected_fp:
        c.add(
            "bundle",
            "fingerprint",
            f"plan was made for scenario {summary['scenario_fingerprint']!r}, not this one ({expected_fp!r})",
            table="summary",
            expected=expected_fp,
            actual=summary["scenario_fingerprint"],
        )
    if summary.get("hours") not in (None, c.H):
        c.add(
            "bundle",
            "summary_key",
            f"hours {summary.get('hours')!r} differ from the scenario's {c.H}",
            table="summary",
        )

    for name, cols in TABLE_COLUMNS.items():
        df = getattr(plan, name, None)
        c.count("bundle", 1 + len(cols))
        if not isinstance(df, pd.DataFrame) or len(df.columns) == 0:
            c.add("bundle", "table_missing", f"{name}.csv is missing", table=name)
            c.tables[name] = None
            continue
        missing = [col for col in cols if col not in df.columns]
        for col in missing:
            c.add("bundle", "column_missing", f"{name}.csv lacks column {col!r}", table=name)
        if missing:
            c.tables[name] = None
            continue
        df = df.reset_index(drop=True)
        c.tables[name] = df
        for col in NUMERIC_COLUMNS.get(name, ()):
            bad = np.flatnonzero(~np.isfinite(c.num(df, col)))
            if bad.size:
                c.add(
                    "bundle",
                    "not_a_number",
                    f"{bad.size} row(s) of {col!r} are not finite numbers (first data row {bad[0] + 1})",
                    table=name,
                )
        if "timestamp" in cols:
            hours = c.parse_hours(name, df["timestamp"], "timestamp", in_horizon=True)
            c.hours[name] = np.where(np.isfinite(hours), hours, -1).astype(np.int64)
            if "hour" in df.columns:
                # plan.py adds an `hour` column; the timestamp is authoritative, cross-check it
                given = c.num(df, "hour")
                bad = np.flatnonzero(np.isfinite(hours) & (given != hours))
                if bad.size:
                    c.add(
                        "bundle",
                        "hour_column",
                        f"{bad.size} row(s) whose `hour` disagrees with their timestamp (first data row {bad[0] + 1})",
                        table=name,
                        hour=int(hours[bad[0]]),
                    )
    for name in ("binding", "moves"):  # extras: present is enough
        c.count("bundle", 1)
        if not isinstance(getattr(plan, name, None), pd.DataFrame):
            c.add("bundle", "table_missing", f"{name}.csv is missing", table=name)


@dataclass
class _Jobs:
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


def work_in_horizon(c: _Checker, job: Job) -> float:
    """Rolling horizon: the pro-rata share W x (H - release) / (deadline - release)."""
    if job.deadline <= c.H:
        return job.work_device_hours
    return job.work_device_hours * (c.H - job.release) / (job.deadline - job.release)


def _migration_cny(c: _Checker, job: Job, site_id: str) -> float:
    if job.current_site is None or job.current_site == site_id:
        return 0.0
    pol = c.sc.policy
    return pol.plan_stability_weight * (
        job.data_gb * pol.transfer_price_cny_per_gb
        + job.lost_hours_on_move * job.gang * pol.lost_hour_cost_cny_per_device_hour
    )


def _transfer_cny(c: _Checker, job: Job, site_id: str) -> float:
    if job.current_site is not None or not job.data_origin_site or job.data_origin_site == site_id:
        return 0.0
    return job.data_gb * c.sc.policy.transfer_price_cny_per_gb


def _allowed_sites(c: _Checker, job: Job) -> set[str]:
    out = set()
    for s, site in enumerate(c.sc.sites):
        if job.allowed_regions and site.residency_region not in job.allowed_regions:
            continue
        if any(
            a in c.acc_pos and c.installed[s, c.acc_pos[a]] >= job.gang for a in job.accelerators
        ):
            out.add(site.site_id)
    return out


def _check_jobs(c: _Checker) -> _Jobs:
    sc = c.sc
    J, S, A, H = len(sc.jobs), len(sc.sites), len(sc.accelerators), c.H
    res = _Jobs(
        placed=np.zeros(J, bool),
        site=np.full(J, -1, np.int64),
        acc=np.full(J, -1, np.int64),
        moved=np.zeros(J, bool),
        migration_cny=np.zeros(J),
        transfer_cny=np.zeros(J),
        work_in_horizon=np.array([work_in_horizon(c, j) for j in sc.jobs], dtype=float),
        busy=np.zeros((S, A, H), dtype=np.int64),
    )
    wl, asg = c.table("workloads"), c.table("assignments")
    if asg is None:
        return res
    # assignments of jobs, by job
    a_ids = c.text(asg, "workload_id")
    a_tok = c.num(asg, "tokens_per_s")
    is_job = np.array(
        [
            w in c.job_pos and (w not in c.svc_pos or not np.isfinite(t))
            for w, t in zip(a_ids, a_tok, strict=True)
        ],
        dtype=bool,
    )
    for w in sorted({w for w in a_ids if w not in c.job_pos and w not in c.svc_pos}):
        c.add(
            "jobs",
            "unknown_workload",
            f"assignments.csv has hours of {w!r}, which is not in the scenario",
            workload_id=w,
            table="assignments",
        )
    a_site = c.text(asg, "site_id")
    a_acc = c.text(asg, "accelerator")
    a_dev = c.num(asg, "devices")
    a_hour = c.hours.get("assignments", np.full(len(asg), -1, np.int64))
    rows_of: dict[str, list[int]] = {}
    for i in np.flatnonzero(is_job).tolist():
        rows_of.setdefault(a_ids[i], []).append(i)
    tok_bad = np.flatnonzero(is_job & np.isfinite(a_tok) & (a_tok != 0))
    for i in tok_bad.tolist():
        c.add(
            "jobs",
            "tokens_per_s",
            "a job's assignment carries tokens_per_s (services only)",
            workload_id=a_ids[i],
            table="assignments",
            hour=int(a_hour[i]),
        )

    # devices the jobs hold, as reported, for the capacity check
    ok = is_job & (a_hour >= 0) & np.isfinite(a_dev)
    si = np.array([c.site_pos.get(x, -1) for x in a_site], dtype=np.int64)
    ai = np.array([c.acc_pos.get(x, -1) for x in a_acc], dtype=np.int64)
    ok &= (si >= 0) & (ai >= 0)
    np.add.at(res.busy, (si[ok], ai[ok], a_hour[ok]), np.round(a_dev[ok]).astype(np.int64))
    for jid in rows_of:
        res.placed[c.job_pos[jid]] = True
    if wl is None:
        return res

    c.count("jobs", J)
    ids = c.text(wl, "workload_id")
    kinds = c.text(wl, "kind")
    seen = Counter(ids.tolist())
    res.row_of = {wid: i for i, wid in reversed(list(enumerate(ids)))}
    for i, wid in enumerate(ids):
        if wid in c.job_pos or wid in c.svc_pos:
            if seen[wid] > 1 and res.row_of[wid] == i:
                c.add(
                    "jobs",
                    "duplicate",
                    f"appears {seen[wid]} times in workloads.csv",
                    workload_id=wid,
                    table="workloads",
                )
        else:
            c.add(
                "jobs",
                "unknown_workload",
                f"workload {wid!r} is not in the scenario",
                workload_id=wid,
                table="workloads",
            )
        if kinds[i] not in WORKLOAD_KINDS:
            c.add(
                "bundle",
                "kind",
                f"kind {kinds[i]!r} is not one of {', '.join(WORKLOAD_KINDS)}",
                workload_id=wid,
                table="workloads",
            )
    for k in sc.services:
        if seen[k.service_id] == 0:
            c.add(
                "services",
                "missing",
                "service has no row in workloads.csv",
                workload_id=k.service_id,
                table="workloads",
            )
        elif k.service_id not in c.job_pos and kinds[res.row_of[k.service_id]] != "inference":
            c.add(
                "services",
                "description",
                f"kind {kinds[res.row_of[k.service_id]]!r}, a service's kind is 'inference'",
                workload_id=k.service_id,
                table="workloads",
            )

    w_site = c.text(wl, "site_id")
    w_acc = c.text(wl, "accelerator")
    w_status = c.text(wl, "status")
    w_reason = c.text(wl, "reason")
    w_cur = c.text(wl, "current_site")
    w_allowed = c.text(wl, "allowed_sites")
    w_dev = c.num(wl, "devices")
    w_work = c.num(wl, "work_device_hours")
    w_rel = c.parse_hours("workloads", wl["release"], "release", in_horizon=False)
    w_dl = c.parse_hours("workloads", wl["deadline"], "deadline", in_horizon=False)
    has_moved = "moved" in wl.columns
    has_costs = "migration_cost" in wl.columns and "data_transfer_cost" in wl.columns
    w_mig = c.num(wl, "migration_cost")
    w_tra = c.num(wl, "data_transfer_cost")
    w_run = c.num(wl, "run_hours")
    w_win = c.num(wl, "work_in_horizon_device_hours")

    for j, job in enumerate(sc.jobs):
        jid = job.job_id
        r = res.row_of.get(jid)
        if r is None:
            c.add(
                "jobs",
                "missing",
                "job has no row in workloads.csv",
                workload_id=jid,
                table="workloads",
            )
            continue
        # the row restates the scenario's job
        if kinds[r] != job.kind:
            c.add(
                "jobs",
                "description",
                f"kind {kinds[r]!r}, scenario says {job.kind!r}",
                workload_id=jid,
                table="workloads",
            )
        if w_dev[r] != job.gang:
            c.add(
                "jobs",
                "description",
                f"devices {_fmt(w_dev[r])}, the job's gang is {job.gang}",
                workload_id=jid,
                table="workloads",
            )
        if not c.close(w_work[r], job.work_device_hours):
            c.add(
                "jobs",
                "description",
                f"work_device_hours {_fmt(w_work[r])}, scenario says {job.work_device_hours:g}",
                workload_id=jid,
                table="workloads",
            )
        if np.isfinite(w_rel[r]) and w_rel[r] != job.release:
            c.add(
                "jobs",
                "description",
                f"release is hour {_fmt(w_rel[r])}, scenario says hour {job.release}",
                workload_id=jid,
                table="workloads",
            )
        if np.isfinite(w_dl[r]) and w_dl[r] != job.deadline:
            c.add(
                "jobs",
                "description",
                f"deadline is hour {_fmt(w_dl[r])}, scenario says hour {job.deadline}",
                workload_id=jid,
                table="workloads",
            )
        if _bool(wl["preemptible"].iloc[r]) is not job.preemptible:
            c.add(
                "jobs",
                "description",
                f"preemptible {wl['preemptible'].iloc[r]!r}, scenario says {job.preemptible}",
                workload_id=jid,
                table="workloads",
            )
        if w_cur[r] != (job.current_site or ""):
            c.add(
                "jobs",
                "description",
                f"current_site {w_cur[r]!r}, scenario says {job.current_site or ''!r}",
                workload_id=jid,
                table="workloads",
            )
        allowed = _allowed_sites(c, job)
        if set(_split(w_allowed[r])) != allowed:
            c.add(
                "jobs",
                "allowed_sites",
                f"allowed_sites {w_allowed[r]!r}, but residency and fleets allow {';'.join(sorted(allowed))!r}",
                workload_id=jid,
                table="workloads",
            )

        rows = np.asarray(rows_of.get(jid, []), dtype=np.int64)
        n_hours = len({int(h) for h in a_hour[rows] if h >= 0})
        if "run_hours" in wl.columns and w_run[r] != n_hours:
            c.add(
                "jobs",
                "description",
                f"run_hours {_fmt(w_run[r])}, assignments.csv has {n_hours} h",
                workload_id=jid,
                table="workloads",
            )
        if "work_in_horizon_device_hours" in wl.columns and not c.close(
            w_win[r], res.work_in_horizon[j]
        ):
            c.add(
                "jobs",
                "description",
                f"work_in_horizon_device_hours {_fmt(w_win[r])}, the rolling-horizon share is "
                f"{res.work_in_horizon[j]:.6g}",
                workload_id=jid,
                table="workloads",
            )
        status = w_status[r]
        # a job due after the horizon that runs is on track (its in-horizon share), not done
        placed_as = "on_track" if job.deadline > c.H else "placed"
        if status not in JOB_STATUSES:
            c.add(
                "jobs",
                "status",
                f"status {status!r} is not one of {', '.join(JOB_STATUSES)}",
                workload_id=jid,
                table="workloads",
            )
        if rows.size == 0:
            if status in JOB_STATUSES and status != "unplaced":
                c.add(
                    "jobs",
                    "status",
                    f"status {status} but the job has no hours in assignments.csv",
                    workload_id=jid,
                )
            else:
                if not w_reason[r]:
                    c.add(
                        "jobs",
                        "unplaced_reason",
                        "unplaced job without a reason",
                        workload_id=jid,
                        table="workloads",
                    )
                if w_site[r]:
                    c.add(
                        "jobs",
                        "status",
                        f"unplaced job names a site {w_site[r]!r}",
                        workload_id=jid,
                        table="workloads",
                    )
                if set(_split(w_acc[r])) != set(job.accelerators):
                    c.add(
                        "jobs",
                        "description",
                        f"accelerator {w_acc[r]!r}: an unplaced job lists its acceptable types "
                        f"{';'.join(job.accelerators)!r}",
                        workload_id=jid,
                        table="workloads",
                    )
                if has_moved and _bool(wl["moved"].iloc[r]) is not False:
                    c.add("jobs", "moved", "an unplaced job is not moved", workload_id=jid)
                if has_costs and (w_mig[r] != 0 or w_tra[r] != 0):
                    c.add(
                        "jobs",
                        "migration_cost",
                        "an unplaced job has no migration or transfer cost",
                        workload_id=jid,
                    )
            continue
        res.placed[j] = True
        if status != placed_as:
            c.add(
                "jobs",
                "status",
                f"status {status!r} but the job runs {rows.size} h in assignments.csv "
                f"(status {placed_as})",
                workload_id=jid,
            )
        sites = sorted(set(a_site[rows]))
        accs = sorted(set(a_acc[rows]))
        if len(sites) > 1:
            c.add("jobs", "one_site", f"gang split over sites {', '.join(sites)}", workload_id=jid)
        if len(accs) > 1:
            c.add(
                "jobs",
                "one_accelerator",
                f"runs on several accelerator types {', '.join(accs)}",
                workload_id=jid,
            )
        site_id, acc_name = w_site[r] or sites[0], w_acc[r] or accs[0]
        if w_site[r] not in sites:
            c.add(
                "jobs",
                "placement_row",
                f"workloads.csv says site {w_site[r]!r}, assignments say {', '.join(sites)}",
                workload_id=jid,
            )
            site_id = sites[0]
        if w_acc[r] not in accs:
            c.add(
                "jobs",
                "placement_row",
                f"workloads.csv says accelerator {w_acc[r]!r}, assignments say {', '.join(accs)}",
                workload_id=jid,
            )
            acc_name = accs[0]
        s, a = c.site_pos.get(site_id), c.acc_pos.get(acc_name)
        if s is None:
            c.add(
                "jobs",
                "site",
                f"site {site_id!r} is not in the scenario",
                workload_id=jid,
                site_id=site_id,
            )
            continue
        if acc_name not in job.accelerators or a is None:
            c.add(
                "jobs",
                "accelerator",
                f"runs on {acc_name!r}; the job accepts {', '.join(job.accelerators)}",
                workload_id=jid,
                site_id=site_id,
                accelerator=acc_name,
            )
            if a is None:
                continue
        res.site[j], res.acc[j] = s, a
        site = sc.sites[s]
        if job.allowed_regions and site.residency_region not in job.allowed_regions:
            c.add(
                "jobs",
                "residency",
                f"site {site_id} is in region {site.residency_region!r}; the job may run only in {', '.join(job.allowed_regions)}",
                workload_id=jid,
                site_id=site_id,
            )
        if c.installed[s, a] < job.gang:
            c.add(
                "jobs",
                "fleet",
                f"site has {c.installed[s, a]} {acc_name} installed, the gang needs {job.gang}",
                workload_id=jid,
                site_id=site_id,
                accelerator=acc_name,
            )
        dev = a_dev[rows]
        for i in rows[dev != job.gang]:
            c.add(
                "jobs",
                "gang",
                f"holds {_fmt(a_dev[i])} devices, its gang is {job.gang}",
                workload_id=jid,
                site_id=site_id,
                hour=int(a_hour[i]),
            )
        hours_all = a_hour[rows]
        hours_all = hours_all[hours_all >= 0]
        for h, n in Counter(hours_all.tolist()).items():
            if n > 1:
                c.add("jobs", "duplicate_hour", f"hour listed {n} times", workload_id=jid, hour=h)
        hours = np.unique(hours_all)

        # the rules (docstring of optimizer/rules.py), re-derived
        end = min(job.deadline, H)
        outside = hours[(hours < job.release) | (hours >= end)]
        if outside.size:
            c.add(
                "jobs",
                "window",
                f"runs in {outside.size} hour(s) outside [release, min(deadline, horizon end)) = [{job.release}, {end})",
                workload_id=jid,
                site_id=site_id,
                hour=int(outside[0]),
            )
        tp = sc.accelerators[a].relative_throughput
        moved = job.current_site is not None and site_id != job.current_site
        res.moved[j] = moved
        stays_pinned = (not job.preemptible) and job.current_site == site_id
        if stays_pinned:
            # a running non-preemptible job that stays cannot pause: from its release until
            # done or until the horizon ends
            total = _ceil_hours(job.work_device_hours / (job.gang * tp))
            need = min(total, H - job.release)
            if job.deadline <= H and total > end - job.release:
                c.add(
                    "jobs",
                    "run_hours",
                    f"needs {total} h to finish but only {end - job.release} h remain before its deadline",
                    workload_id=jid,
                    site_id=site_id,
                )
            what = f"it stays running on {site_id}: {total} h to finish, {need} h in this horizon"
        else:
            lost = math.ceil(job.lost_hours_on_move - WHOLE_TOL) if moved else 0
            w_in = res.work_in_horizon[j]
            need = _ceil_hours(w_in / (job.gang * tp)) + lost
            what = f"{w_in:g} device-h in this horizon / ({job.gang} x {tp:g})" + (
                f" + {lost} h lost moving" if lost else ""
            )
        if hours.size != need:
            word = "too few: work not done" if hours.size < need else "more than needed"
            c.add(
                "jobs",
                "run_hours",
                f"runs {hours.size} h, needs {need} h ({what}); {word}",
                workload_id=jid,
                site_id=site_id,
                accelerator=acc_name,
                expected=need,
                actual=int(hours.size),
            )
        if not job.preemptible and hours.size:
            gaps = np.flatnonzero(np.diff(hours) > 1)
            if gaps.size:
                c.add(
                    "jobs",
                    "contiguous",
                    f"non-preemptible job pauses after hour {int(hours[gaps[0]])} ({gaps.size + 1} blocks)",
                    workload_id=jid,
                    site_id=site_id,
                    hour=int(hours[gaps[0]] + 1),
                )
            if stays_pinned and hours[0] != job.release:
                c.add(
                    "jobs",
                    "block_position",
                    f"running non-preemptible job staying on its site must go on from hour {job.release}, starts at {int(hours[0])}",
                    workload_id=jid,
                    site_id=site_id,
                    hour=int(hours[0]),
                )
            if not stays_pinned and job.deadline > H and hours[-1] != H - 1:
                c.add(
                    "jobs",
                    "block_position",
                    f"deadline beyond the horizon: its block must end at the horizon end (hour {H - 1}), ends at {int(hours[-1])}",
                    workload_id=jid,
                    site_id=site_id,
                    hour=int(hours[-1]),
                )

        # moving and data transfer
        res.migration_cny[j] = _migration_cny(c, job, site_id)
        res.transfer_cny[j] = _transfer_cny(c, job, site_id)
        if has_moved and _bool(wl["moved"].iloc[r]) is not moved:
            c.add(
                "jobs",
                "moved",
                f"moved is {wl['moved'].iloc[r]!r}, but current site {job.current_site!r} -> {site_id!r}",
                workload_id=jid,
            )
        if has_costs:
            if not c.close(w_mig[r], res.migration_cny[j]):
                c.add(
                    "jobs",
                    "migration_cost",
                    f"migration_cost {_fmt(w_mig[r])}, the policy gives {res.migration_cny[j]:.6g}",
                    workload_id=jid,
                    expected=res.migration_cny[j],
                    actual=w_mig[r],
                )
            if not c.close(w_tra[r], res.transfer_cny[j]):
                c.add(
                    "jobs",
                    "transfer_cost",
                    f"data_transfer_cost {_fmt(w_tra[r])}, the policy gives {res.transfer_cny[j]:.6g}",
                    workload_id=jid,
                    expected=res.transfer_cny[j],
                    actual=w_tra[r],
                )

    # moves.csv (an extra) lists exactly the moved jobs
    mv = getattr(c.plan, "moves", None)
    if isinstance(mv, pd.DataFrame) and "workload_id" in mv.columns:
        listed = set(c.text(mv, "workload_id"))
        moved_ids = {sc.jobs[j].job_id for j in np.flatnonzero(res.moved)}
        for jid in sorted(moved_ids - listed):
            c.add(
                "jobs",
                "moves_table",
                "moved running job missing from moves.csv",
                workload_id=jid,
                table="moves",
            )
        for jid in sorted(listed - moved_ids):
            c.add(
                "jobs",
                "moves_table",
                "moves.csv lists a job that is not moved",
                workload_id=jid,
                table="moves",
            )
    return res


@dataclass
class _Services:
    flows: np.ndarray  # [service, region, site, hour] tokens/s
    devices: np.ndarray  # [service, site, accelerator, hour]
    unmet: np.ndarray  # [service, region, hour] tokens/s


def _check_services(c: _Checker) -> _Services:
    sc = c.sc
    K, R, S, A, H = len(sc.services), len(c.regions), len(sc.sites), len(sc.accelerators), c.H
    demand = np.asarray(sc.demand_tokens_per_s, dtype=float)
    res = _Services(np.zeros((K, R, S, H)), np.zeros((K, S, A, H), dtype=np.int64), demand.copy())
    tp = np.zeros((K, A))
    for kk, svc in enumerate(sc.services):
        for a_name, v in svc.throughput_tokens_per_s.items():
            if a_name in c.acc_pos:
                tp[kk, c.acc_pos[a_name]] = v

    # flows: latency and per-region demand
    fl = c.table("service_flows")
    if fl is not None:
        k_ = c.text(fl, "service_id")
        r_ = c.text(fl, "demand_region")
        s_ = c.text(fl, "site_id")
        t_ = c.num(fl, "tokens_per_s")
        h_ = c.hours.get("service_flows", np.full(len(fl), -1, np.int64))
        lat_col = c.num(fl, "latency_ms") if "latency_ms" in fl.columns else None
        c.count("services", len(fl))
        seen: Counter[tuple[int, int, int, int]] = Counter()
        for i in range(len(fl)):
            k, r, s, h = (
                c.svc_pos.get(k_[i]),
                c.region_pos.get(r_[i]),
                c.site_pos.get(s_[i]),
                int(h_[i]),
            )
            if k is None or r is None or s is None:
                c.add(
                    "services",
                    "unknown",
                    f"flow names unknown service/region/site {k_[i]!r}/{r_[i]!r}/{s_[i]!r}",
                    table="service_flows",
                )
                continue
            if h < 0 or not np.isfinite(t_[i]):
                continue
            where = {"workload_id": k_[i], "site_id": s_[i], "hour": h}
            lat = sc.latency_ms.get((s_[i], r_[i]))
            limit = sc.services[k].latency_limit_ms
            if lat is None:
                c.add(
                    "services",
                    "latency",
                    f"serves {r_[i]} from a site with no latency entry for that region",
                    **where,
                )
            elif lat > limit:
                c.add(
                    "services",
                    "latency",
                    f"serves {r_[i]} at {lat:g} ms, beyond the service's {limit:g} ms limit",
                    expected=limit,
                    actual=lat,
                    **where,
                )
            if lat is not None and lat_col is not None and not c.close(lat_col[i], lat):
                c.add(
                    "services",
                    "latency_column",
                    f"latency_ms {_fmt(lat_col[i])}, latency.csv says {lat:g}",
                    **where,
                )
            if t_[i] < -c.abs_tol:
                c.add("services", "negative_flow", f"negative flow {t_[i]:g} tokens/s", **where)
            seen[(k, r, s, h)] += 1
            if seen[(k, r, s, h)] == 2:
                c.add("services", "duplicate", f"flow {r_[i]} listed twice", **where)
            res.flows[k, r, s, h] += t_[i]
        served_r = res.flows.sum(axis=2)  # [k, r, h]
        over = ~c.le(served_r, demand)
        for k, r, h in zip(*np.nonzero(over), strict=True):
            c.add(
                "services",
                "over_served",
                f"{served_r[k, r, h]:g} tokens/s served to {c.regions[r]}, demand is {demand[k, r, h]:g}",
                workload_id=sc.services[k].service_id,
                hour=h,
            )
        res.unmet = np.maximum(demand - served_r, 0.0)

    # devices: types, integers, throughput
    asg = c.table("assignments")
    if asg is not None:
        a_ids = c.text(asg, "workload_id")
        a_tok = c.num(asg, "tokens_per_s")
        rows = np.array(
            [
                i
                for i, (w, t) in enumerate(zip(a_ids, a_tok, strict=True))
                if w in c.svc_pos and (w not in c.job_pos or np.isfinite(t))
            ],
            dtype=np.int64,
        )
        a_site = c.text(asg, "site_id")
        a_acc = c.text(asg, "accelerator")
        a_dev = c.num(asg, "devices")
        a_hour = c.hours.get("assignments", np.full(len(asg), -1, np.int64))
        c.count("services", rows.size)
        tokens = np.zeros((K, S, H))
        seen2: Counter[tuple[int, int, int, int]] = Counter()
        for i in rows:
            k, s, a, h = (
                c.svc_pos[a_ids[i]],
                c.site_pos.get(a_site[i]),
                c.acc_pos.get(a_acc[i]),
                int(a_hour[i]),
            )
            where = {
                "workload_id": a_ids[i],
                "site_id": a_site[i],
                "accelerator": a_acc[i],
                "hour": h if h >= 0 else None,
            }
            if s is None or a is None:
                c.add(
                    "services",
                    "unknown",
                    "assignment names an unknown site or accelerator",
                    table="assignments",
                    **where,
                )
                continue
            if h < 0:
                continue
            n = a_dev[i]
            if not np.isfinite(n) or n < 0 or abs(n - round(n)) > WHOLE_TOL:
                c.add(
                    "services",
                    "devices",
                    f"devices {_fmt(n)} is not a non-negative whole number",
                    **where,
                )
                continue
            if tp[k, a] <= 0:
                c.add(
                    "services",
                    "accelerator",
                    f"{a_acc[i]} has no throughput for this service",
                    **where,
                )
            seen2[(k, s, a, h)] += 1
            if seen2[(k, s, a, h)] == 2:
                c.add(
                    "services",
                    "duplicate",
                    "service devices listed twice for one site, type and hour",
                    **where,
                )
            res.devices[k, s, a, h] += int(round(n))
            t = a_tok[i]
            if not np.isfinite(t):
                c.add(
                    "services", "tokens_per_s", "service assignment without tokens_per_s", **where
                )
                continue
            if t < -c.abs_tol or not c.le(t, n * tp[k, a]):
                c.add(
                    "services",
                    "throughput",
                    f"{t:g} tokens/s on {n:g} {a_acc[i]} (at most {n * tp[k, a]:g})",
                    **where,
                )
            tokens[k, s, h] += t
        cap_tok = np.einsum("ksah,ka->ksh", res.devices, tp)
        if fl is not None:
            from_site = res.flows.sum(axis=1)  # [k, s, h]
            for k, s, h in zip(*np.nonzero(~c.le(from_site, cap_tok)), strict=True):
                c.add(
                    "services",
                    "throughput",
                    f"{from_site[k, s, h]:g} tokens/s served from {c.site_ids[s]}, its devices give {cap_tok[k, s, h]:g}",
                    workload_id=sc.services[k].service_id,
                    site_id=c.site_ids[s],
                    hour=h,
                    expected=cap_tok[k, s, h],
                    actual=from_site[k, s, h],
                )
            for k, s, h in zip(*np.nonzero(~c.close(tokens, from_site)), strict=True):
                c.add(
                    "services",
                    "tokens_split",
                    f"assignments carry {tokens[k, s, h]:g} tokens/s, service_flows {from_site[k, s, h]:g}",
                    workload_id=sc.services[k].service_id,
                    site_id=c.site_ids[s],
                    hour=h,
                )

    if asg is not None and fl is not None:
        _check_service_rows(c, res)

    # service hours: served + unmet == demand
    sh = c.table("service_hours")
    if sh is not None:
        k_ = c.text(sh, "service_id")
        h_ = c.hours.get("service_hours", np.full(len(sh), -1, np.int64))
        d_col = c.num(sh, "demand_tokens_per_s")
        s_col = c.num(sh, "served_tokens_per_s")
        u_col = c.num(sh, "unmet_tokens_per_s")
        c.count("services", len(sh))
        got = np.zeros((K, H), dtype=np.int64)
        dem = demand.sum(axis=1)
        unmet = res.unmet.sum(axis=1)
        served = dem - unmet
        for i in range(len(sh)):
            k, h = c.svc_pos.get(k_[i]), int(h_[i])
            if k is None:
                c.add(
                    "services",
                    "unknown",
                    f"service_hours names unknown service {k_[i]!r}",
                    table="service_hours",
                )
                continue
            if h < 0:
                continue
            got[k, h] += 1
            where = {"workload_id": k_[i], "hour": h, "table": "service_hours"}
            if not c.close(d_col[i], dem[k, h]):
                c.add(
                    "services",
                    "demand",
                    f"demand {_fmt(d_col[i])} tokens/s, the scenario says {dem[k, h]:g}",
                    expected=dem[k, h],
                    actual=d_col[i],
                    **where,
                )
            if not c.close(s_col[i] + u_col[i], d_col[i]):
                c.add(
                    "services",
                    "balance",
                    f"served {_fmt(s_col[i])} + unmet {_fmt(u_col[i])} != demand {_fmt(d_col[i])}",
                    **where,
                )
            if fl is not None:
                if not c.close(s_col[i], served[k, h]):
                    c.add(
                        "services",
                        "served",
                        f"served {_fmt(s_col[i])} tokens/s, the flows serve {served[k, h]:g}",
                        expected=served[k, h],
                        actual=s_col[i],
                        **where,
                    )
                if not c.close(u_col[i], unmet[k, h]):
                    c.add(
                        "services",
                        "unmet",
                        f"unmet {_fmt(u_col[i])} tokens/s, recomputed {unmet[k, h]:g}",
                        expected=unmet[k, h],
                        actual=u_col[i],
                        **where,
                    )
        for k, h in zip(*np.nonzero(got != 1), strict=True):
            what = "missing" if got[k, h] == 0 else f"listed {got[k, h]} times"
            c.add(
                "services",
                "service_hour_rows",
                f"service hour {what} in service_hours.csv",
                workload_id=sc.services[k].service_id,
                hour=h,
            )
    return res


def _check_service_rows(c: _Checker, res: _Services) -> None:
    """A service's workloads.csv row sums up its devices (extras checked where present)."""
    wl = c.table("workloads")
    if wl is None:
        return
    ids = c.text(wl, "workload_id")
    kinds = c.text(wl, "kind")
    status = c.text(wl, "status")
    row_of = {w: i for i, w in enumerate(ids) if kinds[i] == "inference"}
    demand = np.asarray(c.sc.demand_tokens_per_s, dtype=float)
    per_hour = res.devices.sum(axis=(1, 2))  # [k, h]
    served = res.flows.sum(axis=(1, 2))  # [k, h]
    for k, svc in enumerate(c.sc.services):
        r = row_of.get(svc.service_id)
        if r is None:
            continue  # reported by the job check
        want: dict[str, float] = {
            "devices": float(per_hour[k].max()) if per_hour[k].size else 0.0,
            "work_device_hours": float(per_hour[k].sum()),
            "work_in_horizon_device_hours": float(per_hour[k].sum()),
            "run_hours": float(np.count_nonzero(per_hour[k])),
            "migration_cost": 0.0,
            "data_transfer_cost": 0.0,
        }
        for col, v in want.items():
            if col not in wl.columns:
                continue
            given = float(c.num(wl, col)[r])
            if given != v:
                c.add(
                    "services",
                    "description",
                    f"{col} {_fmt(given)}, its assignments give {v:g}",
                    workload_id=svc.service_id,
                    table="workloads",
                    expected=v,
                    actual=given,
                )
        for col in ("moved", "preemptible"):
            if col in wl.columns and _bool(wl[col].iloc[r]) is not False:
                c.add(
                    "services",
                    "description",
                    f"{col} {wl[col].iloc[r]!r}: a service is neither moved nor preempted",
                    workload_id=svc.service_id,
                    table="workloads",
                )
        used_sites = {c.site_ids[x] for x in np.flatnonzero(res.devices[k].sum(axis=(1, 2)))}
        used_accs = {c.acc_names[x] for x in np.flatnonzero(res.devices[k].sum(axis=(0, 2)))}
        reachable = {
            site_id
            for (site_id, region), ms in c.sc.latency_ms.items()
            if ms <= svc.latency_limit_ms
            and region in c.region_pos
            and demand[k, c.region_pos[region]].sum() > 0
            and site_id in c.site_pos
            and any(
                a in c.acc_pos and c.installed[c.site_pos[site_id], c.acc_pos[a]] > 0
                for a in svc.throughput_tokens_per_s
            )
        }
        sets = {
            "site_id": used_sites,
            "accelerator": used_accs or set(svc.throughput_tokens_per_s),
            "allowed_sites": reachable,
            "current_site": set(),
        }
        for col, want_set in sets.items():
            given_set = set(_split(wl[col].iloc[r]))
            if given_set != want_set:
                c.add(
                    "services",
                    "description",
                    f"{col} {';'.join(sorted(given_set))!r}, expected {';'.join(sorted(want_set))!r}",
                    workload_id=svc.service_id,
                    table="workloads",
                )
        window = c.parse_hours(
            "workloads",
            [wl["release"].iloc[r], wl["deadline"].iloc[r]],
            "release/deadline",
            in_horizon=False,
        )
        if not (np.isnan(window).any() or (window[0] == 0 and window[1] == c.H)):
            c.add(
                "services",
                "description",
                f"release/deadline must span the horizon [0, {c.H}), got hours {window[0]:g}, {window[1]:g}",
                workload_id=svc.service_id,
                table="workloads",
            )
        placed = served[k].sum() > c.abs_tol or demand[k].sum() == 0
        if status[r] != ("placed" if placed else "unplaced"):
            c.add(
                "services",
                "status",
                f"status {status[r]!r}, but it serves {served[k].sum():g} tokens/s-hours",
                workload_id=svc.service_id,
                table="workloads",
            )


def _check_capacity(c: _Checker, jobs: _Jobs, svc: _Services) -> np.ndarray:
    """Busy devices per [site, accelerator, hour] (jobs' gangs + inference), within capacity."""
    busy = jobs.busy + svc.devices.sum(axis=0)
    cap = c.capacity
    if not c.usable("assignments"):
        return busy  # what is busy is unknown (reported); do not cascade
    c.count("capacity", busy.size)
    for s, a, h in zip(*np.nonzero(busy > cap), strict=True):
        c.add(
            "capacity",
            "device_capacity",
            f"{busy[s, a, h]} {c.acc_names[a]} busy, {cap[s, a, h]} available (floor(installed {c.installed[s, a]} x availability))",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
            expected=int(cap[s, a, h]),
            actual=int(busy[s, a, h]),
        )
    df = c.table("site_hour_devices")
    if df is None:
        return busy
    s_ = c.text(df, "site_id")
    a_ = c.text(df, "accelerator")
    h_ = c.hours.get("site_hour_devices", np.full(len(df), -1, np.int64))
    cols = {k: c.num(df, k) for k in ("capacity", "busy", "busy_power_kw", "idle_power_kw")}
    si = np.array([c.site_pos.get(x, -1) for x in s_], dtype=np.int64)
    ai = np.array([c.acc_pos.get(x, -1) for x in a_], dtype=np.int64)
    for i in np.flatnonzero((si < 0) | (ai < 0)):
        c.add(
            "capacity",
            "unknown",
            f"row for unknown site/accelerator {s_[i]!r}/{a_[i]!r}",
            table="site_hour_devices",
        )
    rows = np.flatnonzero((si >= 0) & (ai >= 0) & (h_ >= 0))
    si, ai, hi = si[rows], ai[rows], h_[rows]
    got = np.zeros(busy.shape, dtype=np.int64)
    np.add.at(got, (si, ai, hi), 1)
    b, k = busy[si, ai, hi].astype(float), cap[si, ai, hi].astype(float)
    want = {
        "capacity": k,
        "busy": b,
        "busy_power_kw": b * c.busy_kw[ai],
        "idle_power_kw": (k - b) * c.idle_kw[ai],
    }
    for col, v in want.items():
        given = cols[col][rows]
        bad = (given != v) if col in ("capacity", "busy") else ~c.close(given, v)
        for n in np.flatnonzero(bad):
            c.add(
                "capacity",
                f"{col}_column",
                f"{col} {_fmt(given[n])}, recomputed {v[n]:g}",
                site_id=c.site_ids[si[n]],
                accelerator=c.acc_names[ai[n]],
                hour=int(hi[n]),
                table="site_hour_devices",
                expected=float(v[n]),
                actual=float(given[n]),
            )
    for s, a, h in zip(*np.nonzero((c.installed[:, :, None] > 0) & (got == 0)), strict=True):
        c.add(
            "capacity",
            "device_rows",
            "installed site/type hour missing from site_hour_devices.csv",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
        )
    for s, a, h in zip(*np.nonzero(got > 1), strict=True):
        c.add(
            "capacity",
            "device_rows",
            f"listed {got[s, a, h]} times in site_hour_devices.csv",
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=h,
        )
    return busy


@dataclass
class _Power:
    it_mw: np.ndarray  # [site, hour], recomputed
    facility_mw: np.ndarray  # recomputed
    grid_mw: np.ndarray  # as planned (site_hours.csv)
    green_mw: np.ndarray
    ok: bool  # site_hours.csv usable
    busy_known: bool = True  # assignments.csv usable, so IT and facility power are recomputed


def _check_power(c: _Checker, busy: np.ndarray) -> _Power:
    sc = c.sc
    S, H = len(sc.sites), c.H
    cap = c.capacity
    it_kw = np.einsum("sah,a->sh", busy, c.busy_kw) + np.einsum("sah,a->sh", cap - busy, c.idle_kw)
    it = it_kw / KW_PER_MW
    pue = np.array([s.pue for s in sc.sites], dtype=float)
    fac = it * pue[:, None]
    busy_known = c.usable("assignments")
    res = _Power(it, fac, np.zeros((S, H)), np.zeros((S, H)), False, busy_known)
    df = c.table("site_hours")
    if df is None:
        return res
    res.ok = True
    c.count("power", len(df))
    names = TABLE_COLUMNS["site_hours"][2:] + (
        ("emissions_location_kg",) if "emissions_location_kg" in df.columns else ()
    )
    v = {k: np.full((S, H), np.nan) for k in names}
    cols = {k: c.num(df, k) for k in names}
    got = np.zeros((S, H), dtype=np.int64)
    s_ = c.text(df, "site_id")
    h_ = c.hours.get("site_hours", np.full(len(df), -1, np.int64))
    for i in range(len(df)):
        s, h = c.site_pos.get(s_[i]), int(h_[i])
        if s is None:
            c.add("power", "unknown", f"row for unknown site {s_[i]!r}", table="site_hours")
            continue
        if h < 0:
            continue
        got[s, h] += 1
        for k in names:
            v[k][s, h] = cols[k][i]
    for s, h in zip(*np.nonzero(got != 1), strict=True):
        what = "missing from" if got[s, h] == 0 else f"listed {got[s, h]} times in"
        c.add(
            "power",
            "site_hour_rows",
            f"site hour {what} site_hours.csv",
            site_id=c.site_ids[s],
            hour=h,
        )
    present = got >= 1

    def report(
        rule: str,
        bad: np.ndarray,
        msg: Any,
        expected: np.ndarray | None = None,
        actual: np.ndarray | None = None,
    ) -> None:
        for s, h in zip(*np.nonzero(bad & present), strict=True):
            c.add(
                "power",
                rule,
                msg(s, h),
                site_id=c.site_ids[s],
                hour=h,
                expected=None if expected is None else float(expected[s, h]),
                actual=None if actual is None else float(actual[s, h]),
            )

    grid, green = v["grid_mw"], v["green_used_mw"]
    res.grid_mw = np.where(present, grid, 0.0)
    res.green_mw = np.where(present, green, 0.0)
    avail = np.asarray(sc.green_available_mw, dtype=float)
    limit = np.array([s.grid_limit_mw for s in sc.sites], dtype=float)[:, None] * np.ones((1, H))
    # the scenario's inputs, restated
    inputs = {
        "pue": pue[:, None] * np.ones((1, H)),
        "grid_limit_mw": limit,
        "green_available_mw": avail,
        "grid_price_per_mwh": np.asarray(sc.grid_price_cny_per_mwh, dtype=float),
        "green_price_per_mwh": np.asarray(sc.green_price_cny_per_mwh, dtype=float),
        "carbon_kg_per_mwh": np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float),
    }
    for k, want in inputs.items():
        report(
            f"{k}_column",
            ~c.close(v[k], want),
            lambda s, h, k=k, want=want: (
                f"{k} {_fmt(v[k][s, h])}, the scenario says {want[s, h]:g}"
            ),
            want,
            v[k],
        )
    # recomputed power
    if res.busy_known:
        report(
            "it_mw",
            ~c.close(v["it_mw"], it),
            lambda s, h: (
                f"it_mw {_fmt(v['it_mw'][s, h])}, busy and idle devices draw {it[s, h]:.6g} MW"
            ),
            it,
            v["it_mw"],
        )
        report(
            "facility_mw",
            ~c.close(v["facility_mw"], fac),
            lambda s, h: (
                f"facility_mw {_fmt(v['facility_mw'][s, h])}, PUE x IT = {fac[s, h]:.6g} MW"
            ),
            fac,
            v["facility_mw"],
        )
    else:
        # busy devices unknown (reported): audit the rest against the reported power
        it, fac = np.where(present, v["it_mw"], 0.0), np.where(present, v["facility_mw"], 0.0)
        res.it_mw, res.facility_mw = it, fac
    # limits
    report(
        "grid_negative",
        grid < -c.abs_tol,
        lambda s, h: f"negative grid import {grid[s, h]:g} MW",
        None,
        grid,
    )
    report(
        "grid_limit",
        ~c.le(grid, limit),
        lambda s, h: f"grid import {grid[s, h]:.6g} MW exceeds the {limit[s, h]:g} MW connection",
        limit,
        grid,
    )
    report(
        "green_negative",
        green < -c.abs_tol,
        lambda s, h: f"negative green use {green[s, h]:g} MW",
        None,
        green,
    )
    report(
        "green_available",
        ~c.le(green, avail),
        lambda s, h: f"green use {green[s, h]:.6g} MW exceeds the {avail[s, h]:g} MW available",
        avail,
        green,
    )
    curt = avail - green
    report(
        "curtailed",
        ~c.close(v["curtailed_mw"], curt),
        lambda s, h: (
            f"curtailed {_fmt(v['curtailed_mw'][s, h])} MW, available - used = {curt[s, h]:.6g}"
        ),
        curt,
        v["curtailed_mw"],
    )
    ch, dis, soc = v["battery_charge_mw"], v["battery_discharge_mw"], v["battery_soc_mwh"]
    supply = grid + green + dis - ch
    report(
        "balance",
        ~c.close(supply, fac),
        lambda s, h: (
            f"grid {grid[s, h]:.6g} + green {green[s, h]:.6g} + discharge {dis[s, h]:.6g} - charge {ch[s, h]:.6g} = {supply[s, h]:.6g} MW, facility needs {fac[s, h]:.6g}"
        ),
        fac,
        supply,
    )
    # per-row money and carbon
    cost = grid * inputs["grid_price_per_mwh"] + green * inputs["green_price_per_mwh"]
    report(
        "energy_cost_column",
        ~c.close(v["energy_cost"], cost),
        lambda s, h: (
            f"energy_cost {_fmt(v['energy_cost'][s, h])}, grid x price + green x green price = {cost[s, h]:.6g}"
        ),
        cost,
        v["energy_cost"],
    )
    ekg = grid * inputs["carbon_kg_per_mwh"]
    report(
        "emissions_column",
        ~c.close(v["emissions_kg"], ekg),
        lambda s, h: (
            f"emissions_kg {_fmt(v['emissions_kg'][s, h])}, grid x intensity = {ekg[s, h]:.6g}"
        ),
        ekg,
        v["emissions_kg"],
    )
    if "emissions_location_kg" in v:
        lkg = (grid + green) * inputs["carbon_kg_per_mwh"]
        report(
            "emissions_column",
            ~c.close(v["emissions_location_kg"], lkg),
            lambda s, h: (
                f"emissions_location_kg {_fmt(v['emissions_location_kg'][s, h])}, (grid + green) x intensity = {lkg[s, h]:.6g}"
            ),
            lkg,
            v["emissions_location_kg"],
        )
    # batteries
    for s, site in enumerate(sc.sites):
        row = present[s]
        b = site.battery
        if b is None or (b.energy_mwh <= 0 and b.power_mw <= 0):
            nz = row & (
                (np.abs(ch[s]) > c.abs_tol)
                | (np.abs(dis[s]) > c.abs_tol)
                | (np.abs(soc[s]) > c.abs_tol)
            )
            for h in np.flatnonzero(nz).tolist():
                c.add(
                    "power",
                    "no_battery",
                    "site has no battery but its battery columns are not zero",
                    site_id=site.site_id,
                    hour=h,
                )
            continue
        c.count("power", H)
        sq = math.sqrt(b.round_trip_efficiency)
        soc0 = b.energy_mwh * b.initial_soc
        for name, arr, hi in (
            ("charge", ch[s], b.power_mw),
            ("discharge", dis[s], b.power_mw),
            ("soc", soc[s], b.energy_mwh),
        ):
            for h in np.flatnonzero(row & ((arr < -c.abs_tol) | ~c.le(arr, hi))).tolist():
                c.add(
                    "power",
                    f"battery_{name}",
                    f"battery {name} {arr[h]:.6g} outside [0, {hi:g}]",
                    site_id=site.site_id,
                    hour=h,
                    expected=hi,
                    actual=arr[h],
                )
        if not row.all():
            continue
        prev = np.concatenate([[soc0], soc[s, :-1]])
        want = prev + sq * ch[s] - dis[s] / sq
        for h in np.flatnonzero(~c.close(soc[s], want)).tolist():
            c.add(
                "power",
                "battery_soc",
                f"state of charge {soc[s, h]:.6g} MWh; previous {prev[h]:.6g} + sqrt(eta) x charge {ch[s, h]:.6g} - discharge {dis[s, h]:.6g} / sqrt(eta) = {want[h]:.6g}",
                site_id=site.site_id,
                hour=h,
                expected=want[h],
                actual=soc[s, h],
            )
        if H and not c.le(soc0, soc[s, -1]):
            c.add(
                "power",
                "battery_end_soc",
                f"battery ends at {soc[s, -1]:.6g} MWh, below its initial {soc0:g} MWh",
                site_id=site.site_id,
                hour=H - 1,
                expected=soc0,
                actual=soc[s, -1],
            )
    return res


def _policy_recompute(c: _Checker, pw: _Power) -> dict[str, Any]:
    sc, pol = c.sc, c.sc.policy
    groups: list[tuple[str, float, float, float]] = []
    if pol.min_green_share > 0:
        groups.append(
            ("fleet", pol.min_green_share, float(pw.green_mw.sum()), float(pw.facility_mw.sum()))
        )
    for s, site in enumerate(sc.sites):
        if site.min_green_share > 0:
            groups.append(
                (
                    site.site_id,
                    site.min_green_share,
                    float(pw.green_mw[s].sum()),
                    float(pw.facility_mw[s].sum()),
                )
            )
    shares = [
        {
            "scope": scope,
            "required": req,
            "achieved": g / f if f > 0 else 0.0,
            "shortfall_mwh": max(0.0, req * f - g),
            "facility_mwh": f,
        }
        for scope, req, g, f in groups
    ]
    emissions = float(
        (pw.grid_mw * np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float)).sum() / KG_PER_T
    )
    excess = max(0.0, emissions - pol.carbon_budget_t) if pol.carbon_budget_t is not None else 0.0
    return {"green_share": shares, "carbon_excess_t": excess, "emissions_t": emissions}


def _check_policy(c: _Checker, pw: _Power) -> dict[str, Any]:
    pol = c.sc.policy
    rec = _policy_recompute(c, pw)
    summary = c.plan.summary if isinstance(c.plan.summary, dict) else {}
    claimed = summary.get("policy_violations")
    n_req = len(rec["green_share"]) + (pol.carbon_budget_t is not None)
    c.count("policy", n_req)
    if not pw.ok:
        return rec
    if not isinstance(claimed, dict):
        if n_req:
            c.add(
                "policy",
                "policy_violations",
                "summary has no policy_violations block, but the scenario sets policy limits",
                table="summary",
            )
        claimed = {}
    by_scope = {
        str(e.get("scope")): e for e in claimed.get("green_share", []) or [] if isinstance(e, dict)
    }
    for g in rec["green_share"]:
        scope = g["scope"]
        where = {"site_id": scope if scope != "fleet" else None}
        scale = g["facility_mwh"]
        e = by_scope.pop(scope, None)
        short = g["shortfall_mwh"]
        said = _number(e.get("shortfall_mwh")) if e else None
        if not c.close_scaled(short, 0.0, scale) and (
            said is None or c.close_scaled(said, 0.0, scale)
        ):
            c.add(
                "policy",
                "green_share",
                f"{scope} green share {g['achieved']:.4f} is below the required {g['required']:g} "
                f"({short:.6g} MWh short), but the summary reports it met",
                expected=short,
                actual=said,
                **where,
            )
        elif e is None:
            c.add(
                "policy",
                "green_share",
                f"summary omits the {scope} green-share requirement ({g['required']:g})",
                **where,
            )
        elif said is None or not c.close_scaled(said, short, scale):
            c.add(
                "policy",
                "green_share",
                f"summary reports a {_fmt(said)} MWh {scope} shortfall, recomputed {short:.6g}",
                expected=short,
                actual=said,
                **where,
            )
    for scope in by_scope:
        c.add(
            "policy",
            "green_share",
            f"summary reports a green-share requirement {scope!r} the scenario does not set",
        )
    said_ex = _number(claimed.get("carbon_excess_t", 0.0))
    ex = rec["carbon_excess_t"]
    scale = pol.carbon_budget_t or 0.0
    if (
        pol.carbon_budget_t is not None
        and not c.close_scaled(ex, 0.0, scale)
        and (said_ex is None or c.close_scaled(said_ex, 0.0, scale))
    ):
        c.add(
            "policy",
            "carbon_budget",
            f"emissions {rec['emissions_t']:.6g} t exceed the {pol.carbon_budget_t:g} t budget by {ex:.6g} t, but the summary reports it met",
            expected=ex,
            actual=said_ex,
        )
    elif said_ex is None or not c.close_scaled(said_ex, ex, scale):
        c.add(
            "policy",
            "carbon_budget",
            f"summary reports carbon_excess_t {_fmt(said_ex)}, recomputed {ex:.6g}",
            expected=ex,
            actual=said_ex,
        )
    return rec


def _check_totals(
    c: _Checker, jobs: _Jobs, svc: _Services, pw: _Power, pol_rec: dict[str, Any]
) -> None:
    sc, pol = c.sc, c.sc.policy
    summary = c.plan.summary if isinstance(c.plan.summary, dict) else {}
    price = np.asarray(sc.grid_price_cny_per_mwh, dtype=float)
    gprice = np.asarray(sc.green_price_cny_per_mwh, dtype=float)
    ci = np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float)
    avail = np.asarray(sc.green_available_mw, dtype=float)
    grid, green = pw.grid_mw, pw.green_mw
    grid_cost = float((grid * price).sum())
    green_cost = float((green * gprice).sum())
    emissions_t = float((grid * ci).sum() / KG_PER_T)  # contract-based: green counts zero
    emissions_loc_t = float(
        ((grid + green) * ci).sum() / KG_PER_T
    )  # location-based: all energy drawn
    carbon_cost = pol.carbon_price_cny_per_t * emissions_t
    migration = float(jobs.migration_cny[jobs.placed].sum())
    transfer = float(jobs.transfer_cny[jobs.placed].sum())
    unplaced = ~jobs.placed
    unplaced_pen = 0.0
    for j in np.flatnonzero(unplaced):
        job = sc.jobs[j]
        if job.unplaced_penalty_cny is not None:
            unplaced_pen += job.unplaced_penalty_cny
        else:
            unplaced_pen += (
                pol.unplaced_penalty_cny_per_device_hour * jobs.work_in_horizon[j] * job.priority
            )
    rho = np.array(
        [
            k.unmet_penalty_cny_per_mtoken
            if k.unmet_penalty_cny_per_mtoken is not None
            else pol.unmet_penalty_cny_per_mtoken
            for k in sc.services
        ],
        dtype=float,
    )
    unmet_mtok_k = (
        svc.unmet.sum(axis=(1, 2)) * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN
        if len(sc.services)
        else np.zeros(0)
    )
    unmet_pen = float(np.dot(rho, unmet_mtok_k)) if rho.size else 0.0
    policy_pen = (
        sum(g["shortfall_mwh"] for g in pol_rec["green_share"])
        * pol.green_shortfall_penalty_cny_per_mwh
    )
    policy_pen += pol_rec["carbon_excess_t"] * pol.carbon_excess_penalty_cny_per_t
    energy = grid_cost + green_cost
    total = energy + carbon_cost + migration + transfer
    penalty = unplaced_pen + unmet_pen + policy_pen
    fac_mwh = float(pw.facility_mw.sum())
    demand_total = float(np.asarray(sc.demand_tokens_per_s).sum())
    rec: dict[str, Any] = {
        "total_cost": total,
        "energy_cost": energy,
        "grid_cost": grid_cost,
        "green_cost": green_cost,
        "carbon_cost": carbon_cost,
        "migration_cost": migration,
        "data_transfer_cost": transfer,
        "penalty": penalty,
        "objective": total + penalty,
        "grid_mwh": float(grid.sum()),
        "green_mwh": float(green.sum()),
        "curtailed_mwh": float((avail - green).sum()),
        "facility_mwh": fac_mwh,
        "it_mwh": float(pw.it_mw.sum()),
        "emissions_t": emissions_t,
        "emissions_location_t": emissions_loc_t,
        "green_share": float(green.sum()) / fac_mwh if fac_mwh > 0 else 0.0,
        "placed": int(jobs.placed.sum()),
        "unplaced": int(unplaced.sum()),
        "unplaced_device_hours": float(jobs.work_in_horizon[unplaced].sum()),
        "moved_jobs": int(jobs.moved.sum()),
        "unmet_mtokens": float(unmet_mtok_k.sum()),
        "served_share": 1.0 - float(svc.unmet.sum()) / demand_total if demand_total > 0 else 1.0,
    }
    penalties = {
        "unplaced": unplaced_pen,
        "unmet_demand": unmet_pen,
        "policy_violation": policy_pen,
    }
    # what a missing table (reported by the bundle check) leaves unknown is not compared
    unknown: set[str] = set()
    if not c.usable("workloads", "assignments"):
        unknown |= {
            "placed",
            "unplaced",
            "unplaced_device_hours",
            "moved_jobs",
            "migration_cost",
        }
        unknown |= {"data_transfer_cost", "total_cost", "penalties.unplaced"}
    if not c.usable("service_flows"):
        unknown |= {"unmet_mtokens", "served_share", "penalties.unmet_demand"}
    if unknown:
        unknown |= {"penalty", "objective"}
    rec = {k: (None if k in unknown else v) for k, v in rec.items()}
    penalties = {k: (None if f"penalties.{k}" in unknown else v) for k, v in penalties.items()}
    c.recomputed.update(rec)
    c.recomputed["penalties"] = penalties
    c.recomputed["policy_violations"] = {
        "green_share": pol_rec["green_share"],
        "carbon_excess_t": pol_rec["carbon_excess_t"],
    }
    if not pw.ok:
        return  # energy totals cannot be recomputed without site_hours.csv (reported)

    def compare(key: str, said: Any, want: float | None, label: str) -> None:
        if want is None:
            return
        c.count("totals", 1)
        if isinstance(said, bool) or not isinstance(said, int | float):
            c.add(
                "totals",
                key,
                f"{label} is {said!r}, recomputed {want:.10g}",
                table="summary",
                expected=want,
                actual=said,
            )
            return
        ok = said == want if key in COUNT_KPIS else bool(c.close(said, want))
        if not ok:
            c.add(
                "totals",
                key,
                f"{label} is {said:.10g}, recomputed {want:.10g}",
                table="summary",
                expected=want,
                actual=said,
            )

    for key, want in rec.items():
        if key in summary:
            compare(key, summary[key], want, key)
    pen = summary.get("penalties")
    if isinstance(pen, dict):
        for key, want in penalties.items():
            if key in pen:
                compare(f"penalties.{key}", pen[key], want, f"penalties.{key}")

    # solver bound and gap (a lower bound of a minimisation)
    status = summary.get("status")
    bound, gap, obj = summary.get("bound"), summary.get("gap"), summary.get("objective")
    if status in ("optimal", "feasible"):
        c.count("totals", 1)
        has_bound, has_gap = isinstance(bound, int | float), isinstance(gap, int | float)
        # an optimal plan proves its bound; a feasible one reports a bound and its gap, or,
        # when no bound was proven in time, neither
        if (status == "optimal" and not (has_bound and has_gap)) or has_bound != has_gap:
            c.add(
                "totals",
                "bound",
                f"a {status} plan must report bound and gap together, got {bound!r}, {gap!r}",
                table="summary",
            )
        elif has_bound:
            if isinstance(obj, int | float) and not c.le(bound, obj):
                c.add(
                    "totals",
                    "bound",
                    f"bound {bound:.10g} is above the objective {obj:.10g}",
                    table="summary",
                    expected=obj,
                    actual=bound,
                )
            if isinstance(gap, int | float) and gap < -c.abs_tol:
                c.add("totals", "bound", f"negative gap {gap:g}", table="summary")

    # baselines: the same KPI keys as the plan
    baselines = summary.get("baselines")
    if isinstance(baselines, dict):
        own = [k for k in KPI_KEYS if k in summary]
        if status in ("optimal", "feasible", "fallback") and not baselines:
            c.add(
                "totals", "baselines", "no baseline KPIs beside an optimizer plan", table="summary"
            )
        for name, kp in baselines.items():
            c.count("totals", 1)
            if not isinstance(kp, dict):
                c.add(
                    "totals",
                    "baselines",
                    f"baseline {name!r} is not an object of KPIs",
                    table="summary",
                )
                continue
            missing = [k for k in own if k not in kp]
            if missing:
                c.add(
                    "totals",
                    "baselines",
                    f"baseline {name!r} lacks KPI(s) {', '.join(missing)}",
                    table="summary",
                )
            extra = [k for k in KPI_KEYS if k in kp and k not in summary]
            if extra:
                c.add(
                    "totals",
                    "baselines",
                    f"baseline {name!r} has KPI(s) the plan lacks: {', '.join(extra)}",
                    table="summary",
                )
            bad = [
                k
                for k in own
                if k in kp
                and (
                    isinstance(kp[k], bool)
                    or not isinstance(kp[k], int | float)
                    or not math.isfinite(kp[k])
                )
            ]
            if bad:
                c.add(
                    "totals",
                    "baselines",
                    f"baseline {name!r} has non-numeric KPI(s) {', '.join(bad)}",
                    table="summary",
                )


# ------------------------------------------------------------------------------ entry
def validate_plan(
    scenario: Scenario, plan: Plan, *, rel_tol: float = 1e-6, abs_tol: float = 1e-6
) -> ValidationReport:
    """Recompute every limit and total of `plan` on `scenario`; report every violation."""
    t = time.perf_counter()
    c = _Checker(scenario, plan, rel_tol, abs_tol)
    _check_bundle(c)
    jobs = _check_jobs(c)
    svc = _check_services(c)
    busy = _check_capacity(c, jobs, svc)
    pw = _check_power(c, busy)
    pol = _check_policy(c, pw)
    _check_totals(c, jobs, svc, pw, pol)
    order = {name: i for i, name in enumerate(CHECKS)}
    violations = sorted(c.violations, key=lambda v: order.get(v.check, len(CHECKS)))
    return ValidationReport(violations, c.checked, c.recomputed, time.perf_counter() - t)


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
    report = validate_plan(scenario, Plan.read_bundle(root), **tolerances)
    report.violations[:0] = [
        Violation("bundle", "file_missing", f"{f} is missing", table=f)
        for f in missing
        if f != "summary.json"
    ]
    return report
