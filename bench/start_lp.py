"""`python -m bench.start_lp CASE OUT_STEM`: what stage 1 spends stopped at its start.

With `stage1_incumbents=0` stage 1's HiGHS run is, almost all of it, the LP HiGHS solves to
make an incumbent of the start (the start's integers fixed, the rest optimised) before its
MIP begins. This solves CASE cold (the defaults, 60 s, no guard) with stage 1's model and
start captured where the planner hands them to `solve_loaded`, then solves that LP on its
own with each of HiGHS' LP algorithms (one thread, 30 s each) and reports the time and
objective of each beside the planner's own stage-1 call. Writes OUT_STEM.jsonl and prints a
table. No plan is made from these LPs: it measures which algorithm that LP wants.
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
from bench.speed import case_scenario
from optimizer import SolverSettings, optimize

ALGORITHMS: dict[str, dict[str, Any]] = {
    "dual simplex (HiGHS' choice)": {},
    "primal simplex": {"simplex_strategy": 4},
    "interior point, no crossover": {"solver": "ipm", "run_crossover": "off"},
    "interior point, crossover": {"solver": "ipm", "run_crossover": "on"},
    "dual simplex, no presolve": {"presolve": "off"},
    "PDLP": {"solver": "pdlp"},
}


def start_lp(lp: Any, ints: np.ndarray, fixed: np.ndarray, opts: dict[str, Any]) -> highspy.Highs:
    """`lp` (stage 1's MIP) as an LP with its integer columns `ints` fixed at `fixed`."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", 30.0)
    h.passModel(lp)
    n = lp.num_col_
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
    h.changeColsBounds(ints.size, ints.astype(np.int32), fixed, fixed)
    for k, v in opts.items():
        h.setOptionValue(k, v)
    return h


def main(argv: list[str]) -> int:
    case, stem = argv[0], Path(argv[1])
    seen: dict[str, Any] = {}
    solve_loaded = planner.solve_loaded

    def capture(h: highspy.Highs, m: Any, col_map: np.ndarray, settings: Any, **kw: Any) -> Any:
        lp = h.getLp()
        pos = np.full(m.n_cols, -1, dtype=np.int64)
        pos[col_map] = np.arange(col_map.size)
        cols, vals = kw["start"]
        at = dict(zip(pos[cols].tolist(), vals.tolist(), strict=True))
        ints = np.flatnonzero(np.asarray(lp.integrality_, dtype=int) > 0)
        # a start with every integer given: HiGHS' LP of it is this LP, not a sub-MIP
        assert all(int(i) in at for i in ints), "the start leaves integers open"
        seen["lp"], seen["ints"] = lp, ints
        seen["fixed"] = np.array([round(at[int(i)]) for i in ints], dtype=float)
        t = time.perf_counter()
        res = solve_loaded(h, m, col_map, settings, **kw)
        seen["stage1"] = {"s": time.perf_counter() - t, "objective": res.objective}
        return res

    planner.solve_loaded = capture  # type: ignore[assignment]
    try:
        settings = SolverSettings(time_limit_s=60, threads=1, seed=0, dominance_guard_rounds=0)
        optimize(case_scenario(case), settings)
    finally:
        planner.solve_loaded = solve_loaded
    rows = [
        {"algorithm": "the planner's stage 1 (HiGHS MIP, stopped at its start)"} | seen["stage1"]
    ]
    for name, opts in ALGORITHMS.items():
        h = start_lp(seen["lp"], seen["ints"], seen["fixed"], opts)
        t = time.perf_counter()
        h.run()
        ok = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        obj = h.getInfo().objective_function_value if ok else None
        rows.append({"algorithm": name, "s": time.perf_counter() - t, "objective": obj})
    load = os.getloadavg()[0]
    with stem.with_suffix(".jsonl").open("w") as out:
        for r in rows:
            out.write(json.dumps({"case": case, "load_1min": round(load, 2)} | r) + "\n")
    print(f"{case}: stage 1's LP of the start, {seen['ints'].size} integers fixed; load {load:.2f}")
    print("| algorithm | s | objective |\n|---|---:|---:|")
    for r in rows:
        shown = "not solved in 30 s" if r["objective"] is None else f"{r['objective']:,.1f}"
        print(f"| {r['algorithm']} | {r['s']:.2f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
