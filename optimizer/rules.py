"""Domain rules shared by the model and the baselines: where a job may run and what it
must get done within this horizon.

Rolling horizon: a job whose deadline lies beyond the horizon end must do its pro-rata
share of the work in this horizon, W x (H - release) / (deadline - release); a
non-preemptible one runs that share as one block ending at the horizon end, so it goes on
without a gap in the next plan. A running non-preemptible job that stays on its site cannot
pause: it runs from the horizon start until it is done or the horizon ends. A running job
that moves loses `lost_hours_on_move` run hours (checkpoint restore) and pays the migration
cost. The independent validator (`optimizer.validate`) re-derives these rules on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.scenario.types import Job, Scenario, run_hours_needed
from optimizer.units import KG_PER_T, KW_PER_MW


@dataclass(frozen=True)
class Option:
    """One way to run a job: on `site` with accelerator `accelerator`."""

    site: int
    accelerator: int
    run_hours: int  # whole hours at full gang within this horizon
    window_start: int  # first hour it may run
    window_end: int  # exclusive
    start_min: int  # non-preemptible: earliest block start
    start_max: int  # non-preemptible: latest block start
    moved: bool  # a running job leaving its current site
    migration_cost_cny: float  # plan-stability weighted
    transfer_cost_cny: float  # moving its data away from its data origin


def work_in_horizon(sc: Scenario, job: Job) -> float:
    """Reference device-hours the job must complete within this horizon."""
    if job.deadline <= sc.hours:
        return job.work_device_hours
    share = (sc.hours - job.release) / (job.deadline - job.release)
    return job.work_device_hours * share


def carbon_cost_per_mwh(sc: Scenario) -> np.ndarray:
    """[site, hour] carbon price on one MWh imported from the grid (contract-based: the
    residual mix where given, else the average; green supply carries none)."""
    return sc.policy.carbon_price_cny_per_t * sc.contract_carbon_kg_per_mwh / KG_PER_T


def device_busy_mw(sc: Scenario) -> np.ndarray:
    """[site, type] the facility MW one device adds running over idling (PUE included)."""
    return sc.pue[:, None] * (sc.busy_kw - sc.idle_kw)[None, :] / KW_PER_MW


def service_throughput(sc: Scenario) -> np.ndarray:
    """[service, type] tokens/s one device serves (0: the type cannot serve it)."""
    return np.array(
        [
            [svc.throughput_tokens_per_s.get(a, 0.0) for a in sc.accelerator_names]
            for svc in sc.services
        ]
    ).reshape(len(sc.services), len(sc.accelerators))


def grid_cost_per_mwh(sc: Scenario) -> np.ndarray:
    """[site, hour] what one more MWh from the grid costs: its price plus the carbon price."""
    return sc.grid_price_cny_per_mwh + carbon_cost_per_mwh(sc)


def site_allowed(sc: Scenario, job: Job, site_pos: int) -> bool:
    site = sc.sites[site_pos]
    return not job.allowed_regions or site.residency_region in job.allowed_regions


def job_options(sc: Scenario, job: Job) -> tuple[list[Option], list[str]]:
    """Every (site, accelerator) the job could run on this horizon, and why others cannot."""
    H = sc.hours
    reasons: list[str] = []
    options: list[Option] = []
    w_in = work_in_horizon(sc, job)
    for a_name in job.accelerators:
        a = sc.accelerator_index[a_name]
        tp = sc.accelerators[a].relative_throughput
        for s, site in enumerate(sc.sites):
            if not site_allowed(sc, job, s):
                continue
            if sc.installed_devices[s, a] < job.gang:
                continue
            moved = job.current_site is not None and site.site_id != job.current_site
            lost = math.ceil(job.lost_hours_on_move - 1e-9) if moved else 0
            r = job.release
            staying_running = job.current_site == site.site_id
            if not job.preemptible and staying_running:
                # it cannot pause: runs from the start until done or until the horizon ends
                total = run_hours_needed(job.work_device_hours, job.gang, tp)
                d_eff = min(job.deadline, H)
                need = min(total, H - r)
                if job.deadline <= H and total > d_eff - r:
                    reasons.append(
                        f"{site.site_id}/{a_name}: needs {total} h but only {d_eff - r} h remain before the deadline"
                    )
                    continue
                smin = smax = r
                end = r + need
            else:
                need = run_hours_needed(w_in, job.gang, tp) + lost
                end = min(job.deadline, H)
                if job.preemptible or job.deadline <= H:
                    smin, smax = r, end - need
                else:  # a block that goes on into the next plan
                    smin = smax = H - need
                if need > end - r or smax < smin or smin < r:
                    reasons.append(
                        f"{site.site_id}/{a_name}: needs {need} h, window has {end - r} h"
                    )
                    continue
            options.append(
                Option(
                    s,
                    a,
                    need,
                    r,
                    end,
                    smin,
                    smax,
                    moved,
                    migration_cost_cny(sc, job, site.site_id),
                    transfer_cost_cny(sc, job, site.site_id),
                )
            )
    if not options and not reasons:
        regions = ", ".join(job.allowed_regions) or "any region"
        reasons.append(
            f"no site in {regions} has {job.gang} devices of {' or '.join(job.accelerators)}"
        )
    return options, reasons


def migration_cost_cny(sc: Scenario, job: Job, site_id: str) -> float:
    """Plan-stability weighted cost of moving a running job to `site_id` (0 if it stays)."""
    if job.current_site is None or job.current_site == site_id:
        return 0.0
    pol = sc.policy
    return pol.plan_stability_weight * (
        job.data_gb * pol.transfer_price_cny_per_gb
        + job.lost_hours_on_move * job.gang * pol.lost_hour_cost_cny_per_device_hour
    )


def transfer_cost_cny(sc: Scenario, job: Job, site_id: str) -> float:
    """Cost of moving a not-yet-running job's data from its origin to `site_id`."""
    if job.current_site is not None or not job.data_origin_site or job.data_origin_site == site_id:
        return 0.0
    return job.data_gb * sc.policy.transfer_price_cny_per_gb


