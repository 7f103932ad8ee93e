"""A week of trace-like jobs on the default fleet: `python -m bench.trace_week [jobs]
[time_limit_s]` builds the trace-calibrated workload (optimizer.workloads) for 168 h with
`jobs` jobs, plans it and prints whether the plan has a bound, how long it took and whether
every job is accounted for and the plan validates (issue 17's target: 20,000 jobs within
300 s on 2 cores, with a bound)."""

from __future__ import annotations

import sys
import time

from optimizer import SolverSettings, optimize
from optimizer.generator import build_scenario
from optimizer.validate import validate_plan

START = "2025-07-15T00:00+08:00"  # the default scenario's start
HOURS = 168
SEED = 7


def main(n_jobs: int, time_limit_s: float) -> None:
    t0 = time.perf_counter()
    sc = build_scenario(
        "cn-edwc", START, HOURS, n_jobs, 30, SEED, workload="trace-calibrated", name="trace-week"
    )
    t1 = time.perf_counter()
    plan = optimize(sc, SolverSettings(backend="matrix", threads=1, time_limit_s=time_limit_s))
    t2 = time.perf_counter()
    report = validate_plan(sc, plan)
    s = plan.summary
    accounted = set(plan.workloads["workload_id"]) >= {j.job_id for j in sc.jobs}
    print(
        f"{len(sc.jobs):,} jobs ({len(sc.warnings)} larger than every fleet), {HOURS} h: "
        f"build {t1 - t0:.0f} s, plan {t2 - t1:.0f} s; status {s['status']}, bound {s['bound']}, "
        f"gap {s['gap']}; {s['unplaced']} unplaced; every job in the bundle: {accounted}; "
        f"valid: {report.ok}; CPU time {time.process_time():.0f} s"
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
        float(sys.argv[2]) if len(sys.argv) > 2 else 300.0,
    )
