"""Any planner's `Schedule` as a `Plan`: the energy of every site-hour, the bundle tables,
the KPIs and the explanations, so every planner's plans are compared on equal terms.

`assemble_plan` runs one builder per table, in bundle order; each returns a DataFrame with
the columns `contract.py` declares.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from optimizer.actions import actions_table
from optimizer.contract import ACCOUNTING, WORKLOADS, Kpis
from optimizer.plan.cases import green_cases
from optimizer.plan.explain import (
    binding_limits,
    churn_decisions,
    moved_jobs,
    served_by_type,
    unmet_reason,
    unplaced_reason,
)
from optimizer.plan.kpis import cfe_by_site, plan_kpis
from optimizer.plan.types import TOL, Energy, Plan, Schedule, lane_name
from optimizer.rules import (
    migration_cost_cny,
    pause_cost_cny,
    pauses_of,
    replica_changes,
    replica_start_cost_cny,
    transfer_cost_cny,
    work_in_horizon,
)
from optimizer.scenario.types import Job, Scenario
from optimizer.units import KW_PER_MW


def job_hour_matrix(sc: Scenario, sched: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(job, hour, gang) of every job-hour run, flattened."""
    lens = np.array([h.size for h in sched.job_hours], dtype=np.int64)
    jobs = np.repeat(np.arange(len(sc.jobs)), lens)
    hours = np.concatenate(sched.job_hours) if len(sched.job_hours) else np.zeros(0, np.int64)
    gang = np.array([j.gang for j in sc.jobs], dtype=np.int64)[jobs]
    return jobs, hours.astype(np.int64), gang


def busy_devices(sc: Scenario, sched: Schedule) -> np.ndarray:
    """[site, accelerator, hour] devices busy with jobs and inference."""
    busy = sched.svc_devices.sum(axis=0).astype(np.int64)
    jobs, hours, gang = job_hour_matrix(sc, sched)
    if sched.job_lane is not None:
        # the jobs of a flexible lane share its devices: count them once per lane-hour
        lane = sched.job_lane[jobs]
        solo = lane < 0
        _, first = np.unique(np.stack([lane[~solo], hours[~solo]]), axis=1, return_index=True)
        keep = np.concatenate([np.flatnonzero(solo), np.flatnonzero(~solo)[first]])
        jobs, hours, gang = jobs[keep], hours[keep], gang[keep]
    np.add.at(busy, (sched.job_site[jobs], sched.job_acc[jobs], hours), gang)
    return busy


