"""A plan's KPIs and penalties from its energy, placements and services: the numbers the
summary reports and the validator recomputes on its own."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from optimizer.contract import Kpis
from optimizer.plan.types import TOL, Energy
from optimizer.rules import work_in_horizon
from optimizer.scenario.types import Scenario
from optimizer.units import KG_PER_T, SECONDS_PER_HOUR, TOKENS_PER_MTOKEN


def policy_violations(
    sc: Scenario, green: np.ndarray, fac: np.ndarray, grid: np.ndarray
) -> dict[str, Any]:
    """How far the plan falls short of each green-share minimum and the carbon budget."""
    out: dict[str, Any] = {"green_share": [], "carbon_excess_t": 0.0}
    pol = sc.policy
    groups: list[tuple[str, float, float, float]] = []
    if pol.min_green_share > 0:
        groups.append(("fleet", pol.min_green_share, float(green.sum()), float(fac.sum())))
    for s, site in enumerate(sc.sites):
        if site.min_green_share > 0:
            groups.append(
                (site.site_id, site.min_green_share, float(green[s].sum()), float(fac[s].sum()))
            )
    price = pol.certificate_price_cny_per_mwh
    buys = price is not None and price <= pol.green_shortfall_penalty_cny_per_mwh
    for scope, share, g, f in groups:
        gap = max(0.0, share * f - g)
        gap = gap if gap > TOL * max(1.0, f) else 0.0
        # certificates on offer fill the gap exactly (cheaper than missing the minimum)
        cert = gap if buys else 0.0
        out["green_share"].append(
            {
                "scope": scope,
                "required": share,
                "achieved": (g + cert) / f if f > 0 else 0.0,
                "hourly_matched": g / f if f > 0 else 0.0,
                "certificates_mwh": cert,
                "shortfall_mwh": gap - cert,
            }
        )
    if pol.carbon_budget_t is not None:
        emissions = float((grid * sc.contract_carbon_kg_per_mwh).sum() / KG_PER_T)
        excess = emissions - pol.carbon_budget_t
        out["carbon_excess_t"] = excess if excess > TOL * max(1.0, pol.carbon_budget_t) else 0.0
    return out


def cfe_by_site(sc: Scenario, green: np.ndarray, fac: np.ndarray) -> dict[str, float]:
    """Hourly CFE score of each site: sum_h min(facility, green used) / sum_h facility."""
    matched, total = np.minimum(green, fac).sum(axis=1), fac.sum(axis=1)
    return {
        site: float(m / t) if t > 0 else 0.0
        for site, m, t in zip(sc.site_ids, matched, total, strict=True)
    }


def plan_kpis(
    sc: Scenario,
    *,
    energy: Energy,
    job_costs: tuple[np.ndarray, np.ndarray],
    unplaced_mask: np.ndarray,
    unmet: np.ndarray,
    moved_jobs: int,
    churn: pd.DataFrame,
) -> tuple[Kpis, dict[str, float], dict[str, Any]]:
    """The KPIs, the penalties and the policy violations of a plan.

    `energy` is the plan's `Energy` (per site-hour arrays), `job_costs` each job's
    (migration, data transfer) cost, `unmet` the [service, region, hour] demand left unserved,
    `churn` the workloads' kind and churn columns (replica starts and stops, pauses, cost).
    """
    e = energy
    migration, transfer = job_costs
    J, K = len(sc.jobs), len(sc.services)
    work_in, unplaced_pen = _unplaced_penalty(sc, unplaced_mask)
    unmet_mtok, unmet_pen = _unmet_penalty(sc, unmet)
    green_counted, violations, policy_pen = _policy_penalty(sc, e)
    c = _costs(sc, e, job_costs, violations, churn)
    penalty = unplaced_pen + unmet_pen + policy_pen
    fac_mwh = float(e.fac.sum())
    total_demand = float(sc.demand_tokens_per_s.sum())
    kpis = Kpis(
        total_cost=c.total,
        energy_cost=c.energy_cost,
        grid_cost=float(e.grid_cost.sum()),
        green_cost=float(e.green_cost.sum()),
        carbon_cost=c.carbon_cost,
        migration_cost=float(migration.sum()),
        data_transfer_cost=float(transfer.sum()),
        penalty=penalty,
        objective=c.total + penalty,
        grid_mwh=float(e.grid.sum()),
        green_mwh=float(e.green.sum()),
        curtailed_mwh=float(e.curtailed.sum()),
        facility_mwh=fac_mwh,
        it_mwh=float(e.it.sum()),
        emissions_t=c.emissions_t,
        emissions_location_t=float(e.emis_loc_kg.sum() / KG_PER_T),
        green_share=float(green_counted.sum() / fac_mwh) if fac_mwh > 0 else 0.0,
        placed=int(J - unplaced_mask.sum()),
        unplaced=int(unplaced_mask.sum()),
        unplaced_device_hours=float(work_in[unplaced_mask].sum()) if J else 0.0,
        moved_jobs=moved_jobs,
        unmet_mtokens=float(unmet_mtok.sum()) if K else 0.0,
        served_share=float(1.0 - unmet.sum() / total_demand) if total_demand > 0 else 1.0,
        contract_payment=c.payment,
        green_resale_value=c.resale,
        cfe_score=float(green_counted.sum() / fac_mwh) if fac_mwh > 0 else 0.0,
        certificate_mwh=c.certificate_mwh,
        certificate_cost=c.certificate_cost,
        replica_starts=int(churn["replica_starts"].sum()),
        replica_stops=int(churn["replica_stops"].sum()),
        pauses=int(churn["pauses"].sum()),
        replica_start_cost=c.start_cost,
        pause_cost=c.pause_cost,
    )
    penalties = {
        "unplaced": unplaced_pen,
        "unmet_demand": unmet_pen,
        "policy_violation": policy_pen,
    }
    return kpis, penalties, violations


def _unplaced_penalty(sc: Scenario, unplaced_mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Each job's work in the horizon (device-hours) and the penalty for the jobs left unplaced."""
    J = len(sc.jobs)
    work_in = np.array([work_in_horizon(sc, j) for j in sc.jobs]) if J else np.zeros(0)
    unplaced_pen = float(
        sum(sc.job_penalty_cny(sc.jobs[j], work_in[j]) for j in np.flatnonzero(unplaced_mask))
    )
    return work_in, unplaced_pen


