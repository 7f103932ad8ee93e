"""Sparse index sets of the model, computed once from the scenario with vectorised code.

Only allowed combinations exist: a job's options are the (site, accelerator) pairs its
residency, accelerator list and gang size admit; its hours are those in its window where
the site has room for the whole gang; inference flows exist only from sites within the
service's latency limit to regions with demand.

Inference is modelled over *serving units*. With whole devices (`aggregate_services=False`)
a unit is one service, counted in thousands of tokens/s. With devices relaxed to
continuous values, services that share a latency limit, an unmet penalty per token
and the same throughput profile across accelerator types up to a factor (their throughput
is that factor times a common per-type profile) are interchangeable, so they are merged
into one unit counted in device-equivalents of its fastest type: the relaxed LP is the same,
several times smaller (30 services become 6 units in the default scenario).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optimizer.rules import job_options, work_in_horizon
from optimizer.scenario.types import Scenario
from optimizer.units import SECONDS_PER_HOUR, TOKENS_PER_MTOKEN

KTOKENS = 1e-3  # whole-device units count thousands of tokens/s: coefficients near 1 for HiGHS
# throughput profiles equal to this many decimals (0.1%) are one profile; the merged unit
# takes each type's best member throughput, so the relaxation stays a relaxation
PROFILE_DECIMALS = 3


@dataclass
class JobOptions:
    """JOB_OPTIONS: one entry per (job j, site s, accelerator a) the job may use."""

    job: np.ndarray
    site: np.ndarray
    acc: np.ndarray
    run_hours: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray
    start_min: np.ndarray
    start_max: np.ndarray
    preemptible: np.ndarray
    moved: np.ndarray
    migration_cny: np.ndarray
    transfer_cny: np.ndarray

    @classmethod
    def empty(cls) -> JobOptions:
        i, b, f = np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0)
        return cls(i, i, i, i, i, i, i, i, b, b, f, f)

    def subset(self, keep: np.ndarray) -> JobOptions:
        return JobOptions(**{k: v[keep] for k, v in self.__dict__.items()})

    @property
    def size(self) -> int:
        return int(self.job.size)

    @property
    def window_hours(self) -> np.ndarray:
        """Hours in each option's window: its job-hour columns in the model."""
        return self.window_end - self.window_start


