"""Whole inference devices from a solution in which they were continuous.

Large instances are solved with the inference devices relaxed to continuous values and
interchangeable services merged into classes (`optimizer.model.sets`); the job decisions
stay binary. HiGHS' rounding heuristics spent minutes on tens of thousands of general
integers (overrunning the time limit) and rarely found a good point, while rounding them
here takes a second:

1. split each class's devices and flows back over its services, in proportion to each
   service's share of the class's demand in each region and hour;
2. floor every (service, site, type, hour), then round up, largest fraction first, where
   devices and power allow;
3. throughput still missing (hours in which the relaxed solution filled a site exactly with
   fractions of devices) goes to other devices within the service's latency limit.

`optimizer.planner` then fixes the job plan and these devices and re-solves the remaining
LP (flows, unmet demand, grid, green, battery), so the plan is feasible for the full MILP.
The relaxed model's dual bound stays a valid bound for the MILP, so the gap is honest.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.power import KW_PER_MW
from optimizer.model.sets import ModelData
from optimizer.rules import device_busy_mw, grid_cost_per_mwh, service_throughput
from optimizer.scenario.types import Scenario

EPS = 1e-6


def disaggregate(m1: LinearModel, d1: ModelData, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuous devices [service, site, type, hour] and flows [service, region, site, hour]
    (tokens/s) of each service, from a solution over merged serving units."""
    sc = d1.sc
    S, A, R, H = d1.S, d1.A, len(sc.demand_regions), d1.H
    U = d1.unit_demand.shape[0]
    N = np.zeros((U, S, A, H))
    dev = m1.vars["v_devices"]
    N[dev.index["unit"], dev.index["site"], dev.index["accelerator"], dev.index["hour"]] = (
        np.maximum(dev.values(x1), 0.0)
    )
    G = np.zeros((U, R, S, H))
    flow = m1.vars["v_flow"]
    G[flow.index["unit"], flow.index["region"], flow.index["site"], flow.index["hour"]] = (
        np.maximum(flow.values(x1), 0.0)
    )
    u = d1.unit_of_service
    # each service's share of its unit's demand per (region, hour), in the unit's measure
    own = sc.demand_tokens_per_s / d1.service_scale[:, None, None]  # [k, r, h]
    total = d1.unit_demand[u]  # [k, r, h]
    share = np.divide(own, total, out=np.zeros_like(own), where=total > 0)
    g = G[u] * share[:, :, None, :]  # [k, r, s, h]
    served_k = g.sum(axis=1)  # [k, s, h]
    served_u = G.sum(axis=1)[u]  # [k, s, h]
    part = np.divide(served_k, served_u, out=np.zeros_like(served_k), where=served_u > EPS)
    devices = N[u] * part[:, :, None, :]  # [k, s, a, h]
    flows = g * d1.service_scale[:, None, None, None]
    return devices, flows


