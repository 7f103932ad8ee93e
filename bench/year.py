"""A year on one site (issue 16, "any horizon"): `python -m bench.year [jobs] [time_limit_s]
[preemptible|contiguous] [out.jsonl|-] [finish|exact|stage1_full]` generates a leap year (8,784 h, the
scenario schema's longest horizon) on one site of the default region with `jobs` jobs whose
run times are drawn uniformly from 4-90 h, all preemptible or all contiguous, plans it at
the time limit (one HiGHS thread, the matrix backend; `finish`:
`SolverSettings.finish_by_limit`; `exact`: the exact MILP, what `integer_devices="auto"`
chose for it before `exact_job_hour_limit`; `stage1_full`: stage 1 without
`stage1_incumbents`' stop), validates the plan and prints wall time, the
plan's phases, peak memory, status, bound and gap, with the load average. The done-when
row: 3,000+ jobs within 120 s and 4 GB. One case per process, so that ru_maxrss is that
case's peak.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.report import solved
from optimizer import SolverSettings, optimize
from optimizer.generator import build_scenario
from optimizer.scenario import Scenario, scenario_from_tables, scenario_to_tables
from optimizer.scenario.schema import MAX_HORIZON_HOURS
from optimizer.validate import validate_plan

REGION = "cn-edwc"
START = "2028-01-01T00:00+08:00"  # a leap year: 8,784 h
SEED = 16
RUN_H = (4.0, 90.0)  # run times (h) on the fastest type the job accepts
SLACK = (1.3, 3.0)  # deadline = release + run time x slack


def year_scenario(n_jobs: int, preemptible: bool, hours: int = MAX_HORIZON_HOURS) -> Scenario:
    """One site, `hours` from START, `n_jobs` generated jobs (no inference services) whose run
    times are redrawn uniformly in RUN_H and deadlines at a slack in SLACK, all `preemptible`
    or all contiguous. The generator's own run times follow its target utilisation (a year
    of them would be capped by its kinds' ranges); the releases, gangs and types are its."""
    sc = build_scenario(REGION, START, hours, n_jobs, 0, SEED, n_sites=1, name="year")
    manifest, tables = scenario_to_tables(sc)
    jobs = tables["jobs"].copy()
    rng = np.random.default_rng(SEED)
    run_h = rng.uniform(*RUN_H, len(jobs))
    slack = rng.uniform(*SLACK, len(jobs))
    rel = {a.accelerator: a.relative_throughput for a in sc.accelerators}
    fastest = jobs["accelerators"].map(lambda s: max(rel[a] for a in str(s).split(";")))
    release = pd.to_datetime(jobs["release"])
    jobs["work_device_hours"] = np.round(jobs["gang"].astype(float) * run_h * fastest, 4)
    jobs["deadline"] = [
        (r + pd.Timedelta(hours=math.ceil(h * k))).isoformat()
        for r, h, k in zip(release, run_h, slack, strict=True)
    ]
    jobs["preemptible"] = "true" if preemptible else "false"
    jobs["current_site"] = ""  # no job running at the start: every one free to start at its release
    tables["jobs"] = jobs
    return scenario_from_tables(manifest, tables)


def year_settings(time_limit_s: float, how: str = "") -> SolverSettings:
    """The settings a year is planned with: one HiGHS thread, the matrix backend; `how`
    `finish` (`finish_by_limit`), `exact` (the whole MILP) or `stage1_full`."""
    return SolverSettings(
        backend="matrix",
        threads=1,
        time_limit_s=time_limit_s,
        finish_by_limit=how == "finish",
        integer_devices="exact" if how == "exact" else "auto",
        # stage 1 to its limit, as before it stopped at the start (issue 16)
        stage1_incumbents=None if how == "stage1_full" else SolverSettings.stage1_incumbents,
    )


def _peak_rss_mb() -> float:
    """This process's peak resident set (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(
    n_jobs: int, time_limit_s: float, mode: str, out: str | None, how: str = ""
) -> dict[str, Any]:
    """Build, plan and validate one case; print it and write it to `out` (JSON) if given."""
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    sc = year_scenario(n_jobs, mode == "preemptible")
    t1 = time.perf_counter()
    rss_scenario = _peak_rss_mb()
    settings = year_settings(time_limit_s, how)
    plan = optimize(sc, settings)
    t2 = time.perf_counter()
    report = validate_plan(sc, plan)
    t3 = time.perf_counter()
    s = plan.summary
    guard = s["solver"].get("guard", {})
    demand = sum(j.work_device_hours for j in sc.jobs)
    result = {
        "case": f"year-{mode}",
        "hours": sc.hours,
        "sites": len(sc.sites),
        "jobs": len(sc.jobs),
        "job_work_device_hours": round(demand),
        "time_limit_s": time_limit_s,
        "finish_by_limit": settings.finish_by_limit,
        "integer_devices": settings.integer_devices,
        "large_instance": s["solver"].get("large_instance"),
        "job_options": s["solver"].get("job_options"),
        "stage1": s["solver"].get("stage1"),
        "guard": {k: v for k, v in guard.items() if k != "tries"}
        | {"tries": len(guard.get("tries", []))},
        "build_scenario_s": round(t1 - t0, 1),
        "plan_wall_s": round(t2 - t1, 1),
        "validate_s": round(t3 - t2, 1),
        "peak_rss_mb_after_scenario": round(rss_scenario),
        "peak_rss_mb": round(_peak_rss_mb()),
        **solved(s, report, load_start),
    }
    print(
        f"{mode}: {len(sc.jobs):,} jobs x {sc.hours:,} h on 1 site: plan {t2 - t1:.0f} s wall "
        f"(limit {time_limit_s:g} s), peak RSS {result['peak_rss_mb']:,} MB; status "
        f"{s['status']}, gap {s['gap']}; {s['unplaced']} unplaced; valid {report.ok}"
    )
    print(json.dumps(result, default=str))
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(result, default=str) + "\n")
    return result


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 3_400,
        float(sys.argv[2]) if len(sys.argv) > 2 else 120.0,
        sys.argv[3] if len(sys.argv) > 3 else "preemptible",
        sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None,
        sys.argv[5] if len(sys.argv) > 5 else "",
    )
