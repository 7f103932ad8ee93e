"""`python -m bench.churn SCENARIO_DIR [TIME_LIMIT_S] [--churn-free | --start-cost-x=K]`:
churn and green-shortfall figures of a plan (issue 12), from its bundle tables only, so the
same script measures a plan made by any version of the planner (run it with an older
checkout's interpreter to get "before").

Prints JSON: device starts and stops of inference (per service, site and type, hour to
hour), hour-to-hour changes, placements started (a service appearing at a site and type),
job pauses, total cost with and without churn costs, and the site-hours whose planned
load the grid connection plus green supply at 100/90/70 % of forecast cannot power.

`--start-cost-x=K` plans it with replica starts K times as dear (the starts-for-energy
trade-off); its churn is priced at the scenario's own rates as well. Every plan goes through
the independent validator (`valid`, `violations`).

`--churn-free` plans the scenario with replica starts and pauses free (warm-up, checkpoint
and restore set to 0): the plan made without churn priced, on the same scenario and code,
whose churn the churn-aware plan is measured against (issue 12). Its churn costs are then
re-priced at the scenario's own rates (`churn_cost_at_scenario_rates`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.report import solved
from optimizer import Plan, Scenario, SolverSettings, load_scenario, optimize
from optimizer.rules import pause_cost_cny, pauses_of, replica_changes, replica_start_cost_cny
from optimizer.validate import validate_plan

GREEN_CASES = (1.0, 0.9, 0.7)


def churn(plan: Plan, sc: Scenario) -> dict[str, Any]:
    a = plan.assignments
    svc_ids = [s.service_id for s in sc.services]
    sv = a[a["workload_id"].isin(svc_ids)]
    # devices [service, site, type, hour] as a dense array, then the rules' own counting
    keys = ["workload_id", "site_id", "accelerator"]
    g = sv.groupby([*keys, "hour"], as_index=False)["devices"].sum()
    key = pd.MultiIndex.from_arrays([g[k] for k in keys])
    idx = key.unique()
    n = np.zeros((len(idx), sc.hours))
    n[idx.get_indexer(key), g["hour"].to_numpy()] = g["devices"].to_numpy()
    starts, stops = replica_changes(n)
    # each service's devices over all its sites and types: the starts that grow the
    # service, as against those that only move its devices between sites and types
    svc = pd.Index(svc_ids)
    total = np.zeros((len(svc), sc.hours))
    np.add.at(total, svc.get_indexer(idx.get_level_values(0)), n)
    jobs = a[~a["workload_id"].isin(svc_ids)]
    return {
        "replica_starts": float(starts.sum()),
        "replica_stops": float(stops.sum()),
        "inference_changes": float(starts.sum() + stops.sum()),
        "service_growth_starts": float(replica_changes(total)[0].sum()),
        "inference_device_hours": float(sv["devices"].sum()),
        "placements_started": int(((n[:, 1:] > 0) & (n[:, :-1] == 0)).sum()),
        "pauses": sum(pauses_of(h.to_numpy()) for _, h in jobs.groupby("workload_id")["hour"]),
    }


def demand_following_starts(sc: Scenario) -> float:
    """Device starts of a plan that keeps no idle replica and moves none: each service's
    demand each hour on exactly as many of its most productive devices as serve it
    (continuous), summed over the increases from hour to hour. What priced churn cannot
    remove without keeping devices idle through a dip in demand."""
    best = np.array([max(s.throughput_tokens_per_s.values()) for s in sc.services])
    need = sc.demand_tokens_per_s.sum(axis=1) / best[:, None]
    return float(replica_changes(need)[0].sum())


def churn_free(sc: Scenario) -> Scenario:
    """`sc` with replica starts and job pauses free."""
    pol = dataclasses.replace(
        sc.policy, replica_warmup_min=0.0, replica_start_cost_cny=0.0,
        checkpoint_min=0.0, restore_min=0.0,
    )  # fmt: skip
    return dataclasses.replace(sc, policy=pol)


def churn_cost_at(plan: Plan, sc: Scenario) -> float:
    """What `plan`'s replica starts and pauses cost at `sc`'s rates."""
    a = plan.assignments
    c = churn(plan, sc)
    per_job = {j.job_id: pause_cost_cny(sc, j) for j in sc.jobs}
    jobs = a[a["workload_id"].isin(per_job.keys())]
    pauses = sum(
        per_job[str(j)] * pauses_of(h.to_numpy()) for j, h in jobs.groupby("workload_id")["hour"]
    )
    return float(c["replica_starts"] * replica_start_cost_cny(sc) + pauses)


def short_site_hours(plan: Plan, green_share: float) -> int:
    """Site-hours whose planned load the grid connection and `green_share` of the forecast
    green supply cannot power (the battery as planned)."""
    sh = plan.site_hours
    need = sh["facility_mw"] - sh["battery_discharge_mw"] + sh["battery_charge_mw"]
    return int((need > sh["grid_limit_mw"] + green_share * sh["green_available_mw"] + 1e-6).sum())


def start_cost_times(sc: Scenario, factor: float) -> Scenario:
    """`sc` with a replica start `factor` times as dear (warm-up and fixed cost per start)."""
    pol = dataclasses.replace(
        sc.policy,
        replica_warmup_min=sc.policy.replica_warmup_min * factor,
        replica_start_cost_cny=sc.policy.replica_start_cost_cny * factor,
    )
    return dataclasses.replace(sc, policy=pol)


def main(argv: list[str]) -> int:
    free = "--churn-free" in argv
    times = next((float(a.split("=", 1)[1]) for a in argv if a.startswith("--start-cost-x=")), 1.0)
    argv = [a for a in argv if not a.startswith("--")]
    sc = load_scenario(argv[0])
    planned = churn_free(sc) if free else start_cost_times(sc, times)
    load_start = os.getloadavg()
    t = time.perf_counter()
    plan = optimize(planned, SolverSettings(time_limit_s=float(argv[1]) if len(argv) > 1 else 60.0))
    wall = time.perf_counter() - t
    out = churn(plan, sc) | {"demand_following_starts": demand_following_starts(sc)}
    out["churn_cost_at_scenario_rates"] = churn_cost_at(plan, sc)
    out |= {f"short_at_{f}": short_site_hours(plan, f) for f in GREEN_CASES}
    # the plan's own churn costs are at the rates it was planned with
    churn_cost = plan.summary.get("replica_start_cost", 0.0) + plan.summary.get("pause_cost", 0.0)
    out |= {
        "total_cost": plan.kpis.total_cost,
        "churn_cost": churn_cost,
        "cost_without_churn": plan.kpis.total_cost - churn_cost,
        "wall_s": wall,
        "churn_free": free,
        "start_cost_x": 0.0 if free else times,
        **solved(plan.summary, validate_plan(planned, plan), load_start),
    }
    out.pop("model_size")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
