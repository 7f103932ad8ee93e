"""Sparse index sets of the model, computed once from the scenario with vectorised code.

Only allowed combinations exist: a job's options are the (site, accelerator) pairs its
residency, accelerator list and gang size admit; its hours are those in its window where
the site has room for the whole gang; an inference service's flows exist only from sites
within its latency limit to regions with demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from optimizer.rules import job_options, work_in_horizon
from optimizer.scenario.types import Scenario


@dataclass
class ModelData:
    sc: Scenario
    # JOB_OPTIONS: one entry per (job j, site s, accelerator a) the job may use
    opt_job: np.ndarray
    opt_site: np.ndarray
    opt_acc: np.ndarray
    opt_run_hours: np.ndarray
    opt_window_start: np.ndarray
    opt_window_end: np.ndarray
    opt_start_min: np.ndarray
    opt_start_max: np.ndarray
    opt_preemptible: np.ndarray
    opt_moved: np.ndarray
    opt_migration_cny: np.ndarray
    opt_transfer_cny: np.ndarray
    job_gang: np.ndarray
    job_work_in_horizon: np.ndarray
    job_penalty_cny: np.ndarray
    job_reasons: list[list[str]]  # why options were ruled out (for unplaced explanations)
    # SERVICE_OPTIONS: (service k, site s, accelerator a) with throughput > 0
    svc_opt_service: np.ndarray
    svc_opt_site: np.ndarray
    svc_opt_acc: np.ndarray
    svc_opt_tokens_per_s: np.ndarray
    # SERVICE_ROUTES: (service k, region r, site s) with latency <= limit
    route_service: np.ndarray
    route_region: np.ndarray
    route_site: np.ndarray
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

    def sah_key(self, s: np.ndarray, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Flat key of (site, accelerator, hour)."""
        return (np.asarray(s) * self.A + np.asarray(a)) * self.H + np.asarray(h)

    def sh_key(self, s: np.ndarray, h: np.ndarray) -> np.ndarray:
        return np.asarray(s) * self.H + np.asarray(h)


def build_sets(sc: Scenario, *, tight: bool = True) -> ModelData:
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

    k_s, k_site, k_acc, k_tp = [], [], [], []
    r_k, r_reg, r_site = [], [], []
    for k, svc in enumerate(sc.services):
        for a_name, tp in svc.throughput_tokens_per_s.items():
            a = sc.accelerator_index[a_name]
            for s in range(len(sc.sites)):
                if sc.installed_devices[s, a] > 0:
                    k_s.append(k)
                    k_site.append(s)
                    k_acc.append(a)
                    k_tp.append(tp)
        has_acc = {s for s, kk in zip(k_site, k_s, strict=True) if kk == k}
        for r, region in enumerate(sc.demand_regions):
            if not np.any(sc.demand_tokens_per_s[k, r] > 0):
                continue
            for s, site in enumerate(sc.sites):
                lat = sc.latency_ms.get((site.site_id, region))
                if lat is not None and lat <= svc.latency_limit_ms and s in has_acc:
                    r_k.append(k)
                    r_reg.append(r)
                    r_site.append(s)
    return ModelData(
        sc=sc,
        opt_job=ints[0],
        opt_site=ints[1],
        opt_acc=ints[2],
        opt_run_hours=ints[3],
        opt_window_start=ints[4],
        opt_window_end=ints[5],
        opt_start_min=ints[6],
        opt_start_max=ints[7],
        opt_preemptible=bools[0],
        opt_moved=bools[1],
        opt_migration_cny=floats[0],
        opt_transfer_cny=floats[1],
        job_gang=np.array([j.gang for j in sc.jobs], dtype=np.int64),
        job_work_in_horizon=work,
        job_penalty_cny=penalty,
        job_reasons=reasons,
        svc_opt_service=np.asarray(k_s, dtype=np.int64),
        svc_opt_site=np.asarray(k_site, dtype=np.int64),
        svc_opt_acc=np.asarray(k_acc, dtype=np.int64),
        svc_opt_tokens_per_s=np.asarray(k_tp, dtype=float),
        route_service=np.asarray(r_k, dtype=np.int64),
        route_region=np.asarray(r_reg, dtype=np.int64),
        route_site=np.asarray(r_site, dtype=np.int64),
        settings={"tight": tight},
    )
