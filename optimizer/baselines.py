"""What a user would do without the optimizer, as plans to compare against.

* greedy: jobs earliest-deadline-first, each on its cheapest feasible site-hours (marginal
  energy + carbon cost with green supply used first, plus migration and data transfer);
  then inference, each region's demand from the cheapest site within the latency limit.
* carbon_agnostic: each job on its current site, else its data-origin site, else the
  eligible site with the most devices, as soon as possible; then inference from the
  nearest site.

Jobs go first because gangs need whole blocks of devices while inference can take any
devices left within its latency limit; placing inference first crowded gangs out of their
windows (29 of 300 jobs unplaced on the M benchmark instance against 18, the 18 being jobs
no site can run at all).

Both respect device capacity, the grid connection and every job rule, use green supply
first and no battery. They are also the optimizer's fallback when HiGHS finds no plan, and
the greedy plan is its first incumbent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.plan import Schedule, facility_mw
from optimizer.rules import Option, grid_cost_per_mwh, job_options, work_in_horizon
from optimizer.scenario.types import Job, Scenario
from optimizer.units import KW_PER_MW

Mode = Literal["greedy", "carbon_agnostic"]
Order = Literal["deadline", "big_first", "largest_first"]
EPS = 1e-9


@dataclass
class FleetState:
    """Free devices and power headroom as the planner fills the fleet."""

    sc: Scenario
    free: np.ndarray  # [s, a, h] devices
    load: np.ndarray  # [s, h] facility MW so far
    grid_cost: np.ndarray  # [s, h] price of a grid MWh, carbon included

    @classmethod
    def start(cls, sc: Scenario) -> FleetState:
        zero = np.zeros((len(sc.sites), len(sc.accelerators), sc.hours), dtype=np.int64)
        _, fac = facility_mw(sc, zero)  # idle load of every available device
        return cls(sc, sc.capacity.astype(np.int64).copy(), fac, grid_cost_per_mwh(sc))

    def headroom(self, s: int | np.ndarray, h: np.ndarray | slice) -> np.ndarray:
        sc = self.sc
        return sc.firm_supply_limit_mw[s, h] - self.load[s, h]

    def cost(self, s: int, h: np.ndarray | slice, mw: float) -> np.ndarray:
        """Marginal cost of `mw` more at site s in hours h: green left first, then grid."""
        sc = self.sc
        green_left = np.maximum(sc.green_available_mw[s, h] - self.load[s, h], 0.0)
        on_green = np.minimum(mw, green_left)
        return (
            on_green * sc.green_marginal_cny_per_mwh[s, h] + (mw - on_green) * self.grid_cost[s, h]
        )

    def take(self, s: int, a: int, h: np.ndarray, devices: int | np.ndarray) -> None:
        sc = self.sc
        self.free[s, a, h] -= devices
        self.load[s, h] += (
            np.asarray(devices) * (sc.busy_kw[a] - sc.idle_kw[a]) / KW_PER_MW * sc.pue[s]
        )


def plan_baseline(sc: Scenario, mode: Mode, order: Order = "deadline") -> Schedule:
    sched = Schedule.empty(sc)
    st = FleetState.start(sc)
    _place_jobs(sc, st, sched, mode, order)
    _place_inference(sc, st, sched, mode)
    return sched


def job_order(sc: Scenario, order: Order) -> list[int]:
    """Jobs in the order a planner places them.

    deadline: earliest deadline first (the greedy baseline). big_first: non-preemptible
    jobs first, then by most device-hours in this horizon, so that large gangs find whole
    blocks before small jobs fragment the fleet (the order of first-fit-decreasing bin
    packing). largest_first: most device-hours first whether preemptible or not, so that a
    gang as large as a site's whole fleet of its type is placed before anything else holds
    a device there.
    """
    if order == "deadline":
        return sorted(
            range(len(sc.jobs)),
            key=lambda j: (sc.jobs[j].deadline, sc.jobs[j].release, sc.jobs[j].job_id),
        )
    return sorted(
        range(len(sc.jobs)),
        key=lambda j: (
            sc.jobs[j].preemptible if order == "big_first" else False,
            -work_in_horizon(sc, sc.jobs[j]),
            sc.jobs[j].deadline,
            sc.jobs[j].job_id,
        ),
    )


# --------------------------------------------------------------------------- inference
def _place_inference(sc: Scenario, st: FleetState, sched: Schedule, mode: Mode) -> None:
    demand = sc.demand_tokens_per_s
    for k, svc in enumerate(sc.services):
        types = [(sc.accelerator_index[a], tp) for a, tp in svc.throughput_tokens_per_s.items()]
        for r, region in enumerate(sc.demand_regions):
            if not np.any(demand[k, r] > 0):
                continue
            sites = [
                (s, sc.latency_ms[(site.site_id, region)])
                for s, site in enumerate(sc.sites)
                if (site.site_id, region) in sc.latency_ms
                and sc.latency_ms[(site.site_id, region)] <= svc.latency_limit_ms
                and any(sc.installed_devices[s, a] > 0 for a, _ in types)
            ]
            if not sites:
                continue
            for h in np.flatnonzero(demand[k, r] > 0):
                left = float(demand[k, r, h])
                for s, a, tp in _service_order(sc, st, sites, types, int(h), mode):
                    if left <= EPS:
                        break
                    # spare throughput of devices this service already holds here
                    spare = (
                        sched.svc_devices[k, s, :, h] @ _tp_vector(sc, types)
                        - sched.flows[k, :, s, h].sum()
                    )
                    use = min(left, max(spare, 0.0))
                    if use > EPS:
                        sched.flows[k, r, s, h] += use
                        left -= use
                    if left <= EPS:
                        break
                    mw_per_dev = (sc.busy_kw[a] - sc.idle_kw[a]) / KW_PER_MW * sc.pue[s]
                    by_power = (
                        math.floor(st.headroom(s, np.array([h]))[0] / mw_per_dev + EPS)
                        if mw_per_dev > 0
                        else 10**9
                    )
                    n = min(math.ceil(left / tp - EPS), int(st.free[s, a, h]), by_power)
                    if n <= 0:
                        continue
                    st.take(s, a, np.array([h]), n)
                    sched.svc_devices[k, s, a, h] += n
                    served = min(left, n * tp)
                    sched.flows[k, r, s, h] += served
                    left -= served


def _tp_vector(sc: Scenario, types: list[tuple[int, float]]) -> np.ndarray:
    v = np.zeros(len(sc.accelerators))
    for a, tp in types:
        v[a] = tp
    return v


def _service_order(
    sc: Scenario,
    st: FleetState,
    sites: list[tuple[int, float]],
    types: list[tuple[int, float]],
    h: int,
    mode: Mode,
) -> list[tuple[int, int, float]]:
    cands = [
        (s, a, tp, lat) for s, lat in sites for a, tp in types if sc.installed_devices[s, a] > 0
    ]
    if mode == "carbon_agnostic":
        return [(s, a, tp) for s, a, tp, _ in sorted(cands, key=lambda c: (c[3], -c[2]))]

    if not cands:
        return []
    s_, a_, tp_, _ = (np.array(c) for c in zip(*cands, strict=True))
    s_, a_ = s_.astype(np.int64), a_.astype(np.int64)
    mw = (sc.busy_kw[a_] - sc.idle_kw[a_]) / KW_PER_MW * sc.pue[s_]
    green_left = np.maximum(sc.green_available_mw[s_, h] - st.load[s_, h], 0.0)
    on_green = np.minimum(mw, green_left)
    grid_price = st.grid_cost[s_, h]
    per_token = (on_green * sc.green_price_cny_per_mwh[s_, h] + (mw - on_green) * grid_price) / tp_
    return [(int(s_[i]), int(a_[i]), float(tp_[i])) for i in np.argsort(per_token, kind="stable")]


# --------------------------------------------------------------------------- jobs
def _place_jobs(sc: Scenario, st: FleetState, sched: Schedule, mode: Mode, order: Order) -> None:
    for j in job_order(sc, order):
        job = sc.jobs[j]
        opts, _ = job_options(sc, job)
        if not opts:
            continue
        if mode == "carbon_agnostic":
            best = _agnostic_choice(sc, st, j, opts)
        else:
            best = None
            for o in opts:
                hours, cost = best_hours(sc, st, j, o, cheapest=True)
                if hours is None:
                    continue
                total = cost + o.migration_cost_cny + o.transfer_cost_cny
                if best is None or total < best[2] - EPS:
                    best = (o, hours, total)
        if best is None:
            continue
        o, hours, _ = best
        st.take(o.site, o.accelerator, hours, job.gang)
        sched.job_site[j] = o.site
        sched.job_acc[j] = o.accelerator
        sched.job_hours[j] = np.sort(hours)


def _agnostic_choice(
    sc: Scenario, st: FleetState, j: int, opts: list[Option]
) -> tuple[Option, np.ndarray, float] | None:
    job = sc.jobs[j]
    home = job.current_site or job.data_origin_site
    if home is not None and home in sc.site_index:
        home_s = sc.site_index[home]
        ranked = sorted(
            opts,
            key=lambda o: (o.site != home_s, -int(sc.installed_devices[o.site, o.accelerator])),
        )
    else:
        ranked = sorted(opts, key=lambda o: -int(sc.installed_devices[o.site, o.accelerator]))
    for o in ranked:
        hours, cost = best_hours(sc, st, j, o, cheapest=False)
        if hours is not None:
            return o, hours, cost
    return None


def best_hours(
    sc: Scenario,
    st: FleetState,
    j: int,
    o: Option,
    *,
    cheapest: bool,
    prefer: np.ndarray | None = None,
) -> tuple[np.ndarray | None, float]:
    """The option's hours: cheapest (greedy) or earliest (as soon as possible) feasible ones.

    `prefer` (one weight per window hour, higher first) ranks hours before cost does: the
    LP-guided heuristic passes the LP's run values there.
    """
    job = sc.jobs[j]
    hours = np.arange(o.window_start, o.window_end)
    window = slice(o.window_start, o.window_end)  # the same hours, read as views (faster)
    mw = (
        job.gang
        * (sc.busy_kw[o.accelerator] - sc.idle_kw[o.accelerator])
        / KW_PER_MW
        * sc.pue[o.site]
    )
    ok = (st.free[o.site, o.accelerator, window] >= job.gang) & (
        st.headroom(o.site, window) >= mw - EPS
    )
    cost = st.cost(o.site, window, mw)
    if job.preemptible:
        idx = np.flatnonzero(ok)
        if idx.size < o.run_hours:
            return None, math.inf
        if prefer is not None:
            pick = idx[np.lexsort((cost[idx], -prefer[idx]))[: o.run_hours]]
        elif cheapest:
            pick = idx[np.argsort(cost[idx], kind="stable")[: o.run_hours]]
        else:
            pick = idx[: o.run_hours]
        return hours[pick], float(cost[pick].sum())
    # contiguous: a block of run_hours starting in [start_min, start_max], all hours feasible
    D = o.run_hours
    bad = np.concatenate([[0], np.cumsum(~ok)])
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, cost, 0.0))])
    psum = np.concatenate([[0.0], np.cumsum(prefer)]) if prefer is not None else None
    # every start's block at once; the scan below keeps its order and tolerances
    i = np.arange(o.start_min, o.start_max + 1) - o.window_start
    feasible = np.flatnonzero(bad[i + D] - bad[i] == 0)
    if not feasible.size:
        return None, math.inf
    block_cost = (csum[i + D] - csum[i])[feasible].tolist()
    block_pref = (psum[i + D] - psum[i])[feasible].tolist() if psum is not None else None
    starts = (i[feasible] + o.window_start).tolist()
    if not cheapest:
        best_t, best_c = starts[0], block_cost[0]
        return np.arange(best_t, best_t + D), float(best_c)
    best_t, best_c, best_p = -1, math.inf, -math.inf
    for n, t in enumerate(starts):
        c = block_cost[n]
        p = block_pref[n] if block_pref is not None else 0.0
        if p > best_p + EPS or (p >= best_p - EPS and c < best_c - EPS):
            best_t, best_c, best_p = t, c, p
    if best_t < 0:
        return None, math.inf
    return np.arange(best_t, best_t + D), float(best_c)


def repair_start(sc: Scenario, warm: Schedule) -> Schedule:
    """A previous plan made fit for `sc`: every job keeps its option and hours where they
    still fit (eligible option, the hours it needs inside its window, devices and power
    free), the others are placed greedily; inference is then placed greedily too.

    A plan made for other data (yesterday's, or the base of a what-if with an outage) can
    break today's limits; HiGHS would then drop it as a start, and with it the plan
    stability a warm start is for.
    """
    sched = Schedule.empty(sc)
    st = FleetState.start(sc)
    left: list[int] = []
    for j in job_order(sc, "deadline"):
        job = sc.jobs[j]
        s, a = int(warm.job_site[j]), int(warm.job_acc[j])
        hours = np.asarray(warm.job_hours[j], dtype=np.int64)
        kept = False
        if s >= 0 and hours.size:
            opts, _ = job_options(sc, job)
            o = next((o for o in opts if o.site == s and o.accelerator == a), None)
            if o is not None and _still_fits(sc, st, job, o, hours):
                st.take(s, a, hours, job.gang)
                sched.job_site[j], sched.job_acc[j], sched.job_hours[j] = s, a, np.sort(hours)
                kept = True
        if not kept:
            left.append(j)
    for j in left:
        opts, _ = job_options(sc, sc.jobs[j])
        best: tuple[Option, np.ndarray, float] | None = None
        for o in opts:
            found, cost = best_hours(sc, st, j, o, cheapest=True)
            if found is not None and (best is None or cost + o.migration_cost_cny < best[2]):
                best = (o, found, cost + o.migration_cost_cny)
        if best is not None:
            o, hours, _ = best
            st.take(o.site, o.accelerator, hours, sc.jobs[j].gang)
            sched.job_site[j], sched.job_acc[j], sched.job_hours[j] = (
                o.site,
                o.accelerator,
                np.sort(hours),
            )
    _place_inference(sc, st, sched, "greedy")
    return sched


def _still_fits(sc: Scenario, st: FleetState, job: Job, o: Option, hours: np.ndarray) -> bool:
    """Do `hours` still make a valid run of `job` on option `o`, with devices and power free?"""
    if hours.size != o.run_hours or hours.min() < o.window_start or hours.max() >= o.window_end:
        return False
    if not job.preemptible:
        start = int(hours.min())
        if not np.all(np.diff(np.sort(hours)) == 1) or not o.start_min <= start <= o.start_max:
            return False
    mw = (
        job.gang
        * (sc.busy_kw[o.accelerator] - sc.idle_kw[o.accelerator])
        / KW_PER_MW
        * sc.pue[o.site]
    )
    return bool(
        np.all(st.free[o.site, o.accelerator, hours] >= job.gang)
        and np.all(st.headroom(o.site, hours) >= mw - EPS)
    )