def round_devices(
    d2: ModelData, job_use: np.ndarray, devices: np.ndarray, flows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whole devices [service, site, type, hour] for continuous `devices` within what the
    jobs (`job_use` [site, type, hour]) leave of the devices and of the power, and the
    throughput still missing [service, site, hour] (tokens/s) where nothing was left."""
    sc = d2.sc

    whole = np.floor(devices + EPS)
    busy = job_use + whole.sum(axis=0)
    free = sc.capacity - busy
    it_kw = np.einsum("sah,a->sh", busy, sc.busy_kw) + np.einsum(
        "sah,a->sh", sc.capacity - busy, sc.idle_kw
    )
    headroom = sc.firm_supply_limit_mw - it_kw / KW_PER_MW * sc.pue[:, None]
    mw = device_busy_mw(sc)  # [site, type] per device

    def try_add(k: int, s: int, a: int, h: int) -> bool:
        if free[s, a, h] >= 1 and headroom[s, h] >= mw[s, a] - EPS:
            whole[k, s, a, h] += 1
            free[s, a, h] -= 1
            headroom[s, h] -= mw[s, a]
            return True
        return False

    frac = devices - whole
    cand = np.flatnonzero(frac.reshape(-1) > EPS)
    for flat in cand[np.argsort(-frac.reshape(-1)[cand], kind="stable")]:
        try_add(*(int(v) for v in np.unravel_index(flat, frac.shape)))

    # throughput still missing per (service, site, hour), placed within latency
    tp = service_throughput(sc)  # [k, a]
    have = np.einsum("ksah,ka->ksh", whole, tp)
    missing = flows.sum(axis=1) - have  # [k, s, h]
    reach: dict[tuple[int, int], list[int]] = {}
    for k, r, s in zip(d2.route_unit, d2.route_region, d2.route_site, strict=True):
        reach.setdefault((int(k), int(r)), []).append(int(s))
    price = sc.grid_price_cny_per_mwh
    for k, s, h in zip(*np.nonzero(missing > EPS * 1e3), strict=True):
        need = float(missing[k, s, h])
        for r in np.flatnonzero(flows[k, :, s, h] > EPS):
            for s2 in sorted(reach.get((int(k), int(r)), []), key=lambda x: price[x, h]):
                for a in np.flatnonzero(tp[k] > 0):
                    while need > EPS and try_add(int(k), s2, int(a), int(h)):
                        need -= tp[k, a]
                if need <= EPS:
                    break
            if need <= EPS:
                break
        missing[k, s, h] = max(need, 0.0)
    missing[missing <= EPS * 1e3] = 0.0
    return whole, np.maximum(missing, 0.0)


def device_bounds(
    m2: LinearModel, d2: ModelData, whole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds of the whole-device model with every device count fixed at `whole`."""
    lb, ub = m2.bounds()
    dev = m2.vars["v_devices"]
    k = np.argsort(d2.unit_of_service)[dev.index["unit"]]
    vals = whole[k, dev.index["site"], dev.index["accelerator"], dev.index["hour"]]
    lb[dev.cols()] = vals
    ub[dev.cols()] = vals
    return lb, ub


def hold_through_dips(
    sc: Scenario, job_use: np.ndarray, whole: np.ndarray, start_cny: float
) -> np.ndarray:
    """`whole` devices [service, site, type, hour] kept up through dips where that costs less
    than starting them again (issue 12): a device stopped and restarted within a few hours
    stays up if the grid energy of its busy-over-idle power in between costs less than a
    start, and devices and power allow. Rounding the relaxed LP hour by hour leaves such
    dips where fractions round down in one hour and up in the next."""
    out = whole.copy()
    busy = job_use + out.sum(axis=0)
    free = sc.capacity - busy
    it_kw = np.einsum("sah,a->sh", busy, sc.busy_kw) + np.einsum(
        "sah,a->sh", sc.capacity - busy, sc.idle_kw
    )
    headroom = (
        sc.grid_limit_mw[:, None]
        + sc.green_available_mw
        - (sc.supply_limit_mw - sc.firm_supply_limit_mw)  # robust mode: green at its low quantile
        - it_kw / KW_PER_MW * sc.pue[:, None]
    )
    mw = device_busy_mw(sc)  # [site, type]
    hold_cny = mw[:, :, None] * grid_cost_per_mwh(sc)[:, None, :]  # [site, type, hour]
    H = whole.shape[-1]
    for k, s, a in zip(*np.nonzero(out.sum(axis=-1)), strict=True):
        n = out[k, s, a]
        for h in range(1, H - 1):
            if n[h] >= n[h - 1]:
                continue
            # the dip starting at h: the first later hour back up to n[h-1] or above
            ahead = np.flatnonzero(n[h:] >= n[h - 1])
            if not ahead.size:
                continue
            gap = np.arange(h, h + int(ahead[0]))
            for _ in range(int(n[h - 1] - n[gap].min())):
                low = gap[n[gap] < n[h - 1]]
                if (
                    hold_cny[s, a, low].sum() >= start_cny
                    or (free[s, a, low] < 1).any()
                    or (headroom[s, low] < mw[s, a] - EPS).any()
                ):
                    break
                n[low] += 1
                free[s, a, low] -= 1
                headroom[s, low] -= mw[s, a]
    return out
