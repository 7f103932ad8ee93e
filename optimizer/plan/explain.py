"""Why a plan looks as it does: the limits it used up (binding.csv), the running jobs it
moves and what that saves (moves.csv), the replica starts and pauses it makes or avoids and
whether they pay (churn.csv), and why a job or a service's demand is left out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from optimizer.contract import BINDING, CHURN, MOVES
from optimizer.plan.types import TOL, Schedule
from optimizer.rules import (
    device_busy_mw,
    grid_cost_per_mwh,
    job_options,
    migration_cost_cny,
    pause_cost_cny,
    pauses_of,
    replica_changes,
    replica_start_cost_cny,
    service_throughput,
    work_in_horizon,
)
from optimizer.scenario.types import Scenario
from optimizer.units import KW_PER_MW


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
    at_grid = (lim > 0) & (grid >= lim - TOL * np.maximum(lim, 1.0))
    rows.append(_site_hour_rows(sc, iso, at_grid, "grid", "grid connection", grid, lim))
    av = sc.green_available_mw
    at_green = (av > TOL) & (green >= av - TOL * np.maximum(av, 1.0))
    rows.append(_site_hour_rows(sc, iso, at_green, "green", "green supply fully used", green, av))
    rows = [r for r in rows if len(r)]
    if not rows:
        return pd.DataFrame(columns=BINDING.names)
    return (
        pd.concat(rows, ignore_index=True)
        .sort_values(["site_id", "hour", "limit"], kind="stable")
        .reset_index(drop=True)
    )


def marginal_cost_per_mwh(sc: Scenario, green: np.ndarray) -> np.ndarray:
    """[site, hour] cost of one more MWh: green price while green is curtailed, else grid + carbon."""
    spare_green = sc.green_available_mw - green > TOL
    return np.where(spare_green, sc.green_price_cny_per_mwh, grid_cost_per_mwh(sc))


def job_mw(sc: Scenario, job_gang: int, acc: int, site: int) -> float:
    """Extra facility MW a gang adds over leaving its devices idle."""
    return job_gang * (sc.busy_kw[acc] - sc.idle_kw[acc]) / KW_PER_MW * sc.pue[site]


def moved_jobs(sc: Scenario, sched: Schedule, green: np.ndarray) -> pd.DataFrame:
    """Running jobs the plan moves, with the estimated energy saving that pays for the move."""
    mc = marginal_cost_per_mwh(sc, green)
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
        stayed = stay if math.isfinite(stay) else None
        rows.append(
            {
                "workload_id": job.job_id,
                "from_site": job.current_site,
                "to_site": sc.site_ids[s],
                "migration_cost": migration,
                "energy_cost_here": new_cost,
                "energy_cost_if_stayed": stayed,
                "net_saving": (stay - new_cost - migration) if stayed is not None else None,
                "why": move_reason(stayed, new_cost, migration, sc.currency),
            }
        )
    return pd.DataFrame(rows, columns=MOVES.names)


def served_by_type(sc: Scenario, sched: Schedule) -> np.ndarray:
    """[service, site, type, hour] tokens/s served: each (service, site, hour)'s served
    tokens split over its devices' types by their throughput."""
    tp = service_throughput(sc)
    served_ksh = sched.flows.sum(axis=1)  # [k, s, h]
    cap_ksah = sched.svc_devices * tp[:, None, :, None]
    cap_ksh = cap_ksah.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(
            cap_ksh[:, :, None, :] > 0, cap_ksah / np.maximum(cap_ksh[:, :, None, :], 1e-12), 0.0
        )
    return share * served_ksh[:, :, None, :]


def dips_filled(devices: np.ndarray) -> np.ndarray:
    """`devices` [..., hour] with every dip filled: each hour at the lower of the most
    devices so far and the most still to come. Its starts are the path's growth alone;
    what it adds over `devices` is what holding the stopped devices until next needed takes."""
    d = np.asarray(devices, dtype=float)
    if d.shape[-1] == 0:
        return d
    ahead = np.flip(np.maximum.accumulate(np.flip(d, axis=-1), axis=-1), axis=-1)
    return np.minimum(np.maximum.accumulate(d, axis=-1), ahead)