def facility_mw(sc: Scenario, busy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IT MW, facility MW) per [site, hour] for `busy` devices; idle available devices count."""
    cap = sc.capacity
    it_kw = np.einsum("sah,a->sh", busy, sc.busy_kw) + np.einsum(
        "sah,a->sh", cap - busy, sc.idle_kw
    )
    it = it_kw / KW_PER_MW
    return it, it * sc.pue[:, None]


def job_status(sc: Scenario, job: Job, placed: bool) -> str:
    """`on_track` for a running job due after the horizon: it does its in-horizon share."""
    if not placed:
        return "unplaced"
    return "on_track" if job.deadline > sc.hours else "placed"


def residual_mix_note(sc: Scenario) -> str:
    """Where the contract-based accounting used a residual mix, and where the average
    stood in for it."""
    given, n = int(sc.residual_mix_given.sum()), sc.residual_mix_given.size
    if given == n:
        return "residual mix given for every site-hour"
    if given == 0:
        return "no residual mix given: the average grid intensity stands in for it everywhere"
    return f"residual mix given for {given} of {n} site-hours; the average stands in elsewhere"


def site_energy(sc: Scenario, sched: Schedule) -> Energy:
    """Facility power from the busy devices and batteries, green supply used first (or as
    the planner chose), the grid for the rest."""
    S, H = len(sc.sites), sc.hours
    busy = busy_devices(sc, sched)
    it, fac = facility_mw(sc, busy)
    zeros = np.zeros((S, H))
    ch = zeros if sched.charge_mw is None else sched.charge_mw
    dis = zeros if sched.discharge_mw is None else sched.discharge_mw
    if sched.soc_mwh is None:
        # a battery the planner leaves idle keeps its initial charge (not an empty battery)
        soc0 = np.array([b.battery.initial_mwh if b.battery else 0.0 for b in sc.sites])
        soc = np.repeat(soc0.reshape(S, 1), H, axis=1)
    else:
        soc = sched.soc_mwh
    need = fac + ch - dis
    avail = sc.green_available_mw
    green_pref = avail if sched.green_mw is None else sched.green_mw
    green = np.clip(np.minimum(green_pref, need), 0.0, avail)
    grid = np.maximum(need - green, 0.0)
    ci = sc.grid_carbon_kg_per_mwh
    return Energy(
        busy=busy,
        it=it,
        fac=fac,
        charge=ch,
        discharge=dis,
        soc=soc,
        green=green,
        grid=grid,
        curtailed=np.maximum(avail - green, 0.0),
        grid_cost=grid * sc.grid_price_cny_per_mwh,
        green_cost=green * sc.green_price_cny_per_mwh,
        emis_kg=grid * sc.contract_carbon_kg_per_mwh,
        emis_loc_kg=(grid + green) * ci,
    )


def _allowed_sites(sc: Scenario, job: Job) -> str:
    """The sites `job` may run at (its residency regions, a type with room for its gang),
    ';'-joined."""
    allowed = {
        sc.site_ids[s]
        for s, site in enumerate(sc.sites)
        if (not job.allowed_regions or site.residency_region in job.allowed_regions)
        and any(
            sc.installed_devices[s, sc.accelerator_index[a]] >= job.gang for a in job.accelerators
        )
    }
    return ";".join(sorted(allowed))


def job_rows(
    sc: Scenario, sched: Schedule, e: Energy
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """workloads.csv rows of the jobs, and each job's (migration, data transfer) cost."""
    J = len(sc.jobs)
    reasons = list(sched.job_reason)
    for unplaced_j in np.flatnonzero(sched.job_site < 0):
        if not reasons[unplaced_j]:
            reasons[unplaced_j] = unplaced_reason(sc, int(unplaced_j), e.busy, e.grid, e.green)
    migration = np.zeros(J)
    transfer = np.zeros(J)
    rows = []
    allowed: dict[tuple[Any, ...], str] = {}  # by what decides it: jobs share a few answers
    for j, job in enumerate(sc.jobs):
        key = (job.allowed_regions, tuple(job.accelerators), job.gang)
        if key not in allowed:
            allowed[key] = _allowed_sites(sc, job)
        js = int(sched.job_site[j])
        placed = js >= 0
        site_id = sc.site_ids[js] if placed else ""
        if placed:
            migration[j] = migration_cost_cny(sc, job, site_id)
            transfer[j] = transfer_cost_cny(sc, job, site_id)
        rows.append(
            {
                "workload_id": job.job_id,
                "kind": job.kind,
                "accelerator": sc.accelerator_names[sched.job_acc[j]]
                if placed
                else ";".join(job.accelerators),
                "devices": job.gang,
                "work_device_hours": job.work_device_hours,
                "work_in_horizon_device_hours": work_in_horizon(sc, job),
                "run_hours": int(sched.job_hours[j].size),
                "release": sc.timestamp(job.release).isoformat(),
                "deadline": sc.timestamp(job.deadline).isoformat(),
                "preemptible": bool(job.preemptible),
                "current_site": job.current_site or "",
                "allowed_sites": allowed[key],
                "status": job_status(sc, job, placed),
                "site_id": site_id,
                "moved": bool(
                    placed and job.current_site is not None and job.current_site != site_id
                ),
                "migration_cost": migration[j],
                "data_transfer_cost": transfer[j],
                "reason": reasons[j],
                **_job_churn(sc, job, sched.job_hours[j]),
                "lane_id": lane_name(int(sched.job_lane[j]))
                if sched.job_lane is not None and sched.job_lane[j] >= 0
                else "",
            }
        )
    return rows, migration, transfer


def _job_churn(sc: Scenario, job: Job, hours: np.ndarray) -> dict[str, Any]:
    pauses = pauses_of(hours)
    return {
        "replica_starts": 0,
        "replica_stops": 0,
        "pauses": pauses,
        "churn_cost": pauses * pause_cost_cny(sc, job),
    }


def _service_churn(sc: Scenario, devices: np.ndarray) -> dict[str, Any]:
    """Starts and stops of one service's devices [site, type, hour]."""
    starts, stops = replica_changes(devices)
    n_starts = int(round(float(starts.sum())))
    return {
        "replica_starts": n_starts,
        "replica_stops": int(round(float(stops.sum()))),
        "pauses": 0,
        "churn_cost": n_starts * replica_start_cost_cny(sc),
    }


