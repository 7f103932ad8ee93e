"""`python -m bench.robust SCENARIO_DIR OUT.jsonl [TIME_LIMIT_S] [SEEDS] [NOISES] [GUARD_ROUNDS]`: robust
mode against planning on the central forecast only (issue 12), one JSON line per plan.

1. Done-when figure: the scenario as given (its green series taken as the forecast), planned
   central-only, robust at the pack's P10, and robust at a P10 of 70 % of the forecast; each
   plan re-dispatched with green at 100/90/70 % of the forecast (site-hours short).
2. Let's-Wait-Awhile evaluation (Wiesner et al., Middleware 2021): the scenario's green is
   the actual; the forecast is actual + Gaussian noise of `noise` x each site's mean
   (seeded), with P10/P90 of that same noise around it. Both plans are made on the forecast
   with the same solver settings (equal work) and re-dispatched on the actual: realised
   cost, emissions both ways and short site-hours.

`python -m bench.robust --summary OUT.jsonl` prints the evaluation's table in markdown.

Every plan goes through the independent validator (`validated` in its line). Lines are
appended as they come, so a cut run keeps what it measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from optimizer import Plan, Scenario, SolverSettings, load_scenario, optimize
from optimizer.backtest import realised_kpis
from optimizer.forecast import noisy_scenario
from optimizer.validate import validate_plan

GREEN_SHARES = (1.0, 0.9, 0.7)


def robust(sc: Scenario, level: float = 0.1) -> Scenario:
    return dataclasses.replace(
        sc, policy=dataclasses.replace(sc.policy, robust_green_quantile=level)
    )


def record(out: Path, sc: Scenario, plan: Plan, wall: float, **extra: Any) -> dict[str, Any]:
    report = validate_plan(sc, plan)
    line = {
        **extra,
        "status": plan.status,
        "gap": plan.summary.get("gap"),
        "total_cost": plan.kpis.total_cost,
        "emissions_t": plan.kpis.emissions_t,
        "emissions_location_t": plan.kpis.emissions_location_t,
        "unmet_mtokens": plan.kpis.unmet_mtokens,
        "validated": report.ok,
        "violations": [str(v) for v in report.violations[:5]],
        "wall_s": wall,
        "load_1min": os.getloadavg()[0],
    }
    with out.open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)
    return line


def solve(sc: Scenario, settings: SolverSettings) -> tuple[Plan, float]:
    t = time.perf_counter()
    plan = optimize(sc, settings)
    return plan, time.perf_counter() - t


def done_when(sc: Scenario, settings: SolverSettings, out: Path) -> None:
    """Central-only, robust at the pack's P10, robust at 70 % of the forecast."""
    seventy = dataclasses.replace(sc, green_available_p10_mw=0.7 * sc.green_available_mw)
    for name, s in (("central", sc), ("robust_p10", robust(sc)), ("robust_70", robust(seventy))):
        plan, wall = solve(s, settings)
        short = {
            f"short_at_{f}": realised_kpis(s, plan, f * sc.green_available_mw)["short_site_hours"]
            for f in GREEN_SHARES
        }
        record(out, s, plan, wall, part="done_when", planned=name, **short)


def lwa(sc: Scenario, settings: SolverSettings, out: Path, seeds: int, noises: list[float]) -> None:
    actual = np.asarray(sc.green_available_mw, dtype=float)
    for seed in range(seeds):
        for noise in noises:
            fsc = noisy_scenario(sc, noise, seed)
            for name, s in (("central", fsc), ("robust_p10", robust(fsc))):
                plan, wall = solve(s, settings)
                real = {f"realised_{k}": v for k, v in realised_kpis(s, plan, actual).items()}
                record(out, s, plan, wall, part="lwa", planned=name, seed=seed, noise=noise, **real)


REALISED = (
    ("realised cost", "realised_total_cost", "{:,.0f}"),
    ("realised emissions, contract t", "realised_emissions_t", "{:,.2f}"),
    ("realised emissions, location t", "realised_emissions_location_t", "{:,.2f}"),
    ("realised short site-hours", "realised_short_site_hours", "{:.1f}"),
    ("realised short MWh", "realised_short_mwh", "{:.2f}"),
    ("planned cost (on the forecast)", "total_cost", "{:,.0f}"),
)


def summarise(path: Path) -> str:
    """Markdown: per noise level, central vs robust over the seeds measured (mean, and the
    robust plan's paired difference)."""
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    lwa_lines = [x for x in lines if x["part"] == "lwa"]
    out = []
    for noise in sorted({x["noise"] for x in lwa_lines}):
        pairs: dict[int, dict[str, Any]] = {}
        for x in lwa_lines:
            if x["noise"] == noise:
                pairs.setdefault(x["seed"], {})[x["planned"]] = x
        both = [p for p in pairs.values() if {"central", "robust_p10"} <= set(p)]
        out += [
            f"\nnoise {noise:.0%} of the mean, {len(both)} seeds "
            f"(validated: {all(p[k]['validated'] for p in both for k in p)})\n",
            "| figure | central-only | robust P10 | robust - central (mean, min..max) |",
            "|---|---|---|---|",
        ]
        for label, key, fmt in REALISED:
            c = np.array([p["central"][key] for p in both], dtype=float)
            r = np.array([p["robust_p10"][key] for p in both], dtype=float)
            d = r - c
            out.append(
                f"| {label} | {fmt.format(c.mean())} | {fmt.format(r.mean())} | "
                f"{fmt.format(d.mean())} ({fmt.format(d.min())}..{fmt.format(d.max())}) |"
            )
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if argv[0] == "--summary":
        print(summarise(Path(argv[1])))
        return 0
    sc = load_scenario(argv[0])
    out = Path(argv[1])
    limit = float(argv[2]) if len(argv) > 2 else 60.0
    seeds = int(argv[3]) if len(argv) > 3 else 10
    noises = [float(x) for x in argv[4].split(",")] if len(argv) > 4 else [0.05, 0.10]
    settings = SolverSettings(time_limit_s=limit)
    if len(argv) > 5:  # the dominance guard is orthogonal to robustness; 0 halves the run
        settings = dataclasses.replace(settings, dominance_guard_rounds=int(argv[5]))
    done_when(sc, settings, out)
    lwa(sc, settings, out, seeds, noises)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
