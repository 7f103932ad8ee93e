"""Compare two plans and explain one: what moved, what it changed, and why.

Pure functions over the plan tables (as written to a bundle), so they work on plans read
back from storage as well as on fresh ones.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from optimizer.contract import DIFF_KPIS
from optimizer.plan import Plan
from optimizer.units import SECONDS_PER_HOUR, TOKENS_PER_MTOKEN

DELTA_KEYS = DIFF_KPIS
"""The KPIs a diff compares (flagged `diff=True` in the bundle contract)."""


def _placements(plan: Plan) -> pd.DataFrame:
    w = plan.workloads
    jobs = w[w["kind"] != "inference"][["workload_id", "status", "site_id", "accelerator"]].copy()
    jobs["site_id"] = jobs["site_id"].fillna("")
    # placed or on track (due after the horizon): either way it runs in this plan
    jobs["runs"] = jobs["status"] != "unplaced"
    a = plan.assignments
    hours = (
        a[a["workload_id"].isin(jobs["workload_id"])]
        .groupby("workload_id")["timestamp"]
        .agg(lambda s: ",".join(sorted(s)))
    )
    jobs["hours"] = (
        jobs["workload_id"]
        .map(hours)
        .apply(lambda v: tuple(v.split(",")) if isinstance(v, str) else ())
    )
    return jobs.set_index("workload_id")


def _site_totals(plan: Plan) -> pd.DataFrame:
    sh = plan.site_hours
    g = sh.groupby("site_id").agg(
        facility_mwh=("facility_mw", "sum"),
        grid_mwh=("grid_mw", "sum"),
        green_mwh=("green_used_mw", "sum"),
        curtailed_mwh=("curtailed_mw", "sum"),
        energy_cost=("energy_cost", "sum"),
        emissions_t=("emissions_kg", lambda s: s.sum() / 1000.0),
    )
    if "emissions_location_kg" in sh:
        g["emissions_location_t"] = sh.groupby("site_id")["emissions_location_kg"].sum() / 1000.0
    g["green_share"] = (g["green_mwh"] / g["facility_mwh"]).where(g["facility_mwh"] > 0, 0.0)
    return g


def diff_plans(a: Plan, b: Plan) -> dict[str, Any]:
    """What changes going from plan `a` to plan `b`: totals, per site, and each job that moved."""
    sa, sb = a.summary, b.summary
    totals = {
        k: {"a": sa.get(k), "b": sb.get(k), "delta": _delta(sa.get(k), sb.get(k))}
        for k in DELTA_KEYS
        if k in sa or k in sb
    }
    ta, tb = _site_totals(a), _site_totals(b)
    sites = {}
    for s in sorted(set(ta.index) | set(tb.index)):
        ra = ta.loc[s] if s in ta.index else None
        rb = tb.loc[s] if s in tb.index else None
        sites[s] = {
            col: {
                "a": None if ra is None else float(ra[col]),
                "b": None if rb is None else float(rb[col]),
                "delta": _delta(
                    None if ra is None else float(ra[col]), None if rb is None else float(rb[col])
                ),
            }
            for col in ta.columns
        }
    pa, pb = _placements(a), _placements(b)
    moved: list[dict[str, Any]] = []
    retimed: list[dict[str, Any]] = []
    newly_placed: list[dict[str, Any]] = []
    newly_unplaced: list[dict[str, Any]] = []
    only_a: list[str] = []
    only_b: list[str] = []
    for j in sorted(set(pa.index) | set(pb.index)):
        if j not in pb.index:
            only_a.append(j)
            continue
        if j not in pa.index:
            only_b.append(j)
            continue
        x, y = pa.loc[j], pb.loc[j]
        if x["runs"] != y["runs"]:
            (newly_placed if y["runs"] else newly_unplaced).append(
                {"workload_id": j, "site_a": x["site_id"] or None, "site_b": y["site_id"] or None}
            )
        elif x["runs"] and (x["site_id"] != y["site_id"] or x["accelerator"] != y["accelerator"]):
            moved.append(
                {
                    "workload_id": j,
                    "site_a": x["site_id"],
                    "site_b": y["site_id"],
                    "accelerator_a": x["accelerator"],
                    "accelerator_b": y["accelerator"],
                }
            )
        elif x["runs"] and x["hours"] != y["hours"]:
            retimed.append(
                {
                    "workload_id": j,
                    "site": y["site_id"],
                    "hours_a": len(x["hours"]),
                    "hours_b": len(y["hours"]),
                }
            )
    return {
        "plan_a": sa.get("plan_id"),
        "plan_b": sb.get("plan_id"),
        "same_scenario": sa.get("scenario_fingerprint") == sb.get("scenario_fingerprint"),
        "totals": totals,
        "sites": sites,
        "jobs": {
            "moved": moved,
            "retimed": retimed,
            "newly_placed": newly_placed,
            "newly_unplaced": newly_unplaced,
            "only_in_a": only_a,
            "only_in_b": only_b,
        },
    }


def _delta(x: Any, y: Any) -> float | None:
    if isinstance(x, int | float) and isinstance(y, int | float):
        return float(y) - float(x)
    return None


def explain(plan: Plan) -> dict[str, Any]:
    """Why the plan looks as it does: binding limits per site, unplaced work, moves, and
    the replica starts and pauses it makes or avoids (churn.csv; empty in older bundles)."""
    b = plan.binding
    sites: dict[str, dict[str, list[str]]] = {}
    for (site, limit), g in b.groupby(["site_id", "limit"]):
        key = {"devices": "capacity", "grid": "power", "green": "green_supply"}.get(
            str(limit), str(limit)
        )
        entry = sites.setdefault(str(site), {"capacity": [], "power": [], "green_supply": []})
        entry[key] = sorted(set(g["timestamp"]))
    w = plan.workloads
    reasons = w[(w["status"] == "unplaced") | (w["reason"].fillna("") != "")]
    return {
        "binding_hours": sites,
        "unplaced": [
            {"workload_id": r.workload_id, "kind": r.kind, "status": r.status, "reason": r.reason}
            for r in reasons.itertuples(index=False)
        ],
        "moves": plan.moves.to_dict(orient="records"),
        "churn": plan.churn.to_dict(orient="records"),
        "policy_violations": plan.summary.get("policy_violations", {}),
    }


def region_links(plan: Plan) -> list[dict[str, Any]]:
    """The (site, demand region) links the plan serves inference over, from its
    service_flows: tokens served (Mtoken over the horizon), the hours with any flow, how many
    services use the link, and its latency. Links the plan leaves unused are not listed."""
    f = plan.service_flows
    if f.empty:
        return []
    f = f.assign(mtokens=f["tokens_per_s"] * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN)
    g = (
        f.groupby(["site_id", "demand_region"], sort=True)
        .agg(
            mtokens=("mtokens", "sum"),
            hours=("hour", "nunique"),
            services=("service_id", "nunique"),
            latency_ms=("latency_ms", "first"),
        )
        .reset_index()
    )
    cols = {c: g[c].tolist() for c in g.columns}
    return [
        {
            "site_id": str(site),
            "demand_region": str(region),
            "mtokens": float(mtok),
            "hours": int(hours),
            "services": int(services),
            "latency_ms": float(ms),
        }
        for site, region, mtok, hours, services, ms in zip(
            cols["site_id"],
            cols["demand_region"],
            cols["mtokens"],
            cols["hours"],
            cols["services"],
            cols["latency_ms"],
            strict=True,
        )
    ]
