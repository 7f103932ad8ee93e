"""Check family `jobs`: every scenario job once in workloads.csv, restating the scenario;
a placed job's hours in assignments.csv follow the job rules (one site, one type, whole
gang, window, run hours, contiguity), re-derived here from the `Scenario`'s raw fields
(the rules are documented in `optimizer/rules.py`, which this package does not import);
`moved` and the migration and transfer costs from the policy formulas; moves.csv lists
exactly the moved jobs.

Leaves `Checker.jobs` (`JobFindings`): which jobs are placed where, what they cost, and the
devices they hold, for the capacity and totals checks.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.scenario.types import Job
from optimizer.validate.names import JOB_STATUSES, WORKLOAD_KINDS
from optimizer.validate.state import (
    WHOLE_TOL,
    Checker,
    JobFindings,
    ceil_hours,
    cell_bool,
    cell_list,
    fmt,
    work_in_horizon,
)

CHECK = "jobs"


@dataclass
class Assignments:
    """The job rows of assignments.csv, as columns."""

    ids: np.ndarray
    site: np.ndarray
    acc: np.ndarray
    dev: np.ndarray
    hour: np.ndarray
    rows_of: dict[str, list[int]]  # job id -> its rows


@dataclass
class Workloads:
    """workloads.csv, as the columns the job rules read (extras NaN where absent)."""

    df: pd.DataFrame
    kind: np.ndarray
    site: np.ndarray
    acc: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    current_site: np.ndarray
    allowed: np.ndarray
    dev: np.ndarray
    work: np.ndarray
    release: np.ndarray  # hour
    deadline: np.ndarray  # hour
    has_moved: bool
    has_costs: bool
    migration: np.ndarray
    transfer: np.ndarray
    run_hours: np.ndarray
    work_in_horizon: np.ndarray


@dataclass
class Placement:
    """Where a placed job runs: its hours of assignments.csv, its site and type."""

    j: int  # position of the job in the scenario
    job: Job
    r: int  # its workloads.csv row
    rows: np.ndarray  # its assignments.csv rows
    site_id: str
    acc_name: str
    s: int
    a: int
    hours: np.ndarray  # distinct hours it runs, sorted


def check(c: Checker) -> None:
    sc = c.sc
    J, S, A, H = len(sc.jobs), len(sc.sites), len(sc.accelerators), c.H
    c.jobs = JobFindings(
        placed=np.zeros(J, bool),
        site=np.full(J, -1, np.int64),
        acc=np.full(J, -1, np.int64),
        moved=np.zeros(J, bool),
        migration_cny=np.zeros(J),
        transfer_cny=np.zeros(J),
        work_in_horizon=np.array([work_in_horizon(c, j) for j in sc.jobs], dtype=float),
        busy=np.zeros((S, A, H), dtype=np.int64),
    )
    asg = c.table("assignments")
    if asg is None:
        return
    a = assignments(c, asg)
    wl = c.table("workloads")
    if wl is None:
        return
    c.count(CHECK, J)
    workload_rows(c, wl)
    w = workloads(c, wl)
    for j, job in enumerate(sc.jobs):
        one_job(c, j, job, w, a)
    moves_table(c)


# ------------------------------------------------------------------------------ tables
def assignments(c: Checker, asg: pd.DataFrame) -> Assignments:
    """The jobs' rows of assignments.csv: known workloads, no tokens; the devices they hold."""
    res = c.jobs
    ids = c.text(asg, "workload_id")
    tok = c.num(asg, "tokens_per_s")
    # a workload id that is both a job and a service: rows with tokens_per_s are the service's
    is_job = np.array(
        [
            w in c.job_pos and (w not in c.svc_pos or not np.isfinite(t))
            for w, t in zip(ids, tok, strict=True)
        ],
        dtype=bool,
    )
    for w in sorted({w for w in ids if w not in c.job_pos and w not in c.svc_pos}):
        c.add(
            CHECK,
            "unknown_workload",
            f"assignments.csv has hours of {w!r}, which is not in the scenario",
            workload_id=w,
            table="assignments",
        )
    a = Assignments(
        ids=ids,
        site=c.text(asg, "site_id"),
        acc=c.text(asg, "accelerator"),
        dev=c.num(asg, "devices"),
        hour=c.row_hours("assignments", asg),
        rows_of={},
    )
    for i in np.flatnonzero(is_job).tolist():
        a.rows_of.setdefault(ids[i], []).append(i)
    for i in np.flatnonzero(is_job & np.isfinite(tok) & (tok != 0)).tolist():
        c.add(
            CHECK,
            "tokens_per_s",
            "a job's assignment carries tokens_per_s (services only)",
            workload_id=ids[i],
            table="assignments",
            hour=int(a.hour[i]),
        )
    # devices the jobs hold, as reported, for the capacity check
    ok = is_job & (a.hour >= 0) & np.isfinite(a.dev)
    si = np.array([c.site_pos.get(x, -1) for x in a.site], dtype=np.int64)
    ai = np.array([c.acc_pos.get(x, -1) for x in a.acc], dtype=np.int64)
    ok &= (si >= 0) & (ai >= 0)
    np.add.at(res.busy, (si[ok], ai[ok], a.hour[ok]), np.round(a.dev[ok]).astype(np.int64))
    for jid in a.rows_of:
        res.placed[c.job_pos[jid]] = True
    return a


