"""`python -m bench.ipm_tolerance OUT_STEM [--cold PLAN.pkl] [--repeat N] [--factors F,..]`:
what the pricing LPs' interior-point tolerance (`planner._ipm_tolerance`) buys and costs.

It captures the default scenario's last pricing LP with replica starts, cold (a 60 s solve,
or the plan `--cold`'s scenario re-solved to capture it) and warm from that cold plan after
each change of `bench.changes` (the LP a warm re-solve builds, solved or not), and solves
each on its own by interior point without crossover (one thread, bounds as the planner sets
them), at HiGHS' own tolerance and at the planner's (or at each `--factors` F in place of
`planner.IPM_STOP_OF_CLOSE`), N times each in turn. It reports the
time, the iterations, HiGHS' status, the value HiGHS reports and the Lagrangian bound of the
row duals (`dual_bound.lagrangian`, what a round's bound is made of): the bound given up is
the exact solve's bound less the stopped one's. Writes OUT_STEM.jsonl and OUT_STEM.md. No
plan is made from these LPs.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import optimizer.planner as planner
from bench.changes import CHANGES
from bench.speed import case_scenario, changed_scenario, strategy_settings
from optimizer import Plan, optimize
from optimizer.model import dual_bound
from optimizer.model.core import LinearModel
from optimizer.solve import SolverSettings, solve_relaxation

BUDGET_S = 60.0
LIMIT_S = 600.0  # each LP's own solve, alone (the planner's share of the budget does not apply)


def capture(sc: Any, settings: SolverSettings, warm: Plan | None) -> LinearModel:
    """The last pricing LP with replica starts the planner builds for `sc`."""
    seen: list[LinearModel] = []
    build = planner._pricing_lp

    def grab(run: Any, options: Any, *, tight: bool, starts: bool) -> Any:
        m, d = build(run, options, tight=tight, starts=starts)
        if starts:
            seen.append(m)
        return m, d

    planner._pricing_lp = grab  # type: ignore[assignment]
    try:
        optimize(sc, settings, warm_start=warm)
    finally:
        planner._pricing_lp = build  # type: ignore[assignment]
    return seen[-1]


def solve(m: LinearModel, settings: SolverSettings, tolerance: float | None) -> dict[str, Any]:
    """`m` by interior point without crossover, loaded as the planner's pricing round loads
    it (`planner.pricing_highs`), at `tolerance` (None: HiGHS' own)."""
    h, col_map = planner.pricing_highs(m, settings, interior=True, time_limit_s=LIMIT_S)
    h.setOptionValue(
        "ipm_optimality_tolerance", planner.HIGHS_IPM_TOLERANCE if tolerance is None else tolerance
    )
    load = os.getloadavg()[0]
    t = time.perf_counter()
    x, z = solve_relaxation(h, m, col_map, interior=True, stopped=True)
    took = time.perf_counter() - t
    y = np.asarray(h.getSolution().row_dual, dtype=float)
    value, _ = dual_bound.lagrangian(m, y) if x is not None else (None, {})
    return {
        "tolerance": tolerance,
        "s": round(took, 2),
        "iterations": int(h.getInfo().ipm_iteration_count),
        "status": h.modelStatusToString(h.getModelStatus()),
        "value": z,
        "lagrangian": value,
        "load_1min": round(load, 2),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ipm_tolerance", description=__doc__)
    ap.add_argument("out", type=Path, help="results stem")
    ap.add_argument("--cold", type=Path, help="the default scenario's cold plan, pickled")
    ap.add_argument("--repeat", type=int, default=2, help="solves per tolerance, in turn")
    ap.add_argument(
        "--factors",
        help="comma-separated stand-ins for planner.IPM_STOP_OF_CLOSE (default: the planner's)",
    )
    args = ap.parse_args(argv)
    settings = strategy_settings("new", BUDGET_S)
    loose = planner._ipm_tolerance(settings)
    tolerances: list[float | None] = [None, loose]
    if args.factors:
        factors = (float(f) for f in args.factors.split(","))
        tolerances = [None, *(planner._ipm_tolerance(settings, f) for f in factors)]
    base = case_scenario("default")
    cold: Plan = pickle.loads(args.cold.read_bytes()) if args.cold else optimize(base, settings)
    lps = {"cold": capture(base, settings, None)}
    for change in CHANGES:
        lps[change] = capture(changed_scenario(base, "default", change), settings, cold)
    rows: list[dict[str, Any]] = []
    for name, m in lps.items():
        for _ in range(args.repeat):
            for tol in tolerances:
                row = {"lp": name, "nonzeros": m.size()["nonzeros"], **solve(m, settings, tol)}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    with args.out.with_suffix(".jsonl").open("w") as out:
        for r in rows:
            out.write(json.dumps(r) + "\n")
    args.out.with_suffix(".md").write_text(render(rows, loose))
    print(args.out.with_suffix(".md").read_text())
    return 0


def render(rows: list[dict[str, Any]], loose: float) -> str:
    """The table: per LP and tolerance, each solve's time, the iterations, the status and
    the Lagrangian bound given up against the exact solve's (its first)."""
    out = [
        f"The planner's tolerance: {loose:g} (HiGHS' own: 1e-8). One thread; the solves of an"
        " LP in turn.\n",
        "| LP | nonzeros | tolerance | s | iterations | status | value | Lagrangian | given up"
        " | load |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    exact: dict[str, float] = {}
    for r in rows:
        if r["tolerance"] is None and r["lp"] not in exact and r["lagrangian"] is not None:
            exact[r["lp"]] = r["lagrangian"]
    for r in rows:
        lag = r["lagrangian"]
        given = "" if lag is None or r["lp"] not in exact else f"{exact[r['lp']] - lag:,.2f}"
        value = "" if r["value"] is None else f"{r['value']:,.2f}"
        shown = "" if lag is None else f"{lag:,.2f}"
        tol = "HiGHS' 1e-8" if r["tolerance"] is None else f"{r['tolerance']:g}"
        out.append(
            f"| {r['lp']} | {r['nonzeros']:,} | {tol} | {r['s']:.2f} | {r['iterations']} |"
            f" {r['status']} | {value} | {shown} | {given} | {r['load_1min']} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
