"""Check family `totals`: every KPI of the summary recomputed from the tables and the
scenario's prices (energy, carbon, both emissions, migration and transfer, churn, green share, MWh,
unplaced, penalties, objective); bound <= objective for optimal and feasible plans; each
baseline carries the plan's KPI keys.

Records the recomputed KPIs in `Checker.recomputed` (the report's `recomputed`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optimizer.units import KG_PER_T, SECONDS_PER_HOUR, TOKENS_PER_MTOKEN
from optimizer.validate.names import COUNT_KPIS, KPI_KEYS
from optimizer.validate.power import contract_factor
from optimizer.validate.state import Checker

CHECK = "totals"


def check(c: Checker) -> None:
    penalties = penalty_terms(c)
    unplaced, unmet, policy = penalties.values()
    rec = kpis(c, penalty=unplaced + unmet + policy)
    unknown = unknown_kpis(c)
    rec = {k: (None if k in unknown else v) for k, v in rec.items()}
    pens = {k: (None if f"penalties.{k}" in unknown else v) for k, v in penalties.items()}
    c.recomputed.update(rec)
    c.recomputed["penalties"] = pens
    c.recomputed["policy_violations"] = {
        "green_share": c.policy["green_share"],
        "carbon_excess_t": c.policy["carbon_excess_t"],
    }
    if not c.power.ok:
        return  # energy totals cannot be recomputed without site_hours.csv (reported)
    summary = c.summary()
    for key, want in rec.items():
        if key in summary:
            compare(c, key, summary[key], want)
    pen = summary.get("penalties")
    if isinstance(pen, dict):
        for key, want in pens.items():
            if key in pen:
                compare(c, f"penalties.{key}", pen[key], want)
    bound_and_gap(c, summary)
    baselines(c, summary)
    cfe_by_site(c, summary)


def cfe_by_site(c: Checker, summary: dict[str, Any]) -> None:
    """Each site's hourly CFE score: sum_h min(facility, green used) / sum_h facility."""
    said = summary.get("cfe_by_site")
    if not isinstance(said, dict):
        return
    pw = c.power
    matched = np.minimum(pw.green_mw, pw.facility_mw).sum(axis=1)
    total = pw.facility_mw.sum(axis=1)
    for s, site in enumerate(c.sc.sites):
        want = float(matched[s] / total[s]) if total[s] > 0 else 0.0
        compare(c, f"cfe_by_site.{site.site_id}", said.get(site.site_id), want)