@dataclass
class ModelData:
    sc: Scenario
    opts: JobOptions
    job_gang: np.ndarray
    job_work_in_horizon: np.ndarray
    job_penalty_cny: np.ndarray
    job_reasons: list[list[str]]  # why options were ruled out (for unplaced explanations)
    # SERVING_UNITS: a service, or a class of interchangeable services
    unit_of_service: np.ndarray  # [service] -> unit
    service_scale: np.ndarray  # [service] tokens/s per unit of the unit's demand
    unit_demand: np.ndarray  # [unit, region, hour] in the unit's own measure
    unit_unmet_cny: np.ndarray  # [unit] cost of one unit of demand unmet for one hour
    # UNIT_OPTIONS: (unit u, site s, accelerator a) with throughput > 0
    uopt_unit: np.ndarray
    uopt_site: np.ndarray
    uopt_acc: np.ndarray
    uopt_throughput: np.ndarray  # demand measure per device
    # UNIT_ROUTES: (unit u, region r, site s) with latency <= limit
    route_unit: np.ndarray
    route_region: np.ndarray
    route_site: np.ndarray
    # jobs already decided: their device use per (site, type, hour); the jobs and migration
    # modules then add nothing (used to re-solve the rest with the job plan fixed)
    fixed_job_use: np.ndarray | None = None
    # devices [site, type, hour] and grid MW [site, hour] kept out of reach of the solve
    # (room to round inference devices up afterwards)
    reserve_devices: np.ndarray | None = None
    reserve_mw: np.ndarray | None = None
    # if given, the reserve may be used at this price (CNY per device-hour [site, type, hour],
    # per MW-hour [site, hour]): a soft reserve
    reserve_device_cny: np.ndarray | None = None
    reserve_mw_cny: np.ndarray | None = None
    settings: dict[str, bool] = field(default_factory=dict)

    @property
    def S(self) -> int:
        return len(self.sc.sites)

    @property
    def A(self) -> int:
        return len(self.sc.accelerators)

    @property
    def H(self) -> int:
        return self.sc.hours

    @property
    def aggregated(self) -> bool:
        return bool(self.settings.get("aggregate_services", False))

    def sah_key(self, s: np.ndarray, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Flat key of (site, accelerator, hour)."""
        return (np.asarray(s) * self.A + np.asarray(a)) * self.H + np.asarray(h)

    def sh_key(self, s: np.ndarray, h: np.ndarray) -> np.ndarray:
        return np.asarray(s) * self.H + np.asarray(h)


def all_job_options(sc: Scenario) -> tuple[JobOptions, list[list[str]], np.ndarray, np.ndarray]:
    """Every option of every job, the reasons others are ruled out, work and penalty per job."""
    rows: list[tuple] = []
    reasons: list[list[str]] = []
    work = np.zeros(len(sc.jobs))
    penalty = np.zeros(len(sc.jobs))
    for j, job in enumerate(sc.jobs):
        opts, why = job_options(sc, job)
        reasons.append(why)
        work[j] = work_in_horizon(sc, job)
        penalty[j] = sc.job_penalty_cny(job, work[j])
        for o in opts:
            rows.append(
                (
                    j,
                    o.site,
                    o.accelerator,
                    o.run_hours,
                    o.window_start,
                    o.window_end,
                    o.start_min,
                    o.start_max,
                    job.preemptible,
                    o.moved,
                    o.migration_cost_cny,
                    o.transfer_cost_cny,
                )
            )
    cols = list(zip(*rows, strict=True)) if rows else [()] * 12
    ints = [np.asarray(c, dtype=np.int64) for c in cols[:8]]
    bools = [np.asarray(c, dtype=bool) for c in cols[8:10]]
    floats = [np.asarray(c, dtype=float) for c in cols[10:12]]
    return JobOptions(*ints, *bools, *floats), reasons, work, penalty


def serving_units(
    sc: Scenario, aggregate: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[int, float]]]:
    """(unit of each service, scale of each service, unit demand, unit unmet cost, unit throughput per type)."""
    K = len(sc.services)
    unit_of = np.zeros(K, dtype=np.int64)
    scale = np.zeros(K)
    per_hour = np.zeros(K)  # cost of one unit of demand unmet for an hour, per service
    keys: dict[tuple, int] = {}
    unit_tp: list[dict[int, float]] = []
    for k, svc in enumerate(sc.services):
        tp = {sc.accelerator_index[a]: v for a, v in svc.throughput_tokens_per_s.items()}
        rho = sc.service_penalty_cny_per_mtoken(svc)
        if aggregate and tp:
            base = max(tp.values())
            profile = tuple(sorted((a, round(v / base, PROFILE_DECIMALS)) for a, v in tp.items()))
            cost = rho * base * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN
            key: tuple = (svc.latency_limit_ms, profile, rho)
        else:
            base = 1.0 / KTOKENS
            cost = rho * base * SECONDS_PER_HOUR / TOKENS_PER_MTOKEN
            key = ("service", k)
        if key not in keys:
            keys[key] = len(keys)
            unit_tp.append({a: v / base for a, v in tp.items()})
        else:
            best = unit_tp[keys[key]]
            for a, v in tp.items():
                best[a] = max(best.get(a, 0.0), v / base)
        unit_of[k] = keys[key]
        scale[k] = base
        per_hour[k] = cost
    U = len(keys)
    R = len(sc.demand_regions)
    demand = np.zeros((U, R, sc.hours))
    np.add.at(demand, unit_of, sc.demand_tokens_per_s / scale[:, None, None])
    # services of a class may differ in throughput scale, so in what a device-equivalent of
    # unmet demand costs them: the class takes the cheapest, which keeps the relaxation a
    # relaxation (its bound stays valid); the whole-device re-solve prices each exactly
    unmet = np.full(U, np.inf)
    np.minimum.at(unmet, unit_of, per_hour)
    return unit_of, scale, demand, unmet, unit_tp


def build_sets(
    sc: Scenario,
    *,
    tight: bool = True,
    aggregate_services: bool = False,
    options: JobOptions | None = None,
    fixed_job_use: np.ndarray | None = None,
    all_options: tuple[JobOptions, list[list[str]], np.ndarray, np.ndarray] | None = None,
    reserve_devices: np.ndarray | None = None,
    reserve_mw: np.ndarray | None = None,
    reserve_device_cny: np.ndarray | None = None,
    reserve_mw_cny: np.ndarray | None = None,
    price_replica_starts: bool = True,
    price_pauses: bool = True,
) -> ModelData:
    """Index sets of `sc`; `options` restricts the job options to a subset of all of them."""
    every, reasons, work, penalty = all_options if all_options is not None else all_job_options(sc)
    unit_of, scale, demand, unmet, unit_tp = serving_units(sc, aggregate_services)
    u_u, u_s, u_a, u_t = [], [], [], []
    for u, tps in enumerate(unit_tp):
        for a, t in tps.items():
            for s in np.flatnonzero(sc.installed_devices[:, a] > 0):
                u_u.append(u)
                u_s.append(int(s))
                u_a.append(a)
                u_t.append(t)
    limit = np.zeros(len(unit_tp))
    for k, svc in enumerate(sc.services):
        limit[unit_of[k]] = svc.latency_limit_ms
    r_u, r_r, r_s = [], [], []
    for u, tps in enumerate(unit_tp):
        sites_with = {
            s for s in range(len(sc.sites)) if any(sc.installed_devices[s, a] > 0 for a in tps)
        }
        for r, region in enumerate(sc.demand_regions):
            if not np.any(demand[u, r] > 0):
                continue
            for site in sorted(sites_with):
                lat = sc.latency_ms.get((sc.sites[site].site_id, region))
                if lat is not None and lat <= limit[u]:
                    r_u.append(u)
                    r_r.append(r)
                    r_s.append(site)
    return ModelData(
        sc=sc,
        opts=every if options is None else options,
        job_gang=np.array([j.gang for j in sc.jobs], dtype=np.int64),
        job_work_in_horizon=work,
        job_penalty_cny=penalty,
        job_reasons=reasons,
        unit_of_service=unit_of,
        service_scale=scale,
        unit_demand=demand,
        unit_unmet_cny=unmet,
        uopt_unit=np.asarray(u_u, dtype=np.int64),
        uopt_site=np.asarray(u_s, dtype=np.int64),
        uopt_acc=np.asarray(u_a, dtype=np.int64),
        uopt_throughput=np.asarray(u_t, dtype=float),
        route_unit=np.asarray(r_u, dtype=np.int64),
        route_region=np.asarray(r_r, dtype=np.int64),
        route_site=np.asarray(r_s, dtype=np.int64),
        fixed_job_use=fixed_job_use,
        reserve_devices=reserve_devices,
        reserve_mw=reserve_mw,
        reserve_device_cny=reserve_device_cny,
        reserve_mw_cny=reserve_mw_cny,
        settings={
            "tight": tight,
            "aggregate_services": aggregate_services,
            # churn rows (churn.py): the large-instance strategy leaves them out of the LPs
            # whose simplex they slow down most and prices them where it matters
            "price_replica_starts": price_replica_starts,
            "price_pauses": price_pauses,
        },
    )
