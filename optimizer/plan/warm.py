"""Warm start: a stored plan's decisions mapped back onto a (possibly newer) scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.plan.types import Plan, Schedule
from optimizer.scenario.types import Scenario


def schedule_from_plan(sc: Scenario, plan: Plan) -> Schedule:
    """The decisions of a stored plan (e.g. read from a bundle) on scenario `sc`.

    Workloads, sites and types are matched by id and hours by timestamp, so a plan made for
    an earlier version of the scenario (the previous night's) maps onto the new horizon:
    what no longer exists or lies outside the horizon is dropped. Used to warm-start.
    """
    sched = Schedule.empty(sc)
    a = plan.assignments
    if a is None or a.empty:
        return sched
    start = sc.start.tz_convert("UTC")
    hours = (
        ((pd.to_datetime(a["timestamp"], utc=True) - start).dt.total_seconds() // 3600)
        .astype(int)
        .to_numpy()
    )
    ok = (hours >= 0) & (hours < sc.hours)
    site = a["site_id"].map(sc.site_index)
    acc = a["accelerator"].map(sc.accelerator_index)
    ok &= site.notna().to_numpy() & acc.notna().to_numpy()
    job_index = {j.job_id: i for i, j in enumerate(sc.jobs)}
    svc_index = {k.service_id: i for i, k in enumerate(sc.services)}
    hours_of: dict[int, list[int]] = {}
    for wid, s, ac, h, n, good in zip(
        a["workload_id"], site, acc, hours, a["devices"], ok, strict=True
    ):
        if not good:
            continue
        if wid in job_index:
            j = job_index[wid]
            sched.job_site[j] = int(s)
            sched.job_acc[j] = int(ac)
            hours_of.setdefault(j, []).append(int(h))
        elif wid in svc_index:
            sched.svc_devices[svc_index[wid], int(s), int(ac), int(h)] = int(n)
    for j, hs in hours_of.items():
        sched.job_hours[j] = np.array(sorted(set(hs)), dtype=np.int64)
    sched.job_lane = _lanes(plan, job_index)
    flows = plan.service_flows
    if flows is not None and not flows.empty:
        fh = (
            ((pd.to_datetime(flows["timestamp"], utc=True) - start).dt.total_seconds() // 3600)
            .astype(int)
            .to_numpy()
        )
        for wid, r, s, h, v in zip(
            flows["service_id"],
            flows["demand_region"],
            flows["site_id"],
            fh,
            flows["tokens_per_s"],
            strict=True,
        ):
            if (
                wid in svc_index
                and r in sc.region_index
                and s in sc.site_index
                and 0 <= h < sc.hours
            ):
                sched.flows[svc_index[wid], sc.region_index[r], sc.site_index[s], h] = float(v)
    return sched


def lane_ids(plan: Plan) -> dict[str, str]:
    """Each flexible job's lane (workloads.csv `lane_id`), by workload id, in the plan's
    order; empty where the plan has no lanes."""
    wl = plan.workloads
    if wl is None or "lane_id" not in wl.columns:
        return {}
    return {
        w: lane
        for w, lane in zip(wl["workload_id"], wl["lane_id"], strict=True)
        if isinstance(lane, str) and lane
    }


def _lanes(plan: Plan, job_index: dict[str, int]) -> np.ndarray | None:
    """[job] the flexible lane of each job (`lane_ids`, numbered in order of appearance),
    -1 for none; None when the plan has no lanes."""
    lane = np.full(len(job_index), -1, dtype=np.int64)
    number: dict[str, int] = {}
    for wid, lid in lane_ids(plan).items():
        if wid in job_index:
            lane[job_index[wid]] = number.setdefault(lid, len(number))
    return lane if number else None
