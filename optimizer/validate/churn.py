"""Check family `churn`: replica starts and stops of every service and pauses of every job,
recounted from assignments.csv; their costs from the policy's rates (restated here, not
taken from the planner); the minimum up-time of started devices and the cap on pauses; and
churn.csv's counts (restarts after dips, starts avoided by holding, pauses), recounted.

Leaves `Checker.churn` (totals the `totals` family prices).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from optimizer.validate.services import throughput
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
    runs = _job_hours(c)
    services(c, row_of, said, said_cost)
    jobs(c, row_of, said, said_cost, runs)
    decisions(c, runs)


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
    c: Checker,
    row_of: dict[str, int],
    said: dict[str, np.ndarray],
    said_cost: np.ndarray,
    runs: list[np.ndarray],
) -> None:
    """Pauses from each job's run hours `runs` (blocks of consecutive hours less one)."""
    cap = c.sc.policy.max_pauses_per_job
    for job, h in zip(c.sc.jobs, runs, strict=True):
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


def _starts(path: np.ndarray) -> float:
    """Devices started over `path` [..., hour] (the first hour is carried in)."""
    return float(np.maximum(np.diff(path, axis=-1), 0.0).sum())


def decisions(c: Checker, runs: list[np.ndarray]) -> None:
    """churn.csv (an explanation; absent from older bundles): one `stop` row per service
    that restarts devices after a dip, one `hold` row per service holding devices beyond
    what its tokens need, one `pause` row per paused job, each with the count, device-hours
    and churn cost recounted here, and its net saving its costs' difference."""
    tab = getattr(c.plan, "churn", None)
    if tab is None or not len(tab.columns):
        return
    wid, dec = c.text(tab, "workload_id"), c.text(tab, "decision")
    said = {(w, d): i for i, (w, d) in enumerate(zip(wid, dec, strict=True))}
    want: dict[tuple[str, str], tuple[float, float, float]] = {}  # count, device-h, cost
    dev = c.services.devices.astype(float)  # [k, s, a, h]
    need = _needed(c, dev)
    per_start = start_cost(c)
    for k, svc in enumerate(c.sc.services):
        d = dev[k]
        # holding every stopped device until the path next needs it
        peak_before = np.maximum.accumulate(d, axis=-1)
        peak_after = np.maximum.accumulate(d[..., ::-1], axis=-1)[..., ::-1]
        filled = np.minimum(peak_before, peak_after)
        restarts = round(_starts(d) - _starts(filled))
        if restarts > 0:
            want[(svc.service_id, "stop")] = (
                restarts, float((filled - d).sum()), restarts * per_start
            )  # fmt: skip
        held = float((d - need[k]).sum())
        if held > 1e-6:
            saved = max(0, round(_starts(need[k]) - _starts(d)))
            want[(svc.service_id, "hold")] = (saved, held, saved * per_start)
    for job, run in zip(c.sc.jobs, runs, strict=True):
        pauses = int(np.count_nonzero(np.diff(run) > 1))
        if pauses:
            want[(job.job_id, "pause")] = (
                pauses, float(job.gang * run.size), pauses * pause_cost(c, job.gang)
            )  # fmt: skip
    count, dh, cost = c.num(tab, "count"), c.num(tab, "device_hours"), c.num(tab, "churn_cost")
    energy, net = c.num(tab, "energy_cost"), c.num(tab, "net_saving")
    for key, (n, h, money) in want.items():
        c.count(CHECK, 1)
        i = said.get(key)
        where = {"workload_id": key[0], "table": "churn"}
        if i is None:
            c.add(CHECK, "churn_table", f"churn.csv has no `{key[1]}` row", **where)
            continue
        for col, got, exp in (("count", count[i], n), ("device_hours", dh[i], h)):
            if not c.close(got, exp):
                c.add(
                    CHECK,
                    "churn_table",
                    f"`{key[1]}` {col} {fmt(got)}, the assignments give {fmt(exp)}",
                    expected=exp, actual=got, **where,
                )  # fmt: skip
        if not c.close(cost[i], money):
            c.add(
                CHECK,
                "churn_table",
                f"`{key[1]}` churn_cost {fmt(cost[i])}, the policy gives {money:.6g}",
                expected=money, actual=cost[i], **where,
            )  # fmt: skip
        sign = -1.0 if key[1] == "hold" else 1.0
        if np.isfinite(energy[i]) and not c.close(net[i], sign * (energy[i] - cost[i])):
            c.add(
                CHECK,
                "churn_table",
                f"`{key[1]}` net_saving {fmt(net[i])} is not its energy and churn costs' difference",
                **where,
            )
    for key in said:
        if key not in want:
            c.add(
                CHECK,
                "churn_table",
                f"churn.csv has a `{key[1]}` row the assignments do not give",
                workload_id=key[0],
                table="churn",
            )


def _needed(c: Checker, dev: np.ndarray) -> np.ndarray:
    """[k, s, a, h] whole devices the tokens of each service assignment row need, at most
    the row's devices."""
    need = np.zeros_like(dev)
    asg = c.table("assignments")
    assert asg is not None
    tp = throughput(c)
    ids, tok = c.text(asg, "workload_id"), c.num(asg, "tokens_per_s")
    site, acc, hour = (
        c.text(asg, "site_id"),
        c.text(asg, "accelerator"),
        c.row_hours("assignments", asg),
    )
    for i in np.flatnonzero(np.isfinite(tok)):
        k, s, a = c.svc_pos.get(ids[i]), c.site_pos.get(site[i]), c.acc_pos.get(acc[i])
        if k is None or s is None or a is None or hour[i] < 0 or tp[k, a] <= 0:
            continue  # reported by the service check
        need[k, s, a, hour[i]] = math.ceil(tok[i] / tp[k, a] - 1e-6)
    return np.clip(need, 0.0, dev)


def _job_hours(c: Checker) -> list[np.ndarray]:
    """Each job's run hours from assignments.csv, sorted (the scenario's job order)."""
    asg = c.table("assignments")
    assert asg is not None
    hours = pd.Series(c.row_hours("assignments", asg), index=asg.index)
    ids = pd.Series(c.text(asg, "workload_id"), index=asg.index)
    ok = hours >= 0
    by_job = {str(j): np.sort(g.to_numpy()) for j, g in hours[ok].groupby(ids[ok])}
    return [by_job.get(job.job_id, np.zeros(0, np.int64)) for job in c.sc.jobs]