def _reachable_sites(sc: Scenario, k: int) -> list[str]:
    """Sites with one of the service's types within its latency limit of a region with demand."""
    svc, demand = sc.services[k], sc.demand_tokens_per_s
    return sorted(
        {
            s_id
            for (s_id, region), ms in sc.latency_ms.items()
            if ms <= svc.latency_limit_ms
            and region in sc.demand_regions
            and demand[k, sc.region_index[region]].sum() > 0
            and any(
                sc.installed_devices[sc.site_index[s_id], sc.accelerator_index[a]] > 0
                for a in svc.throughput_tokens_per_s
            )
        }
    )


def service_rows(sc: Scenario, sched: Schedule, unmet: np.ndarray) -> list[dict[str, Any]]:
    """workloads.csv rows of the inference services."""
    A, H = len(sc.accelerators), sc.hours
    site_ids = np.array(sc.site_ids, dtype=object)
    served = sched.flows.sum(axis=2)  # [k, r, h]
    demand = sc.demand_tokens_per_s
    rows = []
    for k, svc in enumerate(sc.services):
        dev = sched.svc_devices[k]
        used = [sc.accelerator_names[a] for a in range(A) if dev[:, a].sum() > 0]
        total_d = float(demand[k].sum())
        unmet_share = float(unmet[k].sum() / total_d) if total_d > 0 else 0.0
        reachable = _reachable_sites(sc, k)
        main_sites = [site_ids[s] for s in np.argsort(-dev.sum(axis=(1, 2))) if dev[s].sum() > 0]
        rows.append(
            {
                "workload_id": svc.service_id,
                "kind": "inference",
                "accelerator": ";".join(used) if used else ";".join(svc.throughput_tokens_per_s),
                "devices": int(dev.sum(axis=(0, 1)).max()) if dev.size else 0,
                "work_device_hours": float(dev.sum()),
                "work_in_horizon_device_hours": float(dev.sum()),
                "run_hours": int(np.count_nonzero(dev.sum(axis=(0, 1)))),
                "release": sc.timestamp(0).isoformat(),
                "deadline": sc.timestamp(H).isoformat(),
                "preemptible": False,
                "current_site": "",
                "allowed_sites": ";".join(reachable),
                "status": "placed" if served[k].sum() > 0 or total_d == 0 else "unplaced",
                "site_id": ";".join(main_sites),
                "moved": False,
                "migration_cost": 0.0,
                "data_transfer_cost": 0.0,
                "reason": unmet_reason(sc, k, unmet, reachable) if unmet_share > 1e-6 else "",
                **_service_churn(sc, dev),
                "lane_id": "",
            }
        )
    return rows


def assignments_table(sc: Scenario, sched: Schedule, iso: np.ndarray) -> pd.DataFrame:
    """Job-hours, then service devices per (site, type, hour) with the tokens they serve."""
    J = len(sc.jobs)
    site_ids = np.array(sc.site_ids, dtype=object)
    acc_names = np.array(sc.accelerator_names, dtype=object)
    none = np.zeros(0, object)
    jj, hh, gg = job_hour_matrix(sc, sched)
    a_jobs = pd.DataFrame(
        {
            "workload_id": np.array([j.job_id for j in sc.jobs], dtype=object)[jj] if J else none,
            "site_id": site_ids[sched.job_site[jj]] if jj.size else none,
            "accelerator": acc_names[sched.job_acc[jj]] if jj.size else none,
            "timestamp": iso[hh] if hh.size else none,
            "hour": hh,
            "devices": gg,
            "tokens_per_s": np.full(jj.size, np.nan),
        }
    )
    k_, s_, a_, h_ = np.nonzero(sched.svc_devices)
    tokens = served_by_type(sc, sched)
    a_svc = pd.DataFrame(
        {
            "workload_id": np.array([k.service_id for k in sc.services], dtype=object)[k_]
            if k_.size
            else none,
            "site_id": site_ids[s_],
            "accelerator": acc_names[a_],
            "timestamp": iso[h_],
            "hour": h_,
            "devices": sched.svc_devices[k_, s_, a_, h_],
            "tokens_per_s": tokens[k_, s_, a_, h_],
        }
    )
    return pd.concat([a_jobs, a_svc], ignore_index=True)


