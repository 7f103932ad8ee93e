"""`python -m bench.workers CASE REPS OUT_STEM`: the churn-aware completion with its class LPs
one at a time (`lp_workers=1`) and two side by side (`lp_workers=2`), at equal work.

CASE as in `bench.speed` (`default`, `M`, ...). Its cold plan (the defaults, 60 s) gives the
job plan; that job plan is then completed churn-aware (`planner._complete`, the step the
churn-aware pass and each of the guard's tries run) on the scenario itself and on the
shadow scenario of the guard's first try with every criterion to improve
(`guard.Search.start`), 1 and 2 workers alternately, REPS times each. Every completion is
assembled and passed through the independent validator, and the two worker counts must give
the same plan (objective within 1e-6, relative). Writes OUT_STEM.jsonl (one line per completion) and
prints a summary table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.speed import case_scenario
from optimizer import SolverSettings, guard, optimize
from optimizer.plan import assemble_plan
from optimizer.planner import _complete, _jobs_only
from optimizer.validate import validate_plan


def main(argv: list[str]) -> int:
    case, reps, stem = argv[0], int(argv[1]), Path(argv[2])
    sc = case_scenario(case)
    settings = SolverSettings(time_limit_s=60, threads=1, seed=0)
    plan = optimize(sc, settings)
    assert plan.schedule is not None
    jobs = _jobs_only(sc, plan.schedule)
    unit, scale = guard.unit_weights(sc), guard.Search.start(set(guard.WEIGHED)).scale
    first = {k: unit[k] * scale[k] for k in guard.WEIGHED}
    worlds = {"plain": sc, "guard_first": guard.shadow_scenario(sc, first)}
    rows: list[dict[str, Any]] = []
    with stem.with_suffix(".jsonl").open("w") as out:
        for world, shadow in worlds.items():
            for rep in range(reps):
                for workers in (1, 2):
                    s = dataclasses.replace(settings, lp_workers=workers)
                    load = os.getloadavg()[0]
                    t = time.perf_counter()
                    done = _complete(shadow, jobs, s, churn_aware=True)
                    wall = time.perf_counter() - t
                    assert done is not None
                    # costed on the scenario itself, as the guard costs its tries (a plan
                    # assembled on its own, without the baselines a returned plan carries)
                    p = assemble_plan(sc, done, status="baseline")
                    report = validate_plan(sc, p)
                    row = {
                        "case": case, "world": world, "rep": rep, "workers": workers,
                        "wall_s": round(wall, 2), "objective": p.summary["objective"],
                        "valid": report.ok, "load_1min": round(load, 2),
                    }  # fmt: skip
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(row, file=sys.stderr, flush=True)
    print("| case | world | 1 worker (s) | 2 workers (s) | ratio | same plan | valid |")
    print("|---|---|---:|---:|---:|---|---|")
    for world in worlds:
        by = {k: [r for r in rows if r["world"] == world and r["workers"] == k] for k in (1, 2)}
        one, two = (statistics.median(r["wall_s"] for r in by[k]) for k in (1, 2))
        objs = [r["objective"] for r in by[1] + by[2]]
        same = max(objs) - min(objs) <= 1e-6 * abs(objs[0])
        valid = all(r["valid"] for r in by[1] + by[2])
        print(f"| {case} | {world} | {one:.1f} | {two:.1f} | {two / one:.2f}x | {same} | {valid} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