def kpis(c: Checker, penalty: float) -> dict[str, Any]:
    """The plan's KPIs, from the planned energy, the jobs' placements, the services' unmet
    demand and the penalties."""
    sc, pol, pw, jobs, svc = c.sc, c.sc.policy, c.power, c.jobs, c.services
    price = np.asarray(sc.grid_price_cny_per_mwh, dtype=float)
    gprice = np.asarray(sc.green_price_cny_per_mwh, dtype=float)
    ci = np.asarray(sc.grid_carbon_kg_per_mwh, dtype=float)
    avail = np.asarray(sc.green_available_mw, dtype=float)
    grid, green = pw.grid_mw, pw.green_mw
    grid_cost = float((grid * price).sum())
    green_cost = float((green * gprice).sum())
    # contract-based: residual mix (else the average) on grid import, green counts zero
    emissions_t = float((grid * contract_factor(sc)).sum() / KG_PER_T)
    emissions_loc_t = float(
        ((grid + green) * ci).sum() / KG_PER_T
    )  # location-based: all energy drawn
    carbon_cost = pol.carbon_price_cny_per_t * emissions_t
    migration = float(jobs.migration_cny[jobs.placed].sum())
    transfer = float(jobs.transfer_cny[jobs.placed].sum())
    unplaced = ~jobs.placed
    energy = grid_cost + green_cost
    fac_mwh = float(pw.facility_mw.sum())
    demand_total = float(np.asarray(sc.demand_tokens_per_s).sum())
    # green contracts: the payment on every available MWh, the resale of what is curtailed
    pay = np.array([s.green_payment_cny_per_mwh for s in sc.sites], dtype=float)
    resale_price = np.array([s.green_resale_cny_per_mwh for s in sc.sites], dtype=float)
    payment = float((pay[:, None] * avail).sum())
    resale = float((resale_price[:, None] * (avail - green)).sum())
    cert_mwh = float(sum(g["certificates_mwh"] for g in c.policy["green_share"]))
    cert_cost = (pol.certificate_price_cny_per_mwh or 0.0) * cert_mwh
    total = energy + carbon_cost + migration + transfer + payment - resale + cert_cost
    churn = c.churn
    total += churn.replica_start_cost + churn.pause_cost
    return {
        "total_cost": total,
        "energy_cost": energy,
        "grid_cost": grid_cost,
        "green_cost": green_cost,
        "carbon_cost": carbon_cost,
        "migration_cost": migration,
        "data_transfer_cost": transfer,
        "penalty": penalty,
        "objective": total + penalty,
        "grid_mwh": float(grid.sum()),
        "green_mwh": float(green.sum()),
        "curtailed_mwh": float((avail - green).sum()),
        "facility_mwh": fac_mwh,
        "it_mwh": float(pw.it_mw.sum()),
        "emissions_t": emissions_t,
        "emissions_location_t": emissions_loc_t,
        "green_share": float(np.minimum(green, pw.facility_mw).sum()) / fac_mwh
        if fac_mwh > 0
        else 0.0,
        "placed": int(jobs.placed.sum()),
        "unplaced": int(unplaced.sum()),
        "unplaced_device_hours": float(jobs.work_in_horizon[unplaced].sum()),
        "moved_jobs": int(jobs.moved.sum()),
        "unmet_mtokens": float(unmet_mtokens(c).sum()),
        "served_share": 1.0 - float(svc.unmet.sum()) / demand_total if demand_total > 0 else 1.0,
        "contract_payment": payment,
        "green_resale_value": resale,
        "cfe_score": float(np.minimum(green, pw.facility_mw).sum()) / fac_mwh
        if fac_mwh > 0
        else 0.0,
        "certificate_mwh": cert_mwh,
        "certificate_cost": cert_cost,
        "replica_starts": churn.replica_starts,
        "replica_stops": churn.replica_stops,
        "pauses": churn.pauses,
        "replica_start_cost": churn.replica_start_cost,
        "pause_cost": churn.pause_cost,
    }


def unmet_mtokens(c: Checker) -> np.ndarray:
    """Unmet demand per service over the horizon, Mtokens."""
    if not len(c.sc.services):
        return np.zeros(0)
    return c.services.unmet.sum(axis=(1, 2)) * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN


def penalty_terms(c: Checker) -> dict[str, float]:
    """The penalties: unplaced jobs (their own penalty, else the policy rate x in-horizon
    work x priority), unmet demand (the service's rate, else the policy's), policy misses."""
    sc, pol, jobs = c.sc, c.sc.policy, c.jobs
    unplaced_pen = 0.0
    for j in np.flatnonzero(~jobs.placed):
        job = sc.jobs[j]
        if job.unplaced_penalty_cny is not None:
            unplaced_pen += job.unplaced_penalty_cny
        else:
            unplaced_pen += (
                pol.unplaced_penalty_cny_per_device_hour * jobs.work_in_horizon[j] * job.priority
            )
    rho = np.array(
        [
            k.unmet_penalty_cny_per_mtoken
            if k.unmet_penalty_cny_per_mtoken is not None
            else pol.unmet_penalty_cny_per_mtoken
            for k in sc.services
        ],
        dtype=float,
    )
    unmet_pen = float(np.dot(rho, unmet_mtokens(c))) if rho.size else 0.0
    policy_pen = (
        sum(g["shortfall_mwh"] for g in c.policy["green_share"])
        * pol.green_shortfall_penalty_cny_per_mwh
    )
    policy_pen += c.policy["carbon_excess_t"] * pol.carbon_excess_penalty_cny_per_t
    return {
        "unplaced": unplaced_pen,
        "unmet_demand": unmet_pen,
        "policy_violation": policy_pen,
    }


