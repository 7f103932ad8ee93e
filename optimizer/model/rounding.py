"""Whole inference devices from a solution in which they were continuous.

Large instances are solved with the inference devices `v_devices` relaxed to continuous
values (the job decisions stay binary): HiGHS' rounding heuristics spend minutes on tens of
thousands of general integers and rarely find a good point, while rounding them here is
quick. Each (service, site, type, hour) is floored, then rounded up, largest fraction
first, where devices and power allow; throughput still missing (hours in which the relaxed
solution filled a site exactly with fractions of devices) is placed on other devices within
the service's latency limit. `optimizer.planner` then fixes every integer decision and
re-solves the remaining LP (flows, unmet demand, grid, green, battery), so the plan is
feasible for the full MILP. The relaxed model's dual bound stays a valid bound for the
MILP, so the reported gap is honest.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.inference import KTOKENS
from optimizer.model.power import KW_PER_MW
from optimizer.model.sets import ModelData

EPS = 1e-6


def round_devices(m: LinearModel, d: ModelData, x: np.ndarray) -> np.ndarray:
    """Whole devices for every `v_devices` element, given a solution `x` with them fractional."""
    sc = d.sc
    S, A, H = d.S, d.A, d.H
    dev = m.vars["v_devices"]
    k, s, a, h = (dev.index[c] for c in ("service", "site", "accelerator", "hour"))
    cont = np.maximum(dev.values(x), 0.0)
    whole = np.floor(cont + EPS)
    # devices left per (site, type, hour) once the jobs and the floored devices are placed
    busy = m.vars["v_busy"]
    used = np.zeros((S, A, H))
    used[busy.index["site"], busy.index["accelerator"], busy.index["hour"]] = np.maximum(
        busy.values(x), 0.0
    )
    np.add.at(used, (s, a, h), whole - cont)  # busy counted fractional devices; count floored ones
    free = np.floor(sc.capacity - used + EPS)
    # power headroom per (site, hour) under the grid connection and the green supply
    mw_per_device = sc.pue[s] * (sc.busy_kw[a] - sc.idle_kw[a]) / KW_PER_MW
    headroom = (
        sc.grid_limit_mw[:, None]
        + sc.green_available_mw
        - m.vars["v_facility_mw"].values(x).reshape(S, H)
    )
    headroom -= np.bincount(
        s * H + h, weights=(whole - cont) * mw_per_device, minlength=S * H
    ).reshape(S, H)

    def room(i: int) -> bool:
        return bool(free[s[i], a[i], h[i]] >= 1 and headroom[s[i], h[i]] >= mw_per_device[i] - EPS)

    def add(i: int, n: int = 1) -> None:
        whole[i] += n
        free[s[i], a[i], h[i]] -= n
        headroom[s[i], h[i]] -= n * mw_per_device[i]

    frac = cont - whole
    for i in np.argsort(-frac, kind="stable"):
        if frac[i] <= EPS:
            break
        if room(int(i)):
            add(int(i))

    # throughput the relaxed plan had and the whole devices lack, per (service, hour),
    # placed on other devices within latency of the regions that lose it
    tp = d.svc_opt_tokens_per_s
    tp_of = {
        (int(kk), int(ss), int(aa)): t
        for kk, ss, aa, t in zip(d.svc_opt_service, d.svc_opt_site, d.svc_opt_acc, tp, strict=True)
    }
    tpe = (
        np.array([tp_of[(int(kk), int(ss), int(aa))] for kk, ss, aa in zip(k, s, a, strict=True)])
        if k.size
        else np.zeros(0)
    )
    lost = np.bincount(
        (k * S + s) * H + h, weights=(cont - whole) * tpe, minlength=len(sc.services) * S * H
    ).reshape(len(sc.services), S, H)
    if not np.any(lost > EPS):
        return whole
    flow = m.vars["v_flow"]
    fv = flow.values(x) / KTOKENS
    fk, fr, fs, fh = (flow.index[c] for c in ("service", "region", "site", "hour"))
    element = {
        (int(kk), int(ss), int(aa), int(hh)): i
        for i, (kk, ss, aa, hh) in enumerate(zip(k, s, a, h, strict=True))
    }
    reach = {}  # (service, region) -> elements' sites able to serve it
    for kk, rr, ss in zip(d.route_service, d.route_region, d.route_site, strict=True):
        reach.setdefault((int(kk), int(rr)), []).append(int(ss))
    price = sc.grid_price_cny_per_mwh
    for kk, ss, hh in zip(*np.nonzero(lost > EPS), strict=True):
        missing = float(lost[kk, ss, hh])
        regions = [int(r) for r in fr[(fk == kk) & (fs == ss) & (fh == hh) & (fv > EPS)]]
        for r in regions:
            sites = sorted(reach.get((int(kk), r), []), key=lambda s2: price[s2, hh])
            for s2 in sites:
                for a2 in range(A):
                    i = element.get((int(kk), s2, a2, int(hh)))
                    if i is None or missing <= EPS:
                        continue
                    while missing > EPS and room(i):
                        add(i)
                        missing -= tpe[i]
            if missing <= EPS:
                break
    return whole


def fix_integers(
    m: LinearModel, x: np.ndarray, devices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds that fix every integer decision: the jobs' at `x`, the devices at `devices`."""
    lb, ub = m.bounds()
    lb, ub = lb.copy(), ub.copy()
    for block in m.vars.values():
        if not block.integer and block.name != "v_devices":
            continue
        cols = block.cols()
        vals = devices if block.name == "v_devices" else np.round(block.values(x))
        lb[cols] = vals
        ub[cols] = vals
    return lb, ub


__all__ = ["fix_integers", "round_devices"]