# --- churn (issue 12): what a replica start and a job pause cost ------------------------
MIN_PER_HOUR = 60.0


def replica_start_cost_cny(sc: Scenario) -> float:
    """Cost of starting one inference device for a service: its warm-up minutes of lost
    throughput at the value of a device-hour, plus any fixed cost per start."""
    pol = sc.policy
    warmup_h = pol.replica_warmup_min / MIN_PER_HOUR
    return warmup_h * pol.lost_hour_cost_cny_per_device_hour + pol.replica_start_cost_cny


def pause_cost_cny(sc: Scenario, job: Job) -> float:
    """Cost of one pause of `job`: its whole gang writes a checkpoint and restores it."""
    pol = sc.policy
    hours = (pol.checkpoint_min + pol.restore_min) / MIN_PER_HOUR
    return hours * job.gang * pol.lost_hour_cost_cny_per_device_hour


def replica_min_up_hours(sc: Scenario) -> int:
    """The minimum up-time of a started device in whole hours (at least 1)."""
    return max(1, math.ceil(sc.policy.replica_min_up_hours - 1e-9))


def pauses_of(hours: np.ndarray) -> int:
    """Pauses of a job running in `hours`: its blocks of consecutive hours, less one."""
    h = np.sort(np.asarray(hours, dtype=np.int64))
    return int(np.count_nonzero(h[1:] - h[:-1] > 1))  # not np.diff: called per job, per plan


def replica_changes(devices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) per leading index of `devices` [..., hour]: the increases and
    decreases from each hour to the next. The first hour is the state carried in."""
    step = np.diff(np.asarray(devices, dtype=float), axis=-1)
    return np.maximum(step, 0.0).sum(axis=-1), np.maximum(-step, 0.0).sum(axis=-1)