def unknown_kpis(c: Checker) -> set[str]:
    """What a missing table (reported by the bundle check) leaves unknown: not compared."""
    unknown: set[str] = set()
    if not c.usable("workloads", "assignments"):
        unknown |= {
            "placed",
            "unplaced",
            "unplaced_device_hours",
            "moved_jobs",
            "migration_cost",
        }
        unknown |= {"data_transfer_cost", "total_cost", "penalties.unplaced"}
        unknown |= {"replica_starts", "replica_stops", "pauses", "replica_start_cost", "pause_cost"}
    if not c.usable("service_flows"):
        unknown |= {"unmet_mtokens", "served_share", "penalties.unmet_demand"}
    if unknown:
        unknown |= {"penalty", "objective"}
    return unknown


def compare(c: Checker, key: str, said: Any, want: float | None) -> None:
    """A reported total equals its recomputation (counts exactly, amounts within tolerance)."""
    if want is None:
        return
    c.count(CHECK, 1)
    if isinstance(said, bool) or not isinstance(said, int | float):
        c.add(
            CHECK,
            key,
            f"{key} is {said!r}, recomputed {want:.10g}",
            table="summary",
            expected=want,
            actual=said,
        )
        return
    ok = said == want if key in COUNT_KPIS else bool(c.close(said, want))
    if not ok:
        c.add(
            CHECK,
            key,
            f"{key} is {said:.10g}, recomputed {want:.10g}",
            table="summary",
            expected=want,
            actual=said,
        )


def bound_and_gap(c: Checker, summary: dict[str, Any]) -> None:
    """The solver's bound (a lower bound of a minimisation) and gap."""
    status = summary.get("status")
    bound, gap, obj = summary.get("bound"), summary.get("gap"), summary.get("objective")
    if status not in ("optimal", "feasible"):
        return
    c.count(CHECK, 1)
    has_bound, has_gap = isinstance(bound, int | float), isinstance(gap, int | float)
    # an optimal plan proves its bound; a feasible one reports a bound and its gap, or,
    # when no bound was proven in time, neither
    if (status == "optimal" and not (has_bound and has_gap)) or has_bound != has_gap:
        c.add(
            CHECK,
            "bound",
            f"a {status} plan must report bound and gap together, got {bound!r}, {gap!r}",
            table="summary",
        )
    elif has_bound:
        if isinstance(obj, int | float) and not c.le(bound, obj):
            c.add(
                CHECK,
                "bound",
                f"bound {bound:.10g} is above the objective {obj:.10g}",
                table="summary",
                expected=obj,
                actual=bound,
            )
        if isinstance(gap, int | float) and gap < -c.abs_tol:
            c.add(CHECK, "bound", f"negative gap {gap:g}", table="summary")


def baselines(c: Checker, summary: dict[str, Any]) -> None:
    """Baselines beside an optimizer plan, each an object of the plan's KPI keys."""
    baselines = summary.get("baselines")
    if not isinstance(baselines, dict):
        return
    if summary.get("status") in ("optimal", "feasible", "fallback") and not baselines:
        c.add(CHECK, "baselines", "no baseline KPIs beside an optimizer plan", table="summary")
    for name, kp in baselines.items():
        c.count(CHECK, 1)
        if not isinstance(kp, dict):
            c.add(
                CHECK,
                "baselines",
                f"baseline {name!r} is not an object of KPIs",
                table="summary",
            )
            continue
        baseline_keys(c, summary, name, kp)


def baseline_keys(c: Checker, summary: dict[str, Any], name: str, kp: dict[str, Any]) -> None:
    """A baseline has exactly the plan's KPI keys, each a finite number."""
    own = [k for k in KPI_KEYS if k in summary]
    missing = [k for k in own if k not in kp]
    if missing:
        c.add(
            CHECK,
            "baselines",
            f"baseline {name!r} lacks KPI(s) {', '.join(missing)}",
            table="summary",
        )
    extra = [k for k in KPI_KEYS if k in kp and k not in summary]
    if extra:
        c.add(
            CHECK,
            "baselines",
            f"baseline {name!r} has KPI(s) the plan lacks: {', '.join(extra)}",
            table="summary",
        )
    bad = [
        k
        for k in own
        if k in kp
        and (
            isinstance(kp[k], bool)
            or not isinstance(kp[k], int | float)
            or not math.isfinite(kp[k])
        )
    ]
    if bad:
        c.add(
            CHECK,
            "baselines",
            f"baseline {name!r} has non-numeric KPI(s) {', '.join(bad)}",
            table="summary",
        )