def workload_rows(c: Checker, wl: pd.DataFrame) -> None:
    """Each workloads.csv row is a scenario job or service, once, of a known kind; each
    service has its row, of kind inference."""
    res = c.jobs
    ids = c.text(wl, "workload_id")
    kinds = c.text(wl, "kind")
    seen = Counter(ids.tolist())
    res.row_of = {wid: i for i, wid in reversed(list(enumerate(ids)))}
    for i, wid in enumerate(ids):
        if wid in c.job_pos or wid in c.svc_pos:
            if seen[wid] > 1 and res.row_of[wid] == i:
                c.add(
                    CHECK,
                    "duplicate",
                    f"appears {seen[wid]} times in workloads.csv",
                    workload_id=wid,
                    table="workloads",
                )
        else:
            c.add(
                CHECK,
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
    for k in c.sc.services:
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


def workloads(c: Checker, wl: pd.DataFrame) -> Workloads:
    """The columns of workloads.csv the job rules read (the release and deadline parsed)."""
    return Workloads(
        df=wl,
        kind=c.text(wl, "kind"),
        site=c.text(wl, "site_id"),
        acc=c.text(wl, "accelerator"),
        status=c.text(wl, "status"),
        reason=c.text(wl, "reason"),
        current_site=c.text(wl, "current_site"),
        allowed=c.text(wl, "allowed_sites"),
        dev=c.num(wl, "devices"),
        work=c.num(wl, "work_device_hours"),
        release=c.parse_hours("workloads", wl["release"], "release", in_horizon=False),
        deadline=c.parse_hours("workloads", wl["deadline"], "deadline", in_horizon=False),
        has_moved="moved" in wl.columns,
        has_costs="migration_cost" in wl.columns and "data_transfer_cost" in wl.columns,
        migration=c.num(wl, "migration_cost"),
        transfer=c.num(wl, "data_transfer_cost"),
        run_hours=c.num(wl, "run_hours"),
        work_in_horizon=c.num(wl, "work_in_horizon_device_hours"),
    )


# ------------------------------------------------------------------------------ one job
def one_job(c: Checker, j: int, job: Job, w: Workloads, a: Assignments) -> None:
    """All rules of one scenario job, in the order they are reported."""
    r = c.jobs.row_of.get(job.job_id)
    if r is None:
        c.add(
            CHECK,
            "missing",
            "job has no row in workloads.csv",
            workload_id=job.job_id,
            table="workloads",
        )
        return
    restates_the_job(c, job, r, w)
    allowed_sites(c, job, r, w)
    rows = np.asarray(a.rows_of.get(job.job_id, []), dtype=np.int64)
    run_hours_column(c, j, job, r, w, a, rows)
    status = w.status[r]
    # a job due after the horizon that runs is on track (its in-horizon share), not done
    placed_as = "on_track" if job.deadline > c.H else "placed"
    if status not in JOB_STATUSES:
        c.add(
            CHECK,
            "status",
            f"status {status!r} is not one of {', '.join(JOB_STATUSES)}",
            workload_id=job.job_id,
            table="workloads",
        )
    if rows.size == 0:
        unplaced(c, job, r, w)
        return
    c.jobs.placed[j] = True
    if status != placed_as:
        c.add(
            CHECK,
            "status",
            f"status {status!r} but the job runs {rows.size} h in assignments.csv "
            f"(status {placed_as})",
            workload_id=job.job_id,
        )
    p = placement(c, j, job, r, w, a, rows)
    if p is None:
        return
    residency(c, p)
    fleet(c, p)
    gang(c, p, a)
    window(c, p)
    run_hours(c, p)
    contiguous(c, p)
    moved_and_costs(c, p, w)


def restates_the_job(c: Checker, job: Job, r: int, w: Workloads) -> None:
    """The job's workloads.csv row restates the scenario's job."""
    jid = job.job_id
    said = []
    if w.kind[r] != job.kind:
        said.append(f"kind {w.kind[r]!r}, scenario says {job.kind!r}")
    if w.dev[r] != job.gang:
        said.append(f"devices {fmt(w.dev[r])}, the job's gang is {job.gang}")
    if not c.close(w.work[r], job.work_device_hours):
        said.append(f"work_device_hours {fmt(w.work[r])}, scenario says {job.work_device_hours:g}")
    if np.isfinite(w.release[r]) and w.release[r] != job.release:
        said.append(f"release is hour {fmt(w.release[r])}, scenario says hour {job.release}")
    if np.isfinite(w.deadline[r]) and w.deadline[r] != job.deadline:
        said.append(f"deadline is hour {fmt(w.deadline[r])}, scenario says hour {job.deadline}")
    preemptible = w.df["preemptible"].iloc[r]
    if cell_bool(preemptible) is not job.preemptible:
        said.append(f"preemptible {preemptible!r}, scenario says {job.preemptible}")
    if w.current_site[r] != (job.current_site or ""):
        said.append(f"current_site {w.current_site[r]!r}, scenario says {job.current_site or ''!r}")
    for message in said:
        c.add(CHECK, "description", message, workload_id=jid, table="workloads")


def allowed_sites_of(c: Checker, job: Job) -> set[str]:
    """Sites the job may run on: in an allowed residency region, with a fleet of an
    accepted type big enough for its gang."""
    out = set()
    for s, site in enumerate(c.sc.sites):
        if job.allowed_regions and site.residency_region not in job.allowed_regions:
            continue
        if any(
            a in c.acc_pos and c.installed[s, c.acc_pos[a]] >= job.gang for a in job.accelerators
        ):
            out.add(site.site_id)
    return out


def allowed_sites(c: Checker, job: Job, r: int, w: Workloads) -> None:
    """`allowed_sites` lists exactly the sites residency and fleets allow."""
    allowed = allowed_sites_of(c, job)
    if set(cell_list(w.allowed[r])) != allowed:
        c.add(
            CHECK,
            "allowed_sites",
            f"allowed_sites {w.allowed[r]!r}, but residency and fleets allow {';'.join(sorted(allowed))!r}",
            workload_id=job.job_id,
            table="workloads",
        )


def run_hours_column(
    c: Checker, j: int, job: Job, r: int, w: Workloads, a: Assignments, rows: np.ndarray
) -> None:
    """The extras `run_hours` and `work_in_horizon_device_hours`, where present, are right."""
    n_hours = len({int(h) for h in a.hour[rows] if h >= 0})
    if "run_hours" in w.df.columns and w.run_hours[r] != n_hours:
        c.add(
            CHECK,
            "description",
            f"run_hours {fmt(w.run_hours[r])}, assignments.csv has {n_hours} h",
            workload_id=job.job_id,
            table="workloads",
        )
    share = c.jobs.work_in_horizon[j]
    if "work_in_horizon_device_hours" in w.df.columns and not c.close(w.work_in_horizon[r], share):
        c.add(
            CHECK,
            "description",
            f"work_in_horizon_device_hours {fmt(w.work_in_horizon[r])}, the rolling-horizon share is "
            f"{share:.6g}",
            workload_id=job.job_id,
            table="workloads",
        )


def unplaced(c: Checker, job: Job, r: int, w: Workloads) -> None:
    """A job without hours is unplaced, with a reason, no site, its acceptable types, not
    moved and free of migration and transfer costs."""
    jid = job.job_id
    if w.status[r] in JOB_STATUSES and w.status[r] != "unplaced":
        c.add(
            CHECK,
            "status",
            f"status {w.status[r]} but the job has no hours in assignments.csv",
            workload_id=jid,
        )
        return
    if not w.reason[r]:
        c.add(
            CHECK,
            "unplaced_reason",
            "unplaced job without a reason",
            workload_id=jid,
            table="workloads",
        )
    if w.site[r]:
        c.add(
            CHECK,
            "status",
            f"unplaced job names a site {w.site[r]!r}",
            workload_id=jid,
            table="workloads",
        )
    if set(cell_list(w.acc[r])) != set(job.accelerators):
        c.add(
            CHECK,
            "description",
            f"accelerator {w.acc[r]!r}: an unplaced job lists its acceptable types "
            f"{';'.join(job.accelerators)!r}",
            workload_id=jid,
            table="workloads",
        )
    if w.has_moved and cell_bool(w.df["moved"].iloc[r]) is not False:
        c.add(CHECK, "moved", "an unplaced job is not moved", workload_id=jid)
    if w.has_costs and (w.migration[r] != 0 or w.transfer[r] != 0):
        c.add(
            CHECK,
            "migration_cost",
            "an unplaced job has no migration or transfer cost",
            workload_id=jid,
        )


# ------------------------------------------------------------------------------ placed job
def placement(
    c: Checker, j: int, job: Job, r: int, w: Workloads, a: Assignments, rows: np.ndarray
) -> Placement | None:
    """Where a job with hours runs: one site and one type, the ones its workloads.csv row
    names, known to the scenario and accepted by the job. None if the rest cannot be checked."""
    jid = job.job_id
    sites = sorted(set(a.site[rows]))
    accs = sorted(set(a.acc[rows]))
    if len(sites) > 1:
        c.add(CHECK, "one_site", f"gang split over sites {', '.join(sites)}", workload_id=jid)
    if len(accs) > 1:
        c.add(
            CHECK,
            "one_accelerator",
            f"runs on several accelerator types {', '.join(accs)}",
            workload_id=jid,
        )
    site_id, acc_name = w.site[r] or sites[0], w.acc[r] or accs[0]
    if w.site[r] not in sites:
        c.add(
            CHECK,
            "placement_row",
            f"workloads.csv says site {w.site[r]!r}, assignments say {', '.join(sites)}",
            workload_id=jid,
        )
        site_id = sites[0]
    if w.acc[r] not in accs:
        c.add(
            CHECK,
            "placement_row",
            f"workloads.csv says accelerator {w.acc[r]!r}, assignments say {', '.join(accs)}",
            workload_id=jid,
        )
        acc_name = accs[0]
    s, acc = c.site_pos.get(site_id), c.acc_pos.get(acc_name)
    if s is None:
        c.add(
            CHECK,
            "site",
            f"site {site_id!r} is not in the scenario",
            workload_id=jid,
            site_id=site_id,
        )
        return None
    if acc_name not in job.accelerators or acc is None:
        c.add(
            CHECK,
            "accelerator",
            f"runs on {acc_name!r}; the job accepts {', '.join(job.accelerators)}",
            workload_id=jid,
            site_id=site_id,
            accelerator=acc_name,
        )
        if acc is None:
            return None
    c.jobs.site[j], c.jobs.acc[j] = s, acc
    hours_all = a.hour[rows]
    return Placement(
        j, job, r, rows, site_id, acc_name, s, acc, np.unique(hours_all[hours_all >= 0])
    )


def residency(c: Checker, p: Placement) -> None:
    """The site lies in a region the job may run in."""
    site, job = c.sc.sites[p.s], p.job
    if job.allowed_regions and site.residency_region not in job.allowed_regions:
        c.add(
            CHECK,
            "residency",
            f"site {p.site_id} is in region {site.residency_region!r}; the job may run only in {', '.join(job.allowed_regions)}",
            workload_id=job.job_id,
            site_id=p.site_id,
        )


def fleet(c: Checker, p: Placement) -> None:
    """The site has the gang's devices of that type installed."""
    if c.installed[p.s, p.a] < p.job.gang:
        c.add(
            CHECK,
            "fleet",
            f"site has {c.installed[p.s, p.a]} {p.acc_name} installed, the gang needs {p.job.gang}",
            workload_id=p.job.job_id,
            site_id=p.site_id,
            accelerator=p.acc_name,
        )


def gang(c: Checker, p: Placement, a: Assignments) -> None:
    """Every hour holds the whole gang, and each hour is listed once."""
    jid = p.job.job_id
    dev = a.dev[p.rows]
    for i in p.rows[dev != p.job.gang]:
        c.add(
            CHECK,
            "gang",
            f"holds {fmt(a.dev[i])} devices, its gang is {p.job.gang}",
            workload_id=jid,
            site_id=p.site_id,
            hour=int(a.hour[i]),
        )
    hours_all = a.hour[p.rows]
    hours_all = hours_all[hours_all >= 0]
    for h, n in Counter(hours_all.tolist()).items():
        if n > 1:
            c.add(CHECK, "duplicate_hour", f"hour listed {n} times", workload_id=jid, hour=h)


def window(c: Checker, p: Placement) -> None:
    """The job runs only within [release, min(deadline, horizon end))."""
    job = p.job
    end = min(job.deadline, c.H)
    outside = p.hours[(p.hours < job.release) | (p.hours >= end)]
    if outside.size:
        c.add(
            CHECK,
            "window",
            f"runs in {outside.size} hour(s) outside [release, min(deadline, horizon end)) = [{job.release}, {end})",
            workload_id=job.job_id,
            site_id=p.site_id,
            hour=int(outside[0]),
        )


def stays_pinned(p: Placement) -> bool:
    """A running non-preemptible job that stays on its site cannot pause."""
    return (not p.job.preemptible) and p.job.current_site == p.site_id


def run_hours(c: Checker, p: Placement) -> None:
    """The job runs exactly the hours its work needs in this horizon (the rules of
    `optimizer/rules.py`, re-derived): a pinned job until done or the horizon ends; any other
    its in-horizon share on its type, plus the hours lost moving."""
    job, H = p.job, c.H
    end = min(job.deadline, H)
    tp = c.sc.accelerators[p.a].relative_throughput
    moved = job.current_site is not None and p.site_id != job.current_site
    c.jobs.moved[p.j] = moved
    if stays_pinned(p):
        # from its release until done or until the horizon ends
        total = ceil_hours(job.work_device_hours / (job.gang * tp))
        need = min(total, H - job.release)
        if job.deadline <= H and total > end - job.release:
            c.add(
                CHECK,
                "run_hours",
                f"needs {total} h to finish but only {end - job.release} h remain before its deadline",
                workload_id=job.job_id,
                site_id=p.site_id,
            )
        what = f"it stays running on {p.site_id}: {total} h to finish, {need} h in this horizon"
    else:
        lost = math.ceil(job.lost_hours_on_move - WHOLE_TOL) if moved else 0
        w_in = c.jobs.work_in_horizon[p.j]
        need = ceil_hours(w_in / (job.gang * tp)) + lost
        what = f"{w_in:g} device-h in this horizon / ({job.gang} x {tp:g})" + (
            f" + {lost} h lost moving" if lost else ""
        )
    if p.hours.size != need:
        word = "too few: work not done" if p.hours.size < need else "more than needed"
        c.add(
            CHECK,
            "run_hours",
            f"runs {p.hours.size} h, needs {need} h ({what}); {word}",
            workload_id=job.job_id,
            site_id=p.site_id,
            accelerator=p.acc_name,
            expected=need,
            actual=int(p.hours.size),
        )


def contiguous(c: Checker, p: Placement) -> None:
    """A non-preemptible job runs one block: from its release if it stays pinned, else up
    to the horizon end if its deadline lies beyond it."""
    job, hours, H = p.job, p.hours, c.H
    if job.preemptible or not hours.size:
        return
    gaps = np.flatnonzero(np.diff(hours) > 1)
    if gaps.size:
        c.add(
            CHECK,
            "contiguous",
            f"non-preemptible job pauses after hour {int(hours[gaps[0]])} ({gaps.size + 1} blocks)",
            workload_id=job.job_id,
            site_id=p.site_id,
            hour=int(hours[gaps[0]] + 1),
        )
    pinned = stays_pinned(p)
    if pinned and hours[0] != job.release:
        c.add(
            CHECK,
            "block_position",
            f"running non-preemptible job staying on its site must go on from hour {job.release}, starts at {int(hours[0])}",
            workload_id=job.job_id,
            site_id=p.site_id,
            hour=int(hours[0]),
        )
    if not pinned and job.deadline > H and hours[-1] != H - 1:
        c.add(
            CHECK,
            "block_position",
            f"deadline beyond the horizon: its block must end at the horizon end (hour {H - 1}), ends at {int(hours[-1])}",
            workload_id=job.job_id,
            site_id=p.site_id,
            hour=int(hours[-1]),
        )


# ------------------------------------------------------------------------------ moving
def migration_cny(c: Checker, job: Job, site_id: str) -> float:
    """Moving a running job: its data and the device-hours lost, weighted for stability."""
    if job.current_site is None or job.current_site == site_id:
        return 0.0
    pol = c.sc.policy
    return pol.plan_stability_weight * (
        job.data_gb * pol.transfer_price_cny_per_gb
        + job.lost_hours_on_move * job.gang * pol.lost_hour_cost_cny_per_device_hour
    )


def transfer_cny(c: Checker, job: Job, site_id: str) -> float:
    """Running a new job away from its data: the data moved."""
    if job.current_site is not None or not job.data_origin_site or job.data_origin_site == site_id:
        return 0.0
    return job.data_gb * c.sc.policy.transfer_price_cny_per_gb


def moved_and_costs(c: Checker, p: Placement, w: Workloads) -> None:
    """`moved` and the migration and transfer costs follow from the placement."""
    job, j, r, res = p.job, p.j, p.r, c.jobs
    jid = job.job_id
    res.migration_cny[j] = migration_cny(c, job, p.site_id)
    res.transfer_cny[j] = transfer_cny(c, job, p.site_id)
    if w.has_moved and cell_bool(w.df["moved"].iloc[r]) is not bool(res.moved[j]):
        c.add(
            CHECK,
            "moved",
            f"moved is {w.df['moved'].iloc[r]!r}, but current site {job.current_site!r} -> {p.site_id!r}",
            workload_id=jid,
        )
    if not w.has_costs:
        return
    for rule, column, given, want in (
        ("migration_cost", "migration_cost", w.migration[r], res.migration_cny[j]),
        ("transfer_cost", "data_transfer_cost", w.transfer[r], res.transfer_cny[j]),
    ):
        if not c.close(given, want):
            c.add(
                CHECK,
                rule,
                f"{column} {fmt(given)}, the policy gives {want:.6g}",
                workload_id=jid,
                expected=want,
                actual=given,
            )


def moves_table(c: Checker) -> None:
    """moves.csv (an extra) lists exactly the moved jobs."""
    mv = getattr(c.plan, "moves", None)
    if not (isinstance(mv, pd.DataFrame) and "workload_id" in mv.columns):
        return
    listed = set(c.text(mv, "workload_id"))
    moved_ids = {c.sc.jobs[j].job_id for j in np.flatnonzero(c.jobs.moved)}
    for jid in sorted(moved_ids - listed):
        c.add(
            CHECK,
            "moves_table",
            "moved running job missing from moves.csv",
            workload_id=jid,
            table="moves",
        )
    for jid in sorted(listed - moved_ids):
        c.add(
            CHECK,
            "moves_table",
            "moves.csv lists a job that is not moved",
            workload_id=jid,
            table="moves",
        )