def site_hours_table(sc: Scenario, e: Energy, iso: np.ndarray) -> pd.DataFrame:
    S, H = len(sc.sites), sc.hours
    si = np.repeat(np.arange(S), H)
    hi = np.tile(np.arange(H), S)
    return pd.DataFrame(
        {
            "site_id": np.array(sc.site_ids, dtype=object)[si],
            "timestamp": iso[hi],
            "hour": hi,
            "pue": sc.pue[si],
            "it_mw": e.it.reshape(-1),
            "facility_mw": e.fac.reshape(-1),
            "grid_limit_mw": sc.grid_limit_mw[si],
            "green_available_mw": sc.green_available_mw.reshape(-1),
            "green_used_mw": e.green.reshape(-1),
            "curtailed_mw": e.curtailed.reshape(-1),
            "grid_mw": e.grid.reshape(-1),
            "battery_charge_mw": e.charge.reshape(-1),
            "battery_discharge_mw": e.discharge.reshape(-1),
            "battery_soc_mwh": e.soc.reshape(-1),
            "grid_price_per_mwh": sc.grid_price_cny_per_mwh.reshape(-1),
            "green_price_per_mwh": sc.green_price_cny_per_mwh.reshape(-1),
            "carbon_kg_per_mwh": sc.grid_carbon_kg_per_mwh.reshape(-1),
            "energy_cost": (e.grid_cost + e.green_cost).reshape(-1),
            "emissions_kg": e.emis_kg.reshape(-1),
            "emissions_location_kg": e.emis_loc_kg.reshape(-1),
        }
    )


def site_hour_devices_table(sc: Scenario, busy: np.ndarray, iso: np.ndarray) -> pd.DataFrame:
    """Installed (site, type) pairs only; power columns are totals over the devices."""
    H = sc.hours
    fs, fa = np.nonzero(sc.installed_devices > 0)
    ds = np.repeat(fs, H)
    da = np.repeat(fa, H)
    dh = np.tile(np.arange(H), fs.size)
    b = busy[ds, da, dh]
    c = sc.capacity[ds, da, dh]
    return pd.DataFrame(
        {
            "site_id": np.array(sc.site_ids, dtype=object)[ds],
            "timestamp": iso[dh],
            "hour": dh,
            "accelerator": np.array(sc.accelerator_names, dtype=object)[da],
            "capacity": c,
            "busy": b,
            "busy_power_kw": b * sc.busy_kw[da],
            "idle_power_kw": (c - b) * sc.idle_kw[da],
        }
    )


