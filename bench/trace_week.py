"""A week of trace-like jobs on the default fleet: `python -m bench.trace_week [jobs]
[time_limit_s] [flexible_jobs] [pricing_solver] [finish]` builds the trace-calibrated workload
(optimizer.workloads) for 168 h with `jobs` jobs, plans it and prints whether the plan has a
bound, how long it took (wall and CPU), the model's size, how the short jobs were aggregated
(optimizer/flexible.py; `flexible_jobs` auto|on|off, default auto; `pricing_solver`
auto|simplex|ipm, default the planner's; `finish`: `SolverSettings.finish_by_limit`, the whole
call within the time limit), what the dominance guard did, and whether every job is
accounted for and the plan validates (issue 17's target: 20,000 jobs within 300 s on 2
cores, with a bound). The last line is the same as JSON, for bench/results/."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from bench.report import solved
from optimizer import SolverSettings, optimize
from optimizer.generator import build_scenario
from optimizer.validate import validate_plan

START = "2025-07-15T00:00+08:00"  # the default scenario's start
HOURS = 168
SEED = 7


def main(
    n_jobs: int,
    time_limit_s: float,
    flexible: str = "auto",
    pricing: str | None = None,
    finish: bool = False,
) -> dict[str, Any]:
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    sc = build_scenario(
        "cn-edwc", START, HOURS, n_jobs, 30, SEED, workload="trace-calibrated", name="trace-week"
    )
    t1, c1 = time.perf_counter(), time.process_time()
    settings = SolverSettings(
        backend="matrix",
        threads=1,
        time_limit_s=time_limit_s,
        flexible_jobs=flexible,  # type: ignore[arg-type]
        pricing_solver=pricing or SolverSettings.pricing_solver,  # type: ignore[arg-type]
        finish_by_limit=finish,
    )
    plan = optimize(sc, settings)
    t2, c2 = time.perf_counter(), time.process_time()
    report = validate_plan(sc, plan)
    s = plan.summary
    in_bundle = set(plan.workloads["workload_id"])
    out = {
        "jobs": len(sc.jobs),
        "larger_than_every_fleet": len(sc.warnings),
        "flexible_jobs": flexible,
        "pricing_solver": settings.pricing_solver,
        "finish_by_limit": finish,
        "guard": {k: v for k, v in s["solver"].get("guard", {}).items() if k != "tries"},
        "guard_tries": len(s["solver"].get("guard", {}).get("tries", [])),
        "stage1": s["solver"].get("stage1"),
        "churn_aware": s["solver"].get("churn_aware"),
        "completion_s": s["solver"].get("completion_s"),
        "candidates": s["solver"].get("candidates"),
        "build_scenario_s": round(t1 - t0, 1),
        "plan_wall_s": round(t2 - t1, 1),
        "plan_cpu_s": round(c2 - c1, 1),
        "flexible": s["solver"].get("flexible"),
        "job_options": s["solver"].get("job_options"),
        "every_job_in_bundle": all(j.job_id in in_bundle for j in sc.jobs),
        **solved(s, report, load_start),
    }
    print(
        f"{len(sc.jobs):,} jobs ({len(sc.warnings)} larger than every fleet), {HOURS} h, "
        f"flexible {flexible}: plan {t2 - t1:.0f} s wall, {c2 - c1:.0f} s CPU; status "
        f"{s['status']}, bound {s['bound']}, gap {s['gap']}; {s['unplaced']} unplaced; every "
        f"job in the bundle: {out['every_job_in_bundle']}; valid: {report.ok}"
    )
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
        float(sys.argv[2]) if len(sys.argv) > 2 else 300.0,
        sys.argv[3] if len(sys.argv) > 3 else "auto",
        sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "auto" else None,
        len(sys.argv) > 5 and sys.argv[5] == "finish",
    )
