"""`python -m bench.first_lp CASE OUT_STEM [LIMIT_S]`: what pricing's first LP wants.

The first pricing LP gives the only bound there is; at the year's size (and L, XL) it does
not always end within its share. This plans CASE (`year`: `bench.year`'s 3,400 preemptible
jobs with `finish_by_limit` at 120 s; else a `bench.speed` case at 60 s) with that LP
captured where the planner hands it to `solve_relaxation`, then solves it on its own with
each of HiGHS' options below (one thread, LIMIT_S each, default 120) and reports the time,
the iterations and the objective of each. Writes OUT_STEM.jsonl and prints a table. No plan
is made from these LPs: it measures which options that LP wants.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import highspy
import numpy as np

import optimizer.planner as planner
from bench.speed import case_scenario, strategy_settings
from optimizer import optimize

OPTIONS: dict[str, dict[str, Any]] = {
    "interior point, no crossover (the planner's)": {"solver": "ipm", "run_crossover": "off"},
    "the same, optimality tolerance 1e-6 (1e-8)": {
        "solver": "ipm",
        "run_crossover": "off",
        "ipm_optimality_tolerance": 1e-6,
    },
    "the same, objective scaled by 2^-4 (HiGHS' advice)": {
        "solver": "ipm",
        "run_crossover": "off",
        "user_objective_scale": -4,
    },
    "dual simplex": {"solver": "simplex"},
    "PDLP, tolerance 1e-4": {"solver": "pdlp", "pdlp_optimality_tolerance": 1e-4},
}


class _Captured(Exception):
    """The first LP is in hand: the plan is not needed."""


def capture(case: str) -> highspy.HighsLp:
    """CASE's first pricing LP, integrality dropped, bounds as the planner sets them."""
    seen: dict[str, Any] = {}
    relax = planner.solve_relaxation

    def grab(h: highspy.Highs, *a: Any, **kw: Any) -> Any:
        seen["lp"] = h.getLp()
        raise _Captured

    planner.solve_relaxation = grab  # type: ignore[assignment]
    try:
        if case == "year":
            from bench.year import year_scenario, year_settings

            optimize(year_scenario(3400, True), year_settings(120, "finish"))
        else:
            optimize(case_scenario(case), strategy_settings("new", 60))
    except _Captured:
        pass
    finally:
        planner.solve_relaxation = relax
    lp: highspy.HighsLp = seen["lp"]
    return lp


def main(argv: list[str]) -> int:
    case, stem = argv[0], Path(argv[1])
    limit = float(argv[2]) if len(argv) > 2 else 120.0
    lp = capture(case)
    rows: list[dict[str, Any]] = []
    for name, opts in OPTIONS.items():
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("time_limit", limit)
        h.passModel(lp)
        n = lp.num_col_
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
        for k, v in opts.items():
            h.setOptionValue(k, v)
        load = os.getloadavg()[0]
        t = time.perf_counter()
        h.run()
        took = time.perf_counter() - t
        info = h.getInfo()
        ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        row: dict[str, Any] = {
            "case": case,
            "options": name,
            "s": round(took, 2),
            "objective": info.objective_function_value if ok else None,
            "ipm_iterations": info.ipm_iteration_count,
            "simplex_iterations": info.simplex_iteration_count,
            "pdlp_iterations": info.pdlp_iteration_count,
            "load_1min": round(load, 2),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    with stem.with_suffix(".jsonl").open("w") as out:
        for r in rows:
            out.write(json.dumps(r) + "\n")
    print(f"{case}: the first pricing LP, {lp.num_row_} rows, {lp.num_col_} columns")
    print("| options | s | iterations | objective | load |\n|---|---:|---:|---:|---:|")
    for r in rows:
        its = max(r["ipm_iterations"], r["simplex_iterations"], r["pdlp_iterations"])
        shown = (
            f"not solved in {limit:.0f} s" if r["objective"] is None else f"{r['objective']:,.1f}"
        )
        print(f"| {r['options']} | {r['s']:.1f} | {its} | {shown} | {r['load_1min']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