def service_tables(
    sc: Scenario, sched: Schedule, unmet: np.ndarray, iso: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(service_hours, service_flows)."""
    K, H = len(sc.services), sc.hours
    demand = sc.demand_tokens_per_s
    served = sched.flows.sum(axis=2)  # [k, r, h]
    svc_ids = np.array([k.service_id for k in sc.services], dtype=object)
    kk = np.repeat(np.arange(K), H)
    kh = np.tile(np.arange(H), K)
    service_hours = pd.DataFrame(
        {
            "service_id": svc_ids[kk] if K else np.zeros(0, object),
            "timestamp": iso[kh],
            "hour": kh,
            "demand_tokens_per_s": demand.sum(axis=1).reshape(-1),
            "served_tokens_per_s": np.minimum(served, demand).sum(axis=1).reshape(-1),
            "unmet_tokens_per_s": unmet.sum(axis=1).reshape(-1),
        }
    )
    fk, fr, fs, fh = np.nonzero(sched.flows > TOL)
    site_ids = np.array(sc.site_ids, dtype=object)
    regions = np.array(sc.demand_regions, dtype=object)
    service_flows = pd.DataFrame(
        {
            "service_id": svc_ids[fk] if fk.size else np.zeros(0, object),
            "demand_region": regions[fr] if fr.size else np.zeros(0, object),
            "site_id": site_ids[fs],
            "timestamp": iso[fh],
            "hour": fh,
            "tokens_per_s": sched.flows[fk, fr, fs, fh],
            "latency_ms": [
                sc.latency_ms.get((site_ids[s], regions[r]), np.nan)
                for s, r in zip(fs, fr, strict=True)
            ],
        }
    )
    return service_hours, service_flows


@dataclasses.dataclass(frozen=True)
class _Costed:
    """What a plan's KPIs are computed from, and the KPIs: the part of `assemble_plan` a
    comparison of plans by objective needs (`plan_objective`)."""

    energy: Energy
    unmet: np.ndarray  # [service, region, hour] tokens/s
    workloads: pd.DataFrame
    kpis: Kpis
    penalties: dict[str, float]
    violations: dict[str, Any]


def _costed(sc: Scenario, sched: Schedule) -> _Costed:
    e = site_energy(sc, sched)
    unmet = np.maximum(sc.demand_tokens_per_s - sched.flows.sum(axis=2), 0.0)  # [k, r, h]
    rows, migration, transfer = job_rows(sc, sched, e)
    workloads = pd.DataFrame(rows + service_rows(sc, sched, unmet), columns=WORKLOADS.names)
    kpis, penalties, violations = plan_kpis(
        sc,
        energy=e,
        job_costs=(migration, transfer),
        unplaced_mask=sched.job_site < 0,
        unmet=unmet,
        moved_jobs=int(workloads["moved"].sum()) if len(workloads) else 0,
        churn=workloads[["kind", "replica_starts", "replica_stops", "pauses", "churn_cost"]],
    )
    return _Costed(e, unmet, workloads, kpis, penalties, violations)


def plan_objective(sc: Scenario, sched: Schedule) -> float:
    """`assemble_plan(sc, sched, ...).summary["objective"]` without the tables, actions and
    explanations no comparison by objective needs (0.19 s against 0.39-0.76 s for a
    baseline plan of the default scenario, 5 December)."""
    return float(_costed(sc, sched).kpis.objective)


def assemble_plan(
    sc: Scenario,
    sched: Schedule,
    *,
    status: str,
    solver: dict[str, Any] | None = None,
    timings_s: dict[str, float] | None = None,
    model_size: dict[str, int] | None = None,
    planner: str = "milp",
) -> Plan:
    """Tables, KPIs and explanations of `sched` on `sc`."""
    iso = np.array([t.isoformat() for t in sc.timestamps], dtype=object)
    c = _costed(sc, sched)
    e, unmet, workloads, kpis = c.energy, c.unmet, c.workloads, c.kpis
    penalties, violations = c.penalties, c.violations
    service_hours, service_flows = service_tables(sc, sched, unmet, iso)
    pol = sc.policy
    summary: dict[str, Any] = {
        "planner": planner,
        "status": status,
        # which candidate the planner returned (`optimizer.choose`; set by `optimize`)
        "origin": f"baseline:{planner}" if status == "baseline" else None,
        "scenario": sc.name,
        "scenario_fingerprint": sc.fingerprint,
        "start": iso[0] if sc.hours else "",
        "hours": sc.hours,
        "currency": sc.currency,
        "objective": kpis.objective,
        "bound": solver.get("bound") if solver else None,
        "gap": solver.get("gap") if solver else None,
        **kpis.as_dict(),
        "penalties": penalties,
        "policy": {
            "carbon_price_cny_per_t": pol.carbon_price_cny_per_t,
            "min_green_share": pol.min_green_share,
            # the basis a green-share minimum counts: hourly-matched, or annual with certificates
            "green_share_basis": "hourly"
            if pol.certificate_price_cny_per_mwh is None
            else "annual with certificates",
            "certificate_price_cny_per_mwh": pol.certificate_price_cny_per_mwh,
            "carbon_budget_t": pol.carbon_budget_t,
            "plan_stability_weight": pol.plan_stability_weight,
            "robust_green_quantile": pol.robust_green_quantile,
        },
        "policy_violations": violations,
        "cfe_by_site": cfe_by_site(sc, e.green, e.fac),
        "accounting": {**ACCOUNTING, "residual_mix": residual_mix_note(sc)},
        "green_cases": green_cases(sc, e, kpis),
        "solver": solver or {},
        "timings_s": timings_s or {},
        "model_size": model_size or {},
        "baselines": {},
    }
    assignments = assignments_table(sc, sched, iso)
    plan = Plan(
        summary=summary,
        workloads=workloads,
        assignments=assignments,
        site_hours=site_hours_table(sc, e, iso),
        site_hour_devices=site_hour_devices_table(sc, e.busy, iso),
        service_hours=service_hours,
        service_flows=service_flows,
        binding=binding_limits(sc, e.busy, e.grid, e.green, iso),
        moves=moved_jobs(sc, sched, e.green),
        churn=churn_decisions(sc, sched, e.green),
        schedule=sched,
    )
    return dataclasses.replace(plan, actions=actions_table(plan))
