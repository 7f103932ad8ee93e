"""`python -m bench.speed CASE STRATEGY TIME_LIMIT_S [CHANGE]`: one solve of issue 16's speed
work, printed as one JSON line (run each in a fresh process, strategies back to back, so
their ratios share the machine's load).

CASE: `default` (data/scenarios/cn-edwc-48h) or a size of `bench.sizes` (`M`, ...).
STRATEGY: `today` (stage 1 run to `mip_rel_gap`, no completion step, a warm re-solve like a
cold one, the churn-aware pass without a time limit: the planner before issue 16), `gap`
(today with stage 1 stopped at 3 %), `new` (the defaults), `new_ipm` (the defaults, pricing
LPs by interior point without crossover) or `new_limited` (the defaults with the churn-aware
pass limited to what the budget leaves, at least 15 %; measured 2026-12-05 evening as `new`,
against `new_unlimited`, then the defaults), `new_stage1_full` (stage 1 without its stop at
the start, `stage1_incumbents=None`), `new_stage1_start` (the stop, as the default) or
`new_one_worker` (the churn-aware pass's class LPs one at a time, `lp_workers=1`). CHANGE (optional): one of
`bench.changes.CHANGES` (or `none`); the case is solved cold with STRATEGY, then the changed case cold
and warm from that plan (the plan itself, as the service's what-if starts from the active
plan), all with STRATEGY. Every plan goes through the validator. `greenopt bench --quick`
(bench/quick.py) runs the issue's M and what-if rows with these functions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import changes
from bench.sizes import NAMED, M, Size, scenario_of
from optimizer import Plan, Scenario, SolverSettings, load_scenario, optimize
from optimizer.choose import REL_TOL
from optimizer.validate import validate_plan
from optimizer.whatif import apply_overrides

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "scenarios" / "cn-edwc-48h"
# the planner before issue 16: stage 1 to the gap asked for, nothing after rounding but the
# churn-aware pass (without a time limit), a warm re-solve as long as a cold one
TODAY = {
    "stage1_gap": None,
    "stage1_share": None,
    "completion": False,
    "warm_skip_stage1": False,
    "churn_aware_share": None,
    "stage1_incumbents": None,
    "lp_workers": 1,
}
STRATEGIES: dict[str, dict[str, Any]] = {
    "today": TODAY,
    # what each step buys: stage 1 stopped early alone, then with the completion step
    "gap": TODAY | {"stage1_gap": 0.03},
    "new": {},
    "new_ipm": {"pricing_solver": "ipm"},
    # stage 1 to its limit, as before it stopped at its first incumbent after the start
    "new_stage1_full": {"stage1_incumbents": None},
    # ... and stopped at the start it accepted (the incumbent HiGHS makes of it, rounded)
    "new_stage1_start": {"stage1_incumbents": 0},
    # the pricing LPs without replica starts, as before issue 16's tighter bound
    "new_no_pricing_churn": {"pricing_churn": "off"},
    # what the churn-aware pass's time limit buys (off by default: +51 % objective on M)
    "new_limited": {"churn_aware_share": 0.15},
    # the class LPs of the churn-aware completion one at a time, as before they went side
    # by side on the cores free (`lp_workers`)
    "new_one_worker": {"lp_workers": 1},
    # the whole call within the limit (`finish_by_limit`, issue 17)
    "finish": {"finish_by_limit": True},
}


def case_scenario(case: str) -> Scenario:
    """CASE's scenario: the default scenario, or the generated scenario of a size."""
    return load_scenario(DEFAULT_DIR) if case == "default" else scenario_of(NAMED[case])


def change_size(case: str) -> Size:
    """The size whose generator draws CASE's new jobs (the default scenario is M-sized)."""
    return M if case == "default" else NAMED[case]


def changed_scenario(sc: Scenario, case: str, change: str) -> Scenario:
    """CASE's scenario `sc` with CHANGE applied, as the service's what-if applies it."""
    return apply_overrides(sc, changes.overrides_for(change, sc, change_size(case)))


def never_worse(s: dict[str, Any]) -> bool:
    """Issue 16's property: the plan's objective no higher than any baseline's in its summary
    (`choose.REL_TOL`: closer objectives tie)."""
    return all(
        s["objective"] <= b["objective"] * (1 + REL_TOL) + 1e-6 for b in s["baselines"].values()
    )


def strategy_settings(strategy: str, limit: float) -> SolverSettings:
    """STRATEGY's settings within `limit` s: one HiGHS thread, seed 0."""
    return SolverSettings(time_limit_s=limit, threads=1, seed=0, **STRATEGIES[strategy])


def solve(
    sc: Scenario, strategy: str, limit: float, warm: Plan | None = None
) -> tuple[Plan, dict[str, Any]]:
    settings = strategy_settings(strategy, limit)
    load_before = os.getloadavg()
    t = time.perf_counter()
    plan = optimize(sc, settings, warm_start=warm)
    wall = time.perf_counter() - t
    report = validate_plan(sc, plan)
    print(f"{wall:.1f} s, objective {plan.summary.get('objective')}", file=sys.stderr, flush=True)
    s = plan.summary
    solver = s.get("solver", {})
    guard = solver.get("guard", {})
    return plan, {
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "origin": s.get("origin"),
        "never_worse": never_worse(s),
        "churn_aware": solver.get("churn_aware", {}).get("status"),
        "wall_s": round(wall, 2),
        "objective": s.get("objective"),
        "bound": s.get("bound"),
        "gap": s.get("gap"),
        "status": plan.status,
        "plan_source": solver.get("plan_source"),
        "candidates": solver.get("candidates"),
        "unplaced_jobs": plan.kpis.unplaced,
        "total_cost": plan.kpis.total_cost,
        "timings_s": {k: round(v, 2) for k, v in s.get("timings_s", {}).items()},
        "stage1": {k: solver.get("stage1", {}).get(k) for k in ("termination", "gap", "nodes")},
        # where a warm what-if's time goes: pricing's rounds and why it stopped, the guard
        "pricing": {
            k: solver.get("job_options", {}).get(k)
            for k in ("rounds", "stopped", "lp_solver", "replica_starts", "per_round")
        },
        "guard": {
            **{k: guard.get(k) for k in ("needed", "found", "wall_s", "skipped")},
            # its completions, and whether a warm re-solve's first (the previous weights) stood
            "tries": len(guard.get("tries", [])),
            "seed_kept": any(t.get("seed_kept") for t in guard.get("tries", [])),
        },
        "validated": report.ok,
        "violations": [str(v) for v in report.violations[:3]],
    }


def main(argv: list[str]) -> int:
    case, strategy, limit = argv[0], argv[1], float(argv[2])
    change = argv[3] if len(argv) > 3 and argv[3] != "none" else None
    sc = case_scenario(case)
    out: dict[str, Any] = {"case": case, "strategy": strategy, "limit_s": limit}
    out["load_before"] = os.getloadavg()
    plan, out["cold"] = solve(sc, strategy, limit)
    if change is not None:
        changed = changed_scenario(sc, case, change)
        out["change"] = change
        _, out["changed_cold"] = solve(changed, strategy, limit)
        # warm from the plan itself, as the service's what-if is (jobs matched by id)
        _, out["changed_warm"] = solve(changed, strategy, limit, warm=plan)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
