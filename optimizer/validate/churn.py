"""Check family `churn`: replica starts and stops of every service and pauses of every job,
recounted from assignments.csv; their costs from the policy's rates (restated here, not
taken from the planner); the minimum up-time of started devices and the cap on pauses.

Leaves `Checker.churn` (totals the `totals` family prices).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optimizer.validate.state import Checker, ChurnFindings, cell_text, fmt

CHECK = "churn"
MIN_PER_HOUR = 60.0


def start_cost(c: Checker) -> float:
    """Per inference device started: warm-up minutes at the value of a device-hour, plus the
    policy's fixed cost per start."""
    pol = c.sc.policy
    return (
        pol.replica_warmup_min / MIN_PER_HOUR * pol.lost_hour_cost_cny_per_device_hour
        + pol.replica_start_cost_cny
    )


def pause_cost(c: Checker, gang: int) -> float:
    """Per pause of a job: its whole gang checkpoints and restores."""
    pol = c.sc.policy
    hours = (pol.checkpoint_min + pol.restore_min) / MIN_PER_HOUR
    return hours * gang * pol.lost_hour_cost_cny_per_device_hour


def check(c: Checker) -> None:
    c.churn = ChurnFindings()
    if not c.usable("workloads", "assignments"):
        return  # reported by the bundle check; the totals leave churn unknown
    wl = c.table("workloads")
    assert wl is not None
    row_of = {cell_text(w): i for i, w in enumerate(wl["workload_id"].to_numpy(dtype=object))}
    said = {col: c.num(wl, col) for col in ("replica_starts", "replica_stops", "pauses")}
    said_cost = c.num(wl, "churn_cost")
    services(c, row_of, said, said_cost)
    jobs(c, row_of, said, said_cost)


def services(
    c: Checker, row_of: dict[str, int], said: dict[str, np.ndarray], said_cost: np.ndarray
) -> None:
    """Starts and stops from the devices of each (service, site, type) hour to hour; the
    minimum up-time where the service has demand the site can serve."""
    dev = c.services.devices.astype(float)  # [k, s, a, h]
    step = np.diff(dev, axis=-1)
    starts = np.maximum(step, 0.0)
    stops = np.maximum(-step, 0.0)
    per_start = start_cost(c)
    for k, svc in enumerate(c.sc.services):
        n_starts, n_stops = int(starts[k].sum()), int(stops[k].sum())
        c.churn.replica_starts += n_starts
        c.churn.replica_stops += n_stops
        c.churn.replica_start_cost += n_starts * per_start
        r = row_of.get(svc.service_id)
        if r is not None:
            restated(
                c, svc.service_id, r, said, said_cost, n_starts, n_stops, 0, n_starts * per_start
            )
        c.count(CHECK, 1)
    up = max(1, math.ceil(c.sc.policy.replica_min_up_hours - 1e-9))
    if up > 1 and dev.shape[-1] > 1:
        min_up(c, dev, starts, up)


def servable(c: Checker) -> np.ndarray:
    """[service, site, hour]: the service has demand the site can serve within its latency."""
    sc = c.sc
    demand = np.asarray(sc.demand_tokens_per_s, dtype=float)
    out = np.zeros((len(sc.services), len(sc.sites), c.H), dtype=bool)
    for k, svc in enumerate(sc.services):
        for (site_id, region), ms in sc.latency_ms.items():
            if ms <= svc.latency_limit_ms and region in c.region_pos and site_id in c.site_pos:
                out[k, c.site_pos[site_id]] |= demand[k, c.region_pos[region]] > 0
    return out


def min_up(c: Checker, dev: np.ndarray, starts: np.ndarray, up: int) -> None:
    """Devices started in the last `up` hours are still up (where the service has demand
    the site can serve that hour)."""
    # started[..., h] for h >= 1: starts[..., h - 1]; hour 0 is the state carried in
    started = np.concatenate([np.zeros(dev.shape[:-1] + (1,)), starts], axis=-1)
    window = np.zeros_like(dev)
    for lag in range(up):
        window[..., lag:] += started[..., : dev.shape[-1] - lag]
    ok = servable(c)[:, :, None, :]
    bad = np.argwhere((dev + 1e-6 < window) & ok)
    for k, s, a, h in bad[:20]:
        c.add(
            CHECK,
            "min_up_time",
            f"{fmt(window[k, s, a, h])} devices started within {up} h but only "
            f"{fmt(dev[k, s, a, h])} up",
            workload_id=c.sc.services[k].service_id,
            site_id=c.site_ids[s],
            accelerator=c.acc_names[a],
            hour=int(h),
        )


def jobs(
    c: Checker, row_of: dict[str, int], said: dict[str, np.ndarray], said_cost: np.ndarray
) -> None:
    """Pauses from each job's run hours (blocks of consecutive hours less one)."""
    asg = c.table("assignments")
    assert asg is not None
    hours = pd.Series(c.row_hours("assignments", asg), index=asg.index)
    ids = pd.Series(c.text(asg, "workload_id"), index=asg.index)
    ok = hours >= 0
    by_job = {str(j): np.sort(g.to_numpy()) for j, g in hours[ok].groupby(ids[ok])}
    cap = c.sc.policy.max_pauses_per_job
    for job in c.sc.jobs:
        h = by_job.get(job.job_id, np.zeros(0, np.int64))
        pauses = int(np.count_nonzero(np.diff(h) > 1))
        cost = pauses * pause_cost(c, job.gang)
        c.churn.pauses += pauses
        c.churn.pause_cost += cost
        r = row_of.get(job.job_id)
        if r is not None:
            restated(c, job.job_id, r, said, said_cost, 0, 0, pauses, cost)
        if cap is not None and pauses > cap + 1e-9:
            c.add(
                CHECK,
                "max_pauses",
                f"pauses {pauses} times, the policy allows {fmt(cap)}",
                workload_id=job.job_id,
                expected=cap,
                actual=pauses,
            )
        c.count(CHECK, 1)


def restated(
    c: Checker,
    wid: str,
    r: int,
    said: dict[str, np.ndarray],
    said_cost: np.ndarray,
    starts: int,
    stops: int,
    pauses: int,
    cost: float,
) -> None:
    """workloads.csv's churn columns (where present) say what the assignments give."""
    for col, want in (("replica_starts", starts), ("replica_stops", stops), ("pauses", pauses)):
        got = said[col][r]
        if not np.isnan(got) and not c.close(got, want):
            c.add(
                CHECK,
                col,
                f"{col} {fmt(got)}, the assignments give {want}",
                workload_id=wid,
                table="workloads",
                expected=want,
                actual=got,
            )
    got = said_cost[r]
    if not np.isnan(got) and not c.close(got, cost):
        c.add(
            CHECK,
            "churn_cost",
            f"churn_cost {fmt(got)}, the policy gives {cost:.6g}",
            workload_id=wid,
            table="workloads",
            expected=cost,
            actual=got,
        )
