"""Check the flexible lanes (issue 17): short jobs that share a lane's devices
(`workloads.csv` `lane_id`, rule in optimizer/flexible.py, re-derived here on its own).

Each job of a lane was checked as usual by the `jobs` family (window, types, regions, its
hour, its gang). Here: a lane's jobs run at one site, on one type, in one hour, with one
gang; each is short by the line (gang <= 8, under an hour on that type, not running); their
run times on that type sum to at most one hour (the lane's devices are never over-filled);
and the lane's devices count once per hour in the busy devices the capacity check sums.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from optimizer.validate.state import Checker, work_in_horizon

CHECK = "jobs"
MAX_GANG = 8  # devices: the line of optimizer/flexible.py, restated (the validator re-derives)
LANE_H = 1.0  # h: a lane is one hour of its devices


def check(c: Checker) -> None:
    wl, asg = c.table("workloads"), c.table("assignments")
    if wl is None or asg is None or "lane_id" not in wl.columns:
        return
    lane_of = {
        w: x for w, x in zip(c.text(wl, "workload_id"), c.text(wl, "lane_id"), strict=True) if x
    }
    if not lane_of:
        return
    ids = c.text(asg, "workload_id")
    tok = c.num(asg, "tokens_per_s")
    site, acc = c.text(asg, "site_id"), c.text(asg, "accelerator")
    dev, hour = c.num(asg, "devices"), c.row_hours("assignments", asg)
    rows: dict[str, list[int]] = defaultdict(list)  # lane -> its jobs' assignment rows
    for i, w in enumerate(ids):
        if w in lane_of and w in c.job_pos and not np.isfinite(tok[i]):
            rows[lane_of[w]].append(i)
    c.count(CHECK, len(rows))
    for lane, r in rows.items():
        _one_lane(c, lane, r, ids, site, acc, dev, hour)


def _one_lane(
    c: Checker,
    lane: str,
    r: list[int],
    ids: np.ndarray,
    site: np.ndarray,
    acc: np.ndarray,
    dev: np.ndarray,
    hour: np.ndarray,
) -> None:
    places = {(site[i], acc[i], int(hour[i]), dev[i]) for i in r}
    if len(places) != 1:
        c.add(
            CHECK,
            "flexible_lane",
            f"lane {lane}: its jobs run at {len(places)} different (site, type, hour, gang); "
            "a lane is one hour of one gang of devices of one type at one site",
            workload_id=str(ids[r[0]]),
            table="workloads",
        )
        return
    s_id, a_name, h, g = next(iter(places))
    s, a = c.site_pos.get(s_id, -1), c.acc_pos.get(a_name, -1)
    if s < 0 or a < 0 or h < 0 or not np.isfinite(g):
        return  # reported by the jobs family
    tp = c.sc.accelerators[a].relative_throughput
    total = 0.0
    for i in r:
        job = c.sc.jobs[c.job_pos[ids[i]]]
        t = work_in_horizon(c, job) / (job.gang * tp)
        total += t
        if job.gang > MAX_GANG or t >= LANE_H or job.current_site is not None:
            c.add(
                CHECK,
                "flexible_line",
                f"in lane {lane} but not a short job: gang {job.gang} (at most {MAX_GANG}), "
                f"{t:.3g} h on {a_name} (under {LANE_H:g} h), running at "
                f"{job.current_site or 'no site'}",
                workload_id=job.job_id,
            )
    if not c.le(total, LANE_H):
        c.add(
            "capacity",
            "flexible_lane_overfill",
            f"lane {lane}: its {len(r)} jobs run {total:.4g} h on {a_name}, more than the "
            f"lane's {LANE_H:g} h",
            site_id=s_id,
            accelerator=a_name,
            hour=h,
            expected=LANE_H,
            actual=total,
        )
    # the jobs family summed every job's gang; the lane's devices count once
    c.jobs.busy[s, a, h] -= int(round(g)) * (len(r) - 1)
