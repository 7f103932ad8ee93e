"""The optimizer's output: a plan as plain tables, its KPIs, its explanations and the plan
bundle (the audited contract: summary.json plus CSV tables, see docs/bundle.md).

Every planner (the MILP, the greedy and the carbon-agnostic baselines) produces a
`Schedule`; `assemble_plan` turns any schedule into the same tables and KPIs, so the plans
are compared on equal terms.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.rules import job_options, migration_cost_cny, transfer_cost_cny, work_in_horizon
from optimizer.scenario.types import Scenario
from optimizer.units import KG_PER_T, KW_PER_MW, SECONDS_PER_HOUR, TOKENS_PER_MTOKEN

TOL = 1e-6

BUNDLE_TABLES = (
    "workloads",
    "assignments",
    "site_hours",
    "site_hour_devices",
    "service_hours",
    "service_flows",
    "binding",
    "moves",
)

KPI_KEYS = (
    "total_cost_cny",
    "energy_cost_cny",
    "grid_cost_cny",
    "green_cost_cny",
    "carbon_cost_cny",
    "migration_cost_cny",
    "data_transfer_cost_cny",
    "penalty_cny",
    "objective_cny",
    "grid_mwh",
    "green_mwh",
    "curtailed_mwh",
    "facility_mwh",
    "it_mwh",
    "emissions_t",
    "emissions_location_t",
    "green_share",
    "placed",
    "unplaced",
    "unplaced_device_hours",
    "moved_jobs",
    "unmet_mtokens",
    "served_share",
)


@dataclass
class Schedule:
    """Decisions of a planner, dense over the (small) site x type x hour grid.

    `job_site`/`job_acc` are -1 for unplaced jobs; `job_hours[j]` are the hours job j runs.
    Battery arrays are zero for planners that do not use batteries.
    """

    job_site: np.ndarray
    job_acc: np.ndarray
    job_hours: list[np.ndarray]
    job_reason: list[str]
    svc_devices: np.ndarray  # [service, site, accelerator, hour] devices
    flows: np.ndarray  # [service, region, site, hour] tokens/s
    green_mw: np.ndarray | None = None  # [site, hour]; None: use green first (baselines)
    charge_mw: np.ndarray | None = None
    discharge_mw: np.ndarray | None = None
    soc_mwh: np.ndarray | None = None

    @classmethod
    def empty(cls, sc: Scenario) -> Schedule:
        J, K, S, A, R, H = (
            len(sc.jobs),
            len(sc.services),
            len(sc.sites),
            len(sc.accelerators),
            len(sc.demand_regions),
            sc.hours,
        )
        return cls(
            job_site=np.full(J, -1, dtype=np.int64),
            job_acc=np.full(J, -1, dtype=np.int64),
            job_hours=[np.zeros(0, np.int64) for _ in range(J)],
            job_reason=[""] * J,
            svc_devices=np.zeros((K, S, A, H), dtype=np.int64),
            flows=np.zeros((K, R, S, H)),
        )


@dataclass(frozen=True, eq=False)
class Plan:
    summary: dict[str, Any]
    workloads: pd.DataFrame
    assignments: pd.DataFrame
    site_hours: pd.DataFrame
    site_hour_devices: pd.DataFrame
    service_hours: pd.DataFrame
    service_flows: pd.DataFrame
    binding: pd.DataFrame
    moves: pd.DataFrame
    schedule: Schedule | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return str(self.summary["status"])

    def kpis(self) -> dict[str, Any]:
        return {k: self.summary[k] for k in KPI_KEYS if k in self.summary}

    def table(self, name: str) -> pd.DataFrame:
        if name not in BUNDLE_TABLES:
            raise KeyError(name)
        return getattr(self, name)

    def write_bundle(self, path: str | Path) -> Path:
        """Write the bundle atomically: a reader sees all of it or none of it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
        try:
            (tmp / "summary.json").write_text(
                json.dumps(_jsonable(self.summary), indent=2, sort_keys=False) + "\n"
            )
            for name in BUNDLE_TABLES:
                self.table(name).to_csv(tmp / f"{name}.csv", index=False, float_format="%.10g")
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def read_bundle(cls, path: str | Path) -> Plan:
        root = Path(path)
        summary = json.loads((root / "summary.json").read_text())
        tables = {}
        for name in BUNDLE_TABLES:
            f = root / f"{name}.csv"
            tables[name] = (
                pd.read_csv(f, keep_default_na=False, na_values=[""])
                if f.is_file()
                else pd.DataFrame()
            )
        return cls(
            summary=summary,
            workloads=tables["workloads"],
            assignments=tables["assignments"],
            site_hours=tables["site_hours"],
            site_hour_devices=tables["site_hour_devices"],
            service_hours=tables["service_hours"],
            service_flows=tables["service_flows"],
            binding=tables["binding"],
            moves=tables["moves"],
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        f = float(obj)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# --------------------------------------------------------------------------- assembly
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
    S, A, H = len(sc.sites), len(sc.accelerators), sc.hours
    iso = np.array([t.isoformat() for t in sc.timestamps], dtype=object)
    site_ids = np.array(sc.site_ids, dtype=object)
    acc_names = np.array(sc.accelerator_names, dtype=object)
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
    curtailed = np.maximum(avail - green, 0.0)
    price, gprice, ci = (
        sc.grid_price_cny_per_mwh,
        sc.green_price_cny_per_mwh,
        sc.grid_carbon_kg_per_mwh,
    )
    grid_cost = grid * price
    green_cost = green * gprice
    emis_kg = grid * ci
    emis_loc_kg = (grid + green) * ci

    # --- jobs
    J = len(sc.jobs)
    reasons = list(sched.job_reason)
    for unplaced_j in np.flatnonzero(sched.job_site < 0):
        if not reasons[unplaced_j]:
            reasons[unplaced_j] = unplaced_reason(sc, int(unplaced_j), busy, grid, green)
    migration = np.zeros(J)
    transfer = np.zeros(J)
    rows = []
    for j, job in enumerate(sc.jobs):
        js = int(sched.job_site[j])
        placed = js >= 0
        site_id = sc.site_ids[js] if placed else ""
        if placed:
            migration[j] = migration_cost_cny(sc, job, site_id)
            transfer[j] = transfer_cost_cny(sc, job, site_id)
        allowed = sorted(
            {
                sc.site_ids[s2]
                for s2, site in enumerate(sc.sites)
                if (not job.allowed_regions or site.residency_region in job.allowed_regions)
                and any(
                    sc.installed_devices[s2, sc.accelerator_index[a]] >= job.gang
                    for a in job.accelerators
                )
            }
        )
        rows.append(
            {
                "workload_id": job.job_id,
                "kind": job.kind,
                "accelerator": acc_names[sched.job_acc[j]]
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
                "allowed_sites": ";".join(allowed),
                "status": "placed" if placed else "unplaced",
                "site_id": site_id,
                "moved": bool(
                    placed and job.current_site is not None and job.current_site != site_id
                ),
                "migration_cost_cny": migration[j],
                "data_transfer_cost_cny": transfer[j],
                "reason": reasons[j],
            }
        )
    # --- services
    served = sched.flows.sum(axis=2)  # [k, r, h]
    demand = sc.demand_tokens_per_s
    unmet = np.maximum(demand - served, 0.0)
    for k, svc in enumerate(sc.services):
        dev = sched.svc_devices[k]
        used = [acc_names[a] for a in range(A) if dev[:, a].sum() > 0]
        total_d = float(demand[k].sum())
        unmet_share = float(unmet[k].sum() / total_d) if total_d > 0 else 0.0
        reachable = sorted(
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
        main_sites = [site_ids[s] for s in np.argsort(-dev.sum(axis=(1, 2))) if dev[s].sum() > 0]
        reason = ""
        if unmet_share > 1e-6:
            reason = _unmet_reason(sc, k, unmet, reachable)
        rows.append(
            {
                "workload_id": svc.service_id,
                "kind": "inference",
                "accelerator": ";".join(used) if used else ";".join(svc.throughput_tokens_per_s),
                "devices": int(dev.sum(axis=(0, 1)).max()) if dev.size else 0,
                "work_device_hours": float(dev.sum()),
                "work_in_horizon_device_hours": float(dev.sum()),
                "run_hours": int(np.count_nonzero(dev.sum(axis=(0, 1)))),
                "release": iso[0],
                "deadline": sc.timestamp(H).isoformat(),
                "preemptible": False,
                "current_site": "",
                "allowed_sites": ";".join(reachable),
                "status": "placed" if served[k].sum() > 0 or total_d == 0 else "unplaced",
                "site_id": ";".join(main_sites),
                "moved": False,
                "migration_cost_cny": 0.0,
                "data_transfer_cost_cny": 0.0,
                "reason": reason,
            }
        )
    workloads = pd.DataFrame(rows, columns=_WORKLOAD_COLUMNS)

    # --- assignments (job-hours, then service devices)
    jj, hh, gg = job_hour_matrix(sc, sched)
    a_jobs = pd.DataFrame(
        {
            "workload_id": np.array([j.job_id for j in sc.jobs], dtype=object)[jj]
            if J
            else np.zeros(0, object),
            "site_id": site_ids[sched.job_site[jj]] if jj.size else np.zeros(0, object),
            "accelerator": acc_names[sched.job_acc[jj]] if jj.size else np.zeros(0, object),
            "timestamp": iso[hh] if hh.size else np.zeros(0, object),
            "hour": hh,
            "devices": gg,
            "tokens_per_s": np.full(jj.size, np.nan),
        }
    )
    k_, s_, a_, h_ = np.nonzero(sched.svc_devices)
    tp = np.array(
        [
            [svc.throughput_tokens_per_s.get(a, 0.0) for a in sc.accelerator_names]
            for svc in sc.services
        ]
    ).reshape(len(sc.services), A)
    # tokens/s served per (service, site, hour) split over accelerator types by device throughput
    served_ksh = sched.flows.sum(axis=1)  # [k, s, h]
    cap_ksah = sched.svc_devices * tp[:, None, :, None]
    cap_ksh = cap_ksah.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(
            cap_ksh[:, :, None, :] > 0, cap_ksah / np.maximum(cap_ksh[:, :, None, :], 1e-12), 0.0
        )
    tokens = share * served_ksh[:, :, None, :]
    a_svc = pd.DataFrame(
        {
            "workload_id": np.array([k.service_id for k in sc.services], dtype=object)[k_]
            if k_.size
            else np.zeros(0, object),
            "site_id": site_ids[s_],
            "accelerator": acc_names[a_],
            "timestamp": iso[h_],
            "hour": h_,
            "devices": sched.svc_devices[k_, s_, a_, h_],
            "tokens_per_s": tokens[k_, s_, a_, h_],
        }
    )
    assignments = pd.concat([a_jobs, a_svc], ignore_index=True)

    # --- site hours
    si = np.repeat(np.arange(S), H)
    hi = np.tile(np.arange(H), S)
    site_hours = pd.DataFrame(
        {
            "site_id": site_ids[si],
            "timestamp": iso[hi],
            "hour": hi,
            "pue": sc.pue[si],
            "it_mw": it.reshape(-1),
            "facility_mw": fac.reshape(-1),
            "grid_limit_mw": sc.grid_limit_mw[si],
            "green_available_mw": avail.reshape(-1),
            "green_used_mw": green.reshape(-1),
            "curtailed_mw": curtailed.reshape(-1),
            "grid_mw": grid.reshape(-1),
            "battery_charge_mw": ch.reshape(-1),
            "battery_discharge_mw": dis.reshape(-1),
            "battery_soc_mwh": soc.reshape(-1),
            "grid_price_cny_per_mwh": price.reshape(-1),
            "green_price_cny_per_mwh": gprice.reshape(-1),
            "carbon_kg_per_mwh": ci.reshape(-1),
            "energy_cost_cny": (grid_cost + green_cost).reshape(-1),
            "emissions_kg": emis_kg.reshape(-1),
            "emissions_location_kg": emis_loc_kg.reshape(-1),
        }
    )
    # --- site hour devices (installed pairs only)
    fs, fa = np.nonzero(sc.installed_devices > 0)
    ds = np.repeat(fs, H)
    da = np.repeat(fa, H)
    dh = np.tile(np.arange(H), fs.size)
    cap = sc.capacity
    b = busy[ds, da, dh]
    c = cap[ds, da, dh]
    site_hour_devices = pd.DataFrame(
        {
            "site_id": site_ids[ds],
            "timestamp": iso[dh],
            "hour": dh,
            "accelerator": acc_names[da],
            "capacity": c,
            "busy": b,
            "busy_kw": b * sc.busy_kw[da],
            "idle_kw": (c - b) * sc.idle_kw[da],
        }
    )
    # --- service hours and flows
    K = len(sc.services)
    kk = np.repeat(np.arange(K), H)
    kh = np.tile(np.arange(H), K)
    service_hours = pd.DataFrame(
        {
            "service_id": np.array([k.service_id for k in sc.services], dtype=object)[kk]
            if K
            else np.zeros(0, object),
            "timestamp": iso[kh],
            "hour": kh,
            "demand_tokens_per_s": demand.sum(axis=1).reshape(-1),
            "served_tokens_per_s": np.minimum(served, demand).sum(axis=1).reshape(-1),
            "unmet_tokens_per_s": unmet.sum(axis=1).reshape(-1),
        }
    )
    fk, fr, fs2, fh = np.nonzero(sched.flows > TOL)
    regions = np.array(sc.demand_regions, dtype=object)
    service_flows = pd.DataFrame(
        {
            "service_id": np.array([k.service_id for k in sc.services], dtype=object)[fk]
            if fk.size
            else np.zeros(0, object),
            "demand_region": regions[fr] if fr.size else np.zeros(0, object),
            "site_id": site_ids[fs2],
            "timestamp": iso[fh],
            "hour": fh,
            "tokens_per_s": sched.flows[fk, fr, fs2, fh],
            "latency_ms": [
                sc.latency_ms.get((site_ids[s], regions[r]), np.nan)
                for s, r in zip(fs2, fr, strict=True)
            ],
        }
    )

    # --- KPIs
    pol = sc.policy
    unplaced_mask = sched.job_site < 0
    work_in = np.array([work_in_horizon(sc, j) for j in sc.jobs]) if J else np.zeros(0)
    unplaced_pen = float(
        sum(sc.job_penalty_cny(sc.jobs[j], work_in[j]) for j in np.flatnonzero(unplaced_mask))
    )
    rho = (
        np.array([sc.service_penalty_cny_per_mtoken(k) for k in sc.services]) if K else np.zeros(0)
    )
    unmet_mtok = unmet.sum(axis=(1, 2)) * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN if K else np.zeros(0)
    unmet_pen = float(np.dot(rho, unmet_mtok)) if K else 0.0
    violations = policy_violations(sc, green, fac, grid)
    policy_pen = (
        sum(v["shortfall_mwh"] for v in violations["green_share"])
        * pol.green_shortfall_penalty_cny_per_mwh
    )
    policy_pen += violations["carbon_excess_t"] * pol.carbon_excess_penalty_cny_per_t
    energy_cost = float(grid_cost.sum() + green_cost.sum())
    emissions_t = float(emis_kg.sum() / KG_PER_T)
    carbon_cost = pol.carbon_price_cny_per_t * emissions_t
    total = energy_cost + carbon_cost + float(migration.sum() + transfer.sum())
    penalty = unplaced_pen + unmet_pen + policy_pen
    fac_mwh = float(fac.sum())
    total_demand = float(demand.sum())
    kpis: dict[str, Any] = {
        "total_cost_cny": total,
        "energy_cost_cny": energy_cost,
        "grid_cost_cny": float(grid_cost.sum()),
        "green_cost_cny": float(green_cost.sum()),
        "carbon_cost_cny": carbon_cost,
        "migration_cost_cny": float(migration.sum()),
        "data_transfer_cost_cny": float(transfer.sum()),
        "penalty_cny": penalty,
        "objective_cny": total + penalty,
        "grid_mwh": float(grid.sum()),
        "green_mwh": float(green.sum()),
        "curtailed_mwh": float(curtailed.sum()),
        "facility_mwh": fac_mwh,
        "it_mwh": float(it.sum()),
        "emissions_t": emissions_t,
        "emissions_location_t": float(emis_loc_kg.sum() / KG_PER_T),
        "green_share": float(green.sum() / fac_mwh) if fac_mwh > 0 else 0.0,
        "placed": int(J - unplaced_mask.sum()),
        "unplaced": int(unplaced_mask.sum()),
        "unplaced_device_hours": float(work_in[unplaced_mask].sum()) if J else 0.0,
        "moved_jobs": int(workloads["moved"].sum()) if len(workloads) else 0,
        "unmet_mtokens": float(unmet_mtok.sum()) if K else 0.0,
        "served_share": float(1.0 - unmet.sum() / total_demand) if total_demand > 0 else 1.0,
    }
    binding = binding_limits(sc, busy, grid, green, iso)
    moves = moved_jobs(sc, sched, fac, green, grid)
    summary: dict[str, Any] = {
        "planner": planner,
        "status": status,
        "scenario": sc.name,
        "scenario_fingerprint": sc.fingerprint,
        "start": iso[0] if H else "",
        "hours": H,
        "objective_cny": kpis["objective_cny"],
        "bound_cny": None,
        "gap": None,
        **kpis,
        "penalties": {
            "unplaced_cny": unplaced_pen,
            "unmet_demand_cny": unmet_pen,
            "policy_violation_cny": policy_pen,
        },
        "policy": {
            "carbon_price_cny_per_t": pol.carbon_price_cny_per_t,
            "min_green_share": pol.min_green_share,
            "carbon_budget_t": pol.carbon_budget_t,
            "plan_stability_weight": pol.plan_stability_weight,
        },
        "policy_violations": violations,
        "accounting": {
            "emissions_t": "contract-based: grid import x grid intensity; contracted green supply counts zero",
            "emissions_location_t": "location-based: all energy drawn (grid + green) x grid intensity",
            "green_share": "green used / facility energy",
        },
        "solver": solver or {},
        "timings_s": timings_s or {},
        "model_size": model_size or {},
        "baselines": {},
    }
    if solver:
        summary["bound_cny"] = solver.get("bound_cny")
        summary["gap"] = solver.get("gap")
    return Plan(
        summary=summary,
        workloads=workloads,
        assignments=assignments,
        site_hours=site_hours,
        site_hour_devices=site_hour_devices,
        service_hours=service_hours,
        service_flows=service_flows,
        binding=binding,
        moves=moves,
        schedule=sched,
    )


_WORKLOAD_COLUMNS = [
    "workload_id",
    "kind",
    "accelerator",
    "devices",
    "work_device_hours",
    "work_in_horizon_device_hours",
    "run_hours",
    "release",
    "deadline",
    "preemptible",
    "current_site",
    "allowed_sites",
    "status",
    "site_id",
    "moved",
    "migration_cost_cny",
    "data_transfer_cost_cny",
    "reason",
]


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
    for scope, share, g, f in groups:
        short = max(0.0, share * f - g)
        out["green_share"].append(
            {
                "scope": scope,
                "required": share,
                "achieved": g / f if f > 0 else 0.0,
                "shortfall_mwh": short if short > TOL * max(1.0, f) else 0.0,
            }
        )
    if pol.carbon_budget_t is not None:
        emissions = float((grid * sc.grid_carbon_kg_per_mwh).sum() / KG_PER_T)
        excess = emissions - pol.carbon_budget_t
        out["carbon_excess_t"] = excess if excess > TOL * max(1.0, pol.carbon_budget_t) else 0.0
    return out


def binding_limits(
    sc: Scenario, busy: np.ndarray, grid: np.ndarray, green: np.ndarray, iso: np.ndarray
) -> pd.DataFrame:
    """Site-hours in which devices, the grid connection or the green supply were used up."""
    rows: list[pd.DataFrame] = []
    cap = sc.capacity
    s, a, h = np.nonzero((cap > 0) & (busy >= cap))
    if s.size:
        rows.append(
            pd.DataFrame(
                {
                    "site_id": np.array(sc.site_ids, dtype=object)[s],
                    "timestamp": iso[h],
                    "hour": h,
                    "limit": "devices",
                    "detail": np.array(sc.accelerator_names, dtype=object)[a],
                    "value": busy[s, a, h].astype(float),
                    "limit_value": cap[s, a, h].astype(float),
                }
            )
        )
    lim = sc.grid_limit_mw[:, None] * np.ones_like(grid)
    s, h = np.nonzero((lim > 0) & (grid >= lim - TOL * np.maximum(lim, 1.0)))
    if s.size:
        rows.append(
            pd.DataFrame(
                {
                    "site_id": np.array(sc.site_ids, dtype=object)[s],
                    "timestamp": iso[h],
                    "hour": h,
                    "limit": "grid",
                    "detail": "grid connection",
                    "value": grid[s, h],
                    "limit_value": lim[s, h],
                }
            )
        )
    av = sc.green_available_mw
    s, h = np.nonzero((av > TOL) & (green >= av - TOL * np.maximum(av, 1.0)))
    if s.size:
        rows.append(
            pd.DataFrame(
                {
                    "site_id": np.array(sc.site_ids, dtype=object)[s],
                    "timestamp": iso[h],
                    "hour": h,
                    "limit": "green",
                    "detail": "green supply fully used",
                    "value": green[s, h],
                    "limit_value": av[s, h],
                }
            )
        )
    cols = ["site_id", "timestamp", "hour", "limit", "detail", "value", "limit_value"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return (
        pd.concat(rows, ignore_index=True)
        .sort_values(["site_id", "hour", "limit"], kind="stable")
        .reset_index(drop=True)
    )


def marginal_cost_cny_per_mwh(sc: Scenario, green: np.ndarray, fac: np.ndarray) -> np.ndarray:
    """[site, hour] cost of one more MWh: green price while green is curtailed, else grid + carbon."""
    spare_green = sc.green_available_mw - green > TOL
    grid_cost = (
        sc.grid_price_cny_per_mwh
        + sc.policy.carbon_price_cny_per_t * sc.grid_carbon_kg_per_mwh / KG_PER_T
    )
    return np.where(spare_green, sc.green_price_cny_per_mwh, grid_cost)


def job_mw(sc: Scenario, job_gang: int, acc: int, site: int) -> float:
    """Extra facility MW a gang adds over leaving its devices idle."""
    return job_gang * (sc.busy_kw[acc] - sc.idle_kw[acc]) / KW_PER_MW * sc.pue[site]


def moved_jobs(
    sc: Scenario, sched: Schedule, fac: np.ndarray, green: np.ndarray, grid: np.ndarray
) -> pd.DataFrame:
    """Running jobs the plan moves, with the estimated energy saving that pays for the move."""
    mc = marginal_cost_cny_per_mwh(sc, green, fac)
    rows = []
    for j, job in enumerate(sc.jobs):
        s = int(sched.job_site[j])
        if s < 0 or job.current_site is None or sc.site_ids[s] == job.current_site:
            continue
        a = int(sched.job_acc[j])
        home = sc.site_index[job.current_site]
        new_cost = float(mc[s, sched.job_hours[j]].sum()) * job_mw(sc, job.gang, a, s)
        # what staying would have cost: its cheapest feasible hours at home on any allowed type
        stay = math.inf
        opts, _ = job_options(sc, job)
        for o in opts:
            if o.site != home:
                continue
            prices = mc[home, o.window_start : o.window_end] * job_mw(
                sc, job.gang, o.accelerator, home
            )
            if job.preemptible:
                c = float(np.sort(prices)[: o.run_hours].sum())
            else:
                sums = np.convolve(prices, np.ones(o.run_hours), mode="valid")
                lo, hi = o.start_min - o.window_start, o.start_max - o.window_start
                c = float(sums[lo : hi + 1].min()) if hi >= lo else math.inf
            stay = min(stay, c)
        migration = migration_cost_cny(sc, job, sc.site_ids[s])
        rows.append(
            {
                "workload_id": job.job_id,
                "from_site": job.current_site,
                "to_site": sc.site_ids[s],
                "migration_cost_cny": migration,
                "energy_cost_here_cny": new_cost,
                "energy_cost_if_stayed_cny": stay if math.isfinite(stay) else None,
                "net_saving_cny": (stay - new_cost - migration) if math.isfinite(stay) else None,
                "why": "its home site could not hold it in its window"
                if not math.isfinite(stay)
                else "energy saving exceeds the migration cost",
            }
        )
    cols = [
        "workload_id",
        "from_site",
        "to_site",
        "migration_cost_cny",
        "energy_cost_here_cny",
        "energy_cost_if_stayed_cny",
        "net_saving_cny",
        "why",
    ]
    return pd.DataFrame(rows, columns=cols)


def _unmet_reason(sc: Scenario, k: int, unmet: np.ndarray, reachable: list[str]) -> str:
    svc = sc.services[k]
    if not reachable:
        return (
            f"no site with a suitable accelerator within {svc.latency_limit_ms:g} ms of its users"
        )
    hours = np.flatnonzero(unmet[k].sum(axis=0) > TOL)
    share = unmet[k].sum() / max(sc.demand_tokens_per_s[k].sum(), 1e-12)
    return (
        f"{share:.1%} of demand unmet in {hours.size} h: devices or power at sites within "
        f"{svc.latency_limit_ms:g} ms ({', '.join(reachable)}) used up"
    )


def unplaced_reason(
    sc: Scenario, j: int, busy: np.ndarray, grid: np.ndarray, green: np.ndarray
) -> str:
    """Why job j is not in the plan: no eligible option, no room in its window, or cost."""
    job = sc.jobs[j]
    opts, why = job_options(sc, job)
    if not opts:
        return "cannot run anywhere: " + "; ".join(why)
    cap = sc.capacity
    headroom = sc.grid_limit_mw[:, None] - grid + (sc.green_available_mw - green)
    best: tuple[int, Any, str] = (-1, None, "")
    for o in opts:
        hours = np.arange(o.window_start, o.window_end)
        room_dev = (
            cap[o.site, o.accelerator, hours] - busy[o.site, o.accelerator, hours] >= job.gang
        )
        room_pow = headroom[o.site, hours] >= job_mw(sc, job.gang, o.accelerator, o.site) - TOL
        if job.preemptible:
            n_dev, n_both = int(room_dev.sum()), int((room_dev & room_pow).sum())
        else:  # a block must fit: count the longest run of hours with room among allowed starts
            n_dev = _longest_block(room_dev, o)
            n_both = _longest_block(room_dev & room_pow, o)
        if n_both > best[0]:
            limit = "devices" if n_dev < o.run_hours else "power"
            best = (n_both, o, limit)
    n, o, limit = best
    assert o is not None
    where = f"{sc.site_ids[o.site]}/{sc.accelerator_names[o.accelerator]}"
    if n < o.run_hours:
        word = (
            f"free {sc.accelerator_names[o.accelerator]} devices"
            if limit == "devices"
            else "grid and green power headroom"
        )
        block = "" if job.preemptible else " in one block"
        return (
            f"deadline cannot be met: needs {o.run_hours} h{block} of {job.gang} devices between "
            f"{sc.timestamp(o.window_start).isoformat()} and {sc.timestamp(o.window_end).isoformat()}, "
            f"but the best option ({where}) has {word} in only {n} h"
        )
    return f"left unplaced: running it would cost more than its unplaced penalty ({sc.job_penalty_cny(job, work_in_horizon(sc, job)):.0f} CNY)"


def _longest_block(room: np.ndarray, o: Any) -> int:
    """Longest run of hours with room that starts at an allowed block start of option `o`."""
    best = 0
    for t in range(o.start_min, o.start_max + 1):
        i = t - o.window_start
        n = 0
        while i + n < room.size and room[i + n] and n < o.run_hours:
            n += 1
        best = max(best, n)
    return best


def schedule_from_plan(sc: Scenario, plan: Plan) -> Schedule:
    """The decisions of a stored plan (e.g. read from a bundle) on scenario `sc`.

    Workloads, sites and types are matched by id and hours by timestamp, so a plan made for
    an earlier version of the scenario (the previous night's) maps onto the new horizon:
    what no longer exists or lies outside the horizon is dropped. Used to warm-start.
    """
    sched = Schedule.empty(sc)
    a = plan.assignments
    if a is None or a.empty:
        return sched
    start = sc.start.tz_convert("UTC")
    hours = (
        ((pd.to_datetime(a["timestamp"], utc=True) - start).dt.total_seconds() // 3600)
        .astype(int)
        .to_numpy()
    )
    ok = (hours >= 0) & (hours < sc.hours)
    site = a["site_id"].map(sc.site_index)
    acc = a["accelerator"].map(sc.accelerator_index)
    ok &= site.notna().to_numpy() & acc.notna().to_numpy()
    job_index = {j.job_id: i for i, j in enumerate(sc.jobs)}
    svc_index = {k.service_id: i for i, k in enumerate(sc.services)}
    hours_of: dict[int, list[int]] = {}
    for wid, s, ac, h, n, good in zip(
        a["workload_id"], site, acc, hours, a["devices"], ok, strict=True
    ):
        if not good:
            continue
        if wid in job_index:
            j = job_index[wid]
            sched.job_site[j] = int(s)
            sched.job_acc[j] = int(ac)
            hours_of.setdefault(j, []).append(int(h))
        elif wid in svc_index:
            sched.svc_devices[svc_index[wid], int(s), int(ac), int(h)] = int(n)
    for j, hs in hours_of.items():
        sched.job_hours[j] = np.array(sorted(set(hs)), dtype=np.int64)
    flows = plan.service_flows
    if flows is not None and not flows.empty:
        fh = (
            ((pd.to_datetime(flows["timestamp"], utc=True) - start).dt.total_seconds() // 3600)
            .astype(int)
            .to_numpy()
        )
        for wid, r, s, h, v in zip(
            flows["service_id"],
            flows["demand_region"],
            flows["site_id"],
            fh,
            flows["tokens_per_s"],
            strict=True,
        ):
            if (
                wid in svc_index
                and r in sc.region_index
                and s in sc.site_index
                and 0 <= h < sc.hours
            ):
                sched.flows[svc_index[wid], sc.region_index[r], sc.site_index[s], h] = float(v)
    return sched
