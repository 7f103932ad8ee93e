"""Tiny scenarios whose optimum can be worked out by hand.

Defaults keep the arithmetic trivial: one accelerator type "G" drawing 1 MW per busy device
and nothing idle, PUE 1, one-hour steps, no green supply, zero carbon; so a job-hour on a
site costs exactly that hour's grid price.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from optimizer import Plan, Scenario, SolverSettings, optimize
from optimizer.scenario import scenario_from_tables

START = pd.Timestamp("2025-01-01T00:00:00+08:00")
TZ = "Asia/Shanghai"

EXACT = SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=30, mip_rel_gap=0.0)


def at(h: int) -> str:
    return (START + pd.Timedelta(hours=h)).isoformat()


def site(site_id: str, **kw: Any) -> dict[str, Any]:
    row = {
        "site_id": site_id,
        "residency_region": kw.pop("residency_region", "r1"),
        "zone": kw.pop("zone", site_id),
        "pue": 1.0,
        "grid_limit_mw": 100.0,
    }
    row.update(kw)
    return row


def job(job_id: str, **kw: Any) -> dict[str, Any]:
    row = {
        "job_id": job_id,
        "kind": "batch",
        "accelerators": "G",
        "gang": 1,
        "work_device_hours": 1,
        "release": at(0),
        "deadline": at(kw.pop("deadline_h", 3)),
        "preemptible": True,
    }
    row.update(kw)
    return row


def scenario(
    sites: list[dict[str, Any]],
    *,
    hours: int = 3,
    prices: dict[str, list[float]] | None = None,
    carbon: dict[str, list[float]] | None = None,
    green: dict[str, list[float]] | None = None,
    green_p10: dict[str, list[float]] | None = None,
    green_price: dict[str, list[float]] | None = None,
    fleets: dict[str, int] | None = None,
    accelerators: list[dict[str, Any]] | None = None,
    jobs: list[dict[str, Any]] | None = None,
    services: list[dict[str, Any]] | None = None,
    throughput: list[dict[str, Any]] | None = None,
    demand: dict[tuple[str, str], list[float]] | None = None,
    latency: dict[tuple[str, str], float] | None = None,
    availability: list[dict[str, Any]] | None = None,
    policy: dict[str, float] | None = None,
    extra_fleets: list[dict[str, Any]] | None = None,
) -> Scenario:
    ids = [s["site_id"] for s in sites]
    stamps = [at(h) for h in range(hours)]

    def series(d: dict[str, list[float]] | None, default: float, s: str) -> list[float]:
        return list((d or {}).get(s, [default] * hours))

    rows = []
    for s in ids:
        rows.append(
            pd.DataFrame(
                {
                    "site_id": s,
                    "timestamp": stamps,
                    "grid_price_cny_per_mwh": series(prices, 100.0, s),
                    "grid_carbon_kg_per_mwh": series(carbon, 0.0, s),
                    "green_available_mw": series(green, 0.0, s),
                    "green_price_cny_per_mwh": series(green_price, 0.0, s),
                    # the forecast's P10; absent: no band (P10 = the forecast)
                    **(
                        {"green_available_p10_mw": series(green_p10, np.nan, s)}
                        if green_p10
                        else {}
                    ),
                }
            )
        )
    tables = {
        "sites": pd.DataFrame(sites),
        "accelerators": pd.DataFrame(
            accelerators or [{"accelerator": "G", "busy_kw": 1000.0, "idle_kw": 0.0}]
        ),
        "fleets": pd.DataFrame(
            [{"site_id": s, "accelerator": "G", "devices": (fleets or {}).get(s, 10)} for s in ids]
            + (extra_fleets or [])
        ),
        "site_series": pd.concat(rows, ignore_index=True),
        "latency": pd.DataFrame(
            [
                {"site_id": s, "demand_region": r, "latency_ms": ms}
                for (s, r), ms in (latency or {}).items()
            ],
            columns=["site_id", "demand_region", "latency_ms"],
        ),
        "jobs": pd.DataFrame(
            jobs or [],
            columns=None
            if jobs
            else ["job_id", "accelerators", "gang", "work_device_hours", "deadline"],
        ),
        "services": pd.DataFrame(
            services or [], columns=None if services else ["service_id", "latency_limit_ms"]
        ),
        "service_throughput": pd.DataFrame(
            throughput or [],
            columns=None
            if throughput
            else ["service_id", "accelerator", "tokens_per_s_per_device"],
        ),
        "service_demand": pd.DataFrame(
            [
                {"service_id": k, "demand_region": r, "timestamp": stamps[h], "tokens_per_s": v}
                for (k, r), vals in (demand or {}).items()
                for h, v in enumerate(vals)
            ],
            columns=["service_id", "demand_region", "timestamp", "tokens_per_s"],
        ),
    }
    if availability:
        tables["availability"] = pd.DataFrame(availability)
    manifest = {
        "name": "micro",
        "timezone": TZ,
        "start": START.isoformat(),
        "hours": hours,
        "policy": policy or {},
    }
    return scenario_from_tables(manifest, tables)


def solve(sc: Scenario, settings: SolverSettings = EXACT) -> Plan:
    """Optimize and check the plan with the independent validator."""
    from optimizer.validate import validate_plan

    plan = optimize(sc, settings)
    validate_plan(sc, plan).raise_if_failed()
    return plan


def placement(plan: Plan, job_id: str) -> tuple[str, list[int]]:
    """(site, sorted hours) of a job in a plan; ("", []) if unplaced."""
    w = plan.workloads.set_index("workload_id").loc[job_id]
    a = plan.assignments[plan.assignments["workload_id"] == job_id]
    return (w["site_id"] if w["status"] != "unplaced" else "", sorted(int(h) for h in a["hour"]))


def site_hour(plan: Plan, site_id: str, column: str) -> np.ndarray:
    sh = plan.site_hours[plan.site_hours["site_id"] == site_id].sort_values("hour")
    return sh[column].to_numpy()


def churn_free(sc: Scenario) -> Scenario:
    """`sc` with replica starts and pauses free (issue 12 prices them by default).

    The demo's golden tests prove optimality to gap 0 within a minute; with starts priced
    the integer inference devices are coupled across hours and that proof takes longer on a
    shared machine. Churn pricing has micro tests of its own (test_model_micro.py).
    """
    import dataclasses

    free = dataclasses.replace(
        sc.policy, replica_warmup_min=0.0, checkpoint_min=0.0, restore_min=0.0
    )
    return dataclasses.replace(sc, policy=free)


def leans_on_green(robust: bool) -> Scenario:
    """W: own wind beside a 1 MW grid connection, forecast 2 MW (P50) but 0.5 MW at P10, grid
    at 10; E: plenty of grid at 100. Two one-hour jobs of 1 MW each, due after hour 0: the
    central plan runs both at W (short 0.5 MW at P10), a robust one moves one to E."""
    return scenario(
        [site("W", grid_limit_mw=1.0), site("E")],
        hours=1,
        prices={"W": [10], "E": [100]},
        green={"W": [2.0]},
        green_p10={"W": [0.5]},
        jobs=[job("a", deadline_h=1), job("b", deadline_h=1)],
        policy={"robust_green_quantile": 0.1} if robust else {},
    )