CHURN_TOL = 1e-6  # a device's worth of tokens within this share counts as a whole device


def devices_needed(sc: Scenario, sched: Schedule) -> np.ndarray:
    """[service, site, type, hour] whole devices the served tokens need (at most those the
    plan runs): what is left over is held idle."""
    tp = service_throughput(sc)[:, None, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.where(tp > 0, np.ceil(served_by_type(sc, sched) / tp - CHURN_TOL), 0.0)
    return np.minimum(np.maximum(need, 0.0), sched.svc_devices)


def churn_decisions(sc: Scenario, sched: Schedule, green: np.ndarray) -> pd.DataFrame:
    """The churn the plan makes or avoids, and whether it pays on an energy estimate.

    Per service, `stop`: the starts after a dip (the plan stops devices and starts them
    again), against holding them through the dip (busy-over-idle power at the site's
    marginal cost); `hold`: devices the plan keeps beyond what its served tokens need,
    against the starts holding them avoids. Per paused job, `pause`: its pauses against
    running its hours in one block at the cheapest time on the same site and type.
    Estimates at the plan's marginal costs, like moves.csv; the solver saw more (capacity,
    power and green limits, the minimum up-time)."""
    mc = marginal_cost_per_mwh(sc, green)  # [s, h]
    per_start = replica_start_cost_cny(sc)
    busy_mw = device_busy_mw(sc)  # [s, a]
    hour_cost = busy_mw[:, :, None] * mc[:, None, :]  # [s, a, h] one device busy for an hour
    dev = sched.svc_devices.astype(float)
    filled = dips_filled(dev)
    need = devices_needed(sc, sched)
    cur = sc.currency
    rows: list[dict[str, Any]] = []
    for k, svc in enumerate(sc.services):
        starts = replica_changes(dev[k])[0].sum()
        restarts = int(round(starts - replica_changes(filled[k])[0].sum()))
        if restarts > 0:
            gap = filled[k] - dev[k]
            hold = float((gap * hour_cost).sum())
            rows.append(
                _churn_row(
                    svc.service_id,
                    "inference",
                    "stop",
                    restarts,
                    restarts * per_start,
                    hold,
                    float(gap.sum()),
                    hold - restarts * per_start,
                    f"stops devices through dips and starts {restarts} again: holding them "
                    f"would cost {hold:.0f} {cur} of energy against {restarts * per_start:.0f} "
                    f"{cur} of starts",
                )
            )
        held = dev[k] - need[k]
        if held.sum() > CHURN_TOL:
            saved = max(0, int(round(replica_changes(need[k])[0].sum() - starts)))
            energy = float((held * hour_cost).sum())
            rows.append(
                _churn_row(
                    svc.service_id,
                    "inference",
                    "hold",
                    saved,
                    saved * per_start,
                    energy,
                    float(held.sum()),
                    saved * per_start - energy,
                    f"keeps {held.sum():.0f} device-h idle beyond its served demand, "
                    f"{energy:.0f} {cur} of energy, "
                    + (
                        f"to avoid {saved} starts ({saved * per_start:.0f} {cur})"
                        if saved > 0
                        else "and avoids no start by it (the minimum up-time, or whole "
                        "devices kept where a type serves little)"
                    ),
                )
            )
    for j, job in enumerate(sc.jobs):
        hours = np.sort(sched.job_hours[j])
        pauses = pauses_of(hours)
        if pauses == 0:
            continue
        s, a = int(sched.job_site[j]), int(sched.job_acc[j])
        cost = pauses * pause_cost_cny(sc, job)
        prices = mc[s] * job_mw(sc, job.gang, a, s)
        ran = float(prices[hours].sum())
        lo, hi = max(0, job.release), min(sc.hours, job.deadline)
        blocks = np.convolve(prices[lo:hi], np.ones(hours.size), mode="valid")
        block = float(blocks.min()) if blocks.size else math.inf
        saving = block - ran
        rows.append(
            _churn_row(
                job.job_id,
                job.kind,
                "pause",
                pauses,
                cost,
                saving if math.isfinite(saving) else None,
                float(job.gang * hours.size),
                saving - cost if math.isfinite(saving) else None,
                f"pauses {pauses} times ({cost:.0f} {cur}): " + _pause_saving(saving, cur),
            )
        )
    return pd.DataFrame(rows, columns=CHURN.names)


def _pause_saving(saving: float, cur: str) -> str:
    if not math.isfinite(saving):
        return "no single block of its hours fits its window"
    if saving >= 0:
        return f"its hours cost {saving:.0f} {cur} less than its cheapest single block there"
    return (
        f"its hours cost {-saving:.0f} {cur} more than its cheapest single block there (the "
        "pause is for what this estimate does not see: room on the site, a power limit)"
    )


def _churn_row(
    wid: str,
    kind: str,
    decision: str,
    count: int,
    churn_cost: float,
    energy: float | None,
    device_h: float,
    net: float | None,
    why: str,
) -> dict[str, Any]:
    verdict = "" if net is None else ("; pays" if net >= 0 else "; does not pay on this estimate")
    return {
        "workload_id": wid,
        "kind": kind,
        "decision": decision,
        "count": count,
        "churn_cost": churn_cost,
        "energy_cost": energy,
        "device_hours": device_h,
        "net_saving": net,
        "why": why + verdict,
    }


# why a move that does not pay for itself on the energy estimate was made anyway
_PAYS_ELSEWHERE = (
    "the move pays off elsewhere in the plan (room at its home site for other work, a "
    "green-share or carbon limit) or lies within the solver's gap"
)


def move_reason(stayed: float | None, here: float, migration: float, currency: str) -> str:
    """Why a running job moves, in words that agree with its figures: the energy cost if it
    had stayed (None: its home could not hold it), here, and the migration cost. A move
    whose energy saving does not cover the migration cost never claims that it does (it
    once said "energy saving exceeds the migration cost" at a net saving of -155 CNY)."""
    if stayed is None:
        return "its home site could not hold it in its window"
    saving = stayed - here
    if saving - migration > 0:
        return (
            f"energy saving of {saving:.0f} {currency} exceeds the migration cost of "
            f"{migration:.0f} {currency}"
        )
    if saving > 0:
        return (
            f"energy saving of {saving:.0f} {currency} does not cover the migration cost of "
            f"{migration:.0f} {currency}: {_PAYS_ELSEWHERE}"
        )
    return (
        f"no energy saving (its energy costs {-saving:.0f} {currency} more here) and a "
        f"migration cost of {migration:.0f} {currency}: {_PAYS_ELSEWHERE}"
    )


def unmet_reason(sc: Scenario, k: int, unmet: np.ndarray, reachable: list[str]) -> str:
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
    headroom = sc.firm_supply_limit_mw - grid - green
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
    return f"left unplaced: running it would cost more than its unplaced penalty ({sc.job_penalty_cny(job, work_in_horizon(sc, job)):.0f} {sc.currency})"


def _longest_block(room: np.ndarray, o: Any) -> int:
    """Longest run of hours with room that starts at an allowed block start of option `o`
    (capped at its run hours). Vectorised: a year's unplaced contiguous jobs, each explained
    in every plan the guard assembles, took a minute as a loop over starts and hours."""
    i = np.arange(max(o.start_min - o.window_start, 0), o.start_max - o.window_start + 1)
    i = i[i < room.size]
    if not i.size:
        return 0
    no_room = np.append(np.flatnonzero(~room), room.size)  # hours without room, and the end
    run = no_room[np.searchsorted(no_room, i)] - i  # hours with room from each start on
    return int(min(run.max(), o.run_hours))


def _site_hour_rows(
    sc: Scenario,
    iso: np.ndarray,
    binding: np.ndarray,
    limit: str,
    detail: str,
    value: np.ndarray,
    limit_value: np.ndarray,
) -> pd.DataFrame:
    """binding.csv rows of the [site, hour] cells where a site-hour limit binds."""
    s, h = np.nonzero(binding)
    return pd.DataFrame(
        {
            "site_id": np.array(sc.site_ids, dtype=object)[s],
            "timestamp": iso[h],
            "hour": h,
            "limit": limit,
            "detail": detail,
            "value": value[s, h],
            "limit_value": limit_value[s, h],
        }
    )