def _unmet_penalty(sc: Scenario, unmet: np.ndarray) -> tuple[np.ndarray, float]:
    """Each service's unserved demand (Mtokens) and the penalty for it."""
    K = len(sc.services)
    rho = (
        np.array([sc.service_penalty_cny_per_mtoken(k) for k in sc.services]) if K else np.zeros(0)
    )
    unmet_mtok = unmet.sum(axis=(1, 2)) * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN if K else np.zeros(0)
    unmet_pen = float(np.dot(rho, unmet_mtok)) if K else 0.0
    return unmet_mtok, unmet_pen


def _policy_penalty(sc: Scenario, e: Energy) -> tuple[np.ndarray, dict[str, Any], float]:
    """The green counted toward shares (MWh per site-hour), the policy violations and their penalty."""
    pol = sc.policy
    # a share counts the green that reaches the load (at a battery site, not what is stored)
    green_counted = np.minimum(e.green, e.fac)
    violations = policy_violations(sc, green_counted, e.fac, e.grid)
    policy_pen = (
        sum(v["shortfall_mwh"] for v in violations["green_share"])
        * pol.green_shortfall_penalty_cny_per_mwh
    )
    policy_pen += violations["carbon_excess_t"] * pol.carbon_excess_penalty_cny_per_t
    return green_counted, violations, policy_pen


class _Costs(NamedTuple):
    """A plan's cost terms (CNY) and emissions (t), as `plan_kpis` reports them."""

    energy_cost: float
    emissions_t: float
    carbon_cost: float
    certificate_mwh: float
    certificate_cost: float
    payment: float
    resale: float
    start_cost: float
    pause_cost: float
    total: float


def _costs(
    sc: Scenario,
    e: Energy,
    job_costs: tuple[np.ndarray, np.ndarray],
    violations: dict[str, Any],
    churn: pd.DataFrame,
) -> _Costs:
    """The plan's cost terms and their total (energy, carbon, moves, contracts, certificates, churn)."""
    pol = sc.policy
    migration, transfer = job_costs
    energy_cost = float(e.grid_cost.sum() + e.green_cost.sum())
    emissions_t = float(e.emis_kg.sum() / KG_PER_T)
    carbon_cost = pol.carbon_price_cny_per_t * emissions_t
    certificate_mwh = float(sum(v["certificates_mwh"] for v in violations["green_share"]))
    certificate_cost = (pol.certificate_price_cny_per_mwh or 0.0) * certificate_mwh
    payment = float(sc.contract_payment_cny.sum())
    resale = float((e.curtailed * sc.green_resale_cny_per_mwh[:, None]).sum())
    total = (
        energy_cost
        + carbon_cost
        + float(migration.sum() + transfer.sum())
        + payment
        - resale
        + certificate_cost
    )
    is_svc = (churn["kind"] == "inference").to_numpy()
    start_cost = float(churn["churn_cost"].to_numpy(dtype=float)[is_svc].sum())
    pause_cost = float(churn["churn_cost"].to_numpy(dtype=float)[~is_svc].sum())
    total += start_cost + pause_cost
    return _Costs(
        energy_cost=energy_cost,
        emissions_t=emissions_t,
        carbon_cost=carbon_cost,
        certificate_mwh=certificate_mwh,
        certificate_cost=certificate_cost,
        payment=payment,
        resale=resale,
        start_cost=start_cost,
        pause_cost=pause_cost,
        total=total,
    )
