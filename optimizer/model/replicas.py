"""Which service of a class keeps which devices: an LP per class with its starts priced.

The churn-aware completion (docs/solving.md) prices replica starts in an LP over *classes*
of interchangeable services (`optimizer.model.sets`), so its starts are counted per class:
a device handed from one service of a class to another costs nothing there. On a real
fleet it is a stop and a start (the other model is loaded). Splitting a class's devices
over its services in proportion to their demand each hour (`rounding.disaggregate`) turns
steady class totals into per-service churn: on the default scenario's churn-aware plan
(greedy job plan, 2026-12-05) 14.8k device starts per service before rounding against
10.6k per class, 15.8k after (issue 12). An LP over every service at once, starts priced
per service, gave 10.3k but took 270 s instead of 20 s.

So each class's devices N[s, a, h] from the class LP are shared among its services by an
LP per class (`share_among_services`), with each service's own starts priced:

    min  sum c_{s,a,h} n_{k,s,a,h} + c^{start} sum sigma_{k,s,a,h} + sum rho_k q_{k,r,h}
    s.t. sum_r f_{k,r,s,h} <= sum_a tau_{k,a} n_{k,s,a,h}           (serve)
         sum_s f_{k,r,s,h} + q_{k,r,h} = Delta_{k,r,h}               (demand)
         sum_k n_{k,s,a,h} <= N_{s,a,h}                              (the class's devices)
         sigma_{k,s,a,h} >= n_{k,s,a,h} - n_{k,s,a,h-1}              (starts, h >= 1)
         n_{k,s,a,h} >= sum_{t=h-U+1}^{h} sigma_{k,s,a,t}            (minimum up-time, U > 1)

with c the grid cost (price plus carbon) of a device's busy-over-idle power (the final LP
then prices the energy exactly) and rho the service's unmet penalty. The proportional
split is a feasible point, so the LP never does worse on these terms; within the class's
devices no device or power limit can break. Flows may move between the service's sites
within its latency limit, which is what lets a service keep its devices where its demand
moved. Whole devices follow as before (`rounding.round_devices`, `hold_through_dips`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from optimizer.model.core import LinearModel
from optimizer.model.matrix_backend import pass_arrays
from optimizer.model.rounding import disaggregate
from optimizer.model.sets import KTOKENS, ModelData
from optimizer.rules import device_busy_mw, grid_cost_per_mwh
from optimizer.scenario.types import Scenario

EPS = 1e-6


def share_among_services(
    m1: LinearModel,
    d1: ModelData,
    x1: np.ndarray,
    d2: ModelData,
    start_cny: float,
    min_up: int,
    time_limit_s: float,
    threads: int = 1,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Continuous devices [service, site, type, hour] and flows [service, region, site,
    hour] (tokens/s) of each service from the solution `x1` over merged classes (`m1`,
    `d1`): each class's devices shared among its services by `_class_lp`, within
    `time_limit_s` in all, `workers` of them at a time (each with `threads` HiGHS threads);
    a class whose LP is not solved in time is split in proportion to demand
    (`rounding.disaggregate`) as before. Also per-class figures."""
    devices, flows = disaggregate(m1, d1, x1)
    dev = m1.vars["v_devices"]
    N = np.zeros((d1.unit_demand.shape[0], d1.S, d1.A, d1.H))
    N[dev.index["unit"], dev.index["site"], dev.index["accelerator"], dev.index["hour"]] = (
        np.maximum(dev.values(x1), 0.0)
    )
    energy = _device_hour_cny(d2.sc)
    groups = [np.flatnonzero(d1.unit_of_service == u) for u in range(N.shape[0])]
    # a lone service has its class's devices already; the largest classes first, so that
    # side by side the longest LPs do not start last
    todo = sorted(((u, g) for u, g in enumerate(groups) if g.size > 1), key=lambda ug: -ug[1].size)
    to_share = sum(g.size for _, g in todo)
    lock = threading.Lock()
    t0 = time.perf_counter()

    def share(u: int, members: np.ndarray) -> tuple[np.ndarray, Any]:
        nonlocal to_share
        with lock:
            left = time_limit_s - (time.perf_counter() - t0)
            if left <= 0:
                return members, None
            # the time left, by the services still to share (the LP grows with them), as
            # many LPs at a time as there are workers
            limit = min(left, left * workers * members.size / to_share)
            to_share -= members.size
        return members, _class_lp(d2, members, N[u], energy, start_cny, min_up, limit, threads)

    stats = {"classes": 0.0}
    # HiGHS lets go of the GIL while it solves, so a worker per free core shares that many
    # classes at once (a completion 0.69-0.79x the time with 2 workers on 2 cores, the
    # same plan: bench/results/workers-2026-12-06.md)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for members, got in pool.map(lambda ug: share(*ug), todo):
            if got is not None:
                devices[members], flows[members] = got
                stats["classes"] += 1
    stats["seconds"] = time.perf_counter() - t0
    return devices, flows, stats


def _class_lp(
    d2: ModelData,
    members: np.ndarray,
    allot: np.ndarray,
    energy: np.ndarray,
    start_cny: float,
    min_up: int,
    time_limit_s: float,
    threads: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Devices [member, site, type, hour] and flows [member, region, site, hour] (tokens/s)
    of one class's services within the class's devices `allot` [site, type, hour] (module
    docstring), by interior point; None if not solved to optimality in time."""
    S, A, H = d2.S, d2.A, d2.H
    tp, on = _throughput_and_routes(d2, members)
    pairs = [
        (ki, int(s), int(a))
        for ki in range(members.size)
        for s in np.unique(d2.route_site[on[ki]])
        for a in np.flatnonzero((tp[ki] > 0) & (allot[s] > EPS).any(axis=-1))
    ]
    pk, ps, pa = (np.array([p[i] for p in pairs], dtype=np.int64) for i in range(3))
    if not pk.size:
        return None
    model, flow_at = _arrays(d2, members, on, tp, pk, ps, pa, allot, energy, start_cny, min_up)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(time_limit_s, 0.1))
    h.setOptionValue("threads", threads)
    # interior point without crossover, like the churn-aware LP whose devices it shares:
    # measured on the default scenario (load 9), the dual simplex and interior point with
    # crossover gave whole devices within 0.2 % of device-hours and 1 % of starts of each
    # other, the simplex taking 20 % longer (whole completion 239 s against 195 s)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "off")
    pass_arrays(h, *model)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    x = np.maximum(np.asarray(h.getSolution().col_value), 0.0)
    devices = np.zeros((members.size, S, A, H))
    np.add.at(devices, (pk, ps, pa), x[: pk.size * H].reshape(pk.size, H))
    flows = np.zeros((members.size, len(d2.sc.demand_regions), S, H))
    f_k, f_r, f_s, f_h, cols = flow_at
    flows[f_k, f_r, f_s, f_h] = x[cols] / KTOKENS
    return devices, flows


class _Rows:
    """Rows of a sparse LP, block by block (coordinates, values, bounds)."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = 0

    def add(self, r: np.ndarray, c: np.ndarray, v: float | np.ndarray, n: int,
            lo: float | np.ndarray, hi: float | np.ndarray) -> None:  # fmt: skip
        self.r.append(r + self.n)
        self.c.append(c)
        self.v.append(np.broadcast_to(np.asarray(v, dtype=float), c.shape))
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (n,)))
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (n,)))
        self.n += n

    def matrix(self, n_col: int) -> sp.csc_array:
        coo = (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c)))
        mat = sp.csc_array(coo, shape=(self.n, n_col))
        mat.sum_duplicates()
        return mat


def _flows(
    d2: ModelData, members: np.ndarray, on: np.ndarray, pk: np.ndarray, ps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(member, region, site, hour) of the flow columns: every route of a member to a site
    where it has devices to use, in the hours its region has demand."""
    has_pair = np.zeros((members.size, d2.S), dtype=bool)
    has_pair[pk, ps] = True
    r_k = np.concatenate([np.full(int(on[ki].sum()), ki) for ki in range(members.size)])
    r_r = np.concatenate([d2.route_region[row] for row in on])
    r_s = np.concatenate([d2.route_site[row] for row in on])
    keep = has_pair[r_k, r_s]
    r_k, r_r, r_s = r_k[keep], r_r[keep], r_s[keep]
    fr, fh = np.nonzero(d2.unit_demand[members][r_k, r_r] > 0)
    return r_k[fr], r_r[fr], r_s[fr], fh


def _arrays(
    d2: ModelData,
    members: np.ndarray,
    on: np.ndarray,
    tp: np.ndarray,
    pk: np.ndarray,
    ps: np.ndarray,
    pa: np.ndarray,
    allot: np.ndarray,
    energy: np.ndarray,
    start_cny: float,
    min_up: int,
) -> tuple[tuple, tuple]:
    """The class LP as arrays for `pass_arrays` (columns: devices per (member, site, type)
    pair and hour, starts, flows, unmet), and the (member, region, site, hour, column) of
    its flows."""
    S, A, H, R = d2.S, d2.A, d2.H, len(d2.sc.demand_regions)
    P, hours = pk.size, np.arange(d2.H)
    col_n = np.arange(P * H).reshape(P, H)
    col_sig = P * H + np.arange(P * (H - 1)).reshape(P, H - 1)
    f_k, f_r, f_s, f_h = _flows(d2, members, on, pk, ps)
    demand = d2.unit_demand[members]  # [member, region, hour]
    qk, qr, qh = np.nonzero(demand > 0)
    col_f = P * (2 * H - 1) + np.arange(f_k.size)
    col_q = P * (2 * H - 1) + f_k.size + np.arange(qk.size)
    rows = _Rows()
    # serve: a member's flows from a site within its devices there, per hour
    skey, f_row = np.unique((f_k * S + f_s) * H + f_h, return_inverse=True)
    nkey = ((pk[:, None] * S + ps[:, None]) * H + hours).ravel()
    pos = np.clip(np.searchsorted(skey, nkey), 0, max(skey.size - 1, 0))
    hit = skey[pos] == nkey if skey.size else np.zeros(nkey.size, dtype=bool)
    tau = np.repeat(tp[pk, pa], H)[hit]
    rows.add(np.concatenate([f_row, pos[hit]]), np.concatenate([col_f, col_n.ravel()[hit]]),
             np.concatenate([np.ones(f_k.size), -tau]), skey.size, -np.inf, 0.0)  # fmt: skip
    # demand: served or unmet (np.nonzero is row-major, so qkey is sorted)
    qkey = (qk * R + qr) * H + qh
    f_q = np.searchsorted(qkey, (f_k * R + f_r) * H + f_h)
    need = demand[qk, qr, qh]
    rows.add(np.concatenate([f_q, np.arange(qk.size)]), np.concatenate([col_f, col_q]), 1.0,
             qk.size, need, need)  # fmt: skip
    # the class's devices at (site, type, hour)
    akey, a_row = np.unique((ps[:, None] * A + pa[:, None]) * H + hours, return_inverse=True)
    rows.add(a_row.ravel(), col_n.ravel(), 1.0, akey.size, -np.inf, allot.reshape(-1)[akey])
    # starts: sigma_h >= n_h - n_{h-1}
    n_s, one = P * (H - 1), np.ones(P * (H - 1))
    r = np.arange(n_s)
    rows.add(np.concatenate([r, r, r]),
             np.concatenate([col_sig.ravel(), col_n[:, 1:].ravel(), col_n[:, :-1].ravel()]),
             np.concatenate([one, -one, one]), n_s, 0.0, np.inf)  # fmt: skip
    if min_up > 1:  # n_h covers the starts of the last U hours (sigma exists from h = 1)
        lag_p, lag_h, lag = np.nonzero(
            (hours[:, None] - np.arange(min_up)[None, :] >= 1)[None].repeat(P, axis=0)
        )
        rows.add(np.concatenate([np.arange(P * H), lag_p * H + lag_h]),
                 np.concatenate([col_n.ravel(), col_sig[lag_p, lag_h - lag - 1]]),
                 np.concatenate([np.ones(P * H), -np.ones(lag_p.size)]), P * H, 0.0, np.inf)  # fmt: skip
    n_col = P * (2 * H - 1) + f_k.size + qk.size
    c = np.concatenate([energy[ps, pa].ravel(), np.full(n_s, start_cny), np.zeros(f_k.size),
                        d2.unit_unmet_cny[members[qk]]])  # fmt: skip
    ub = np.concatenate([allot[ps, pa].ravel(), np.full(n_s + f_k.size, np.inf), need])
    model = (c, np.zeros(n_col), ub, rows.matrix(n_col), np.concatenate(rows.lo),
             np.concatenate(rows.hi), np.zeros(n_col, dtype=np.int32))  # fmt: skip
    return model, (f_k, f_r, f_s, f_h, col_f)


def trim_devices(
    d2: ModelData,
    whole: np.ndarray,
    start_cny: float,
    min_up: int,
    time_limit_s: float,
    threads: int = 1,
) -> tuple[np.ndarray, dict[str, float]]:
    """`whole` devices [service, site, type, hour] with devices a service does not need
    taken away, by a MILP per service over whole devices: the LP of `_arrays` with each
    (site, type, hour) bounded by the devices it has, integer, started from them, its
    starts, energy and unmet demand priced. Rounding each (site, type, hour) up leaves a
    service spread over several sites a device of slack at each; the MILP removes the
    ones whose energy costs more than the starts and unmet demand their removal brings.

    Only removes devices, so no device or power limit can break. Services go in order of
    their slack (device-hours beyond their demand at their best type), each within the time
    left divided by the services still to go; one not solved keeps its devices."""
    sc = d2.sc
    energy = _device_hour_cny(sc)
    best = np.array([max(s.throughput_tokens_per_s.values(), default=1.0) for s in sc.services])
    need = sc.demand_tokens_per_s.sum(axis=1) / best[:, None]  # [service, hour]
    slack = whole.sum(axis=(1, 2)) - need
    order = np.argsort(-slack.sum(axis=1), kind="stable")
    out = whole.copy()
    t0 = time.perf_counter()
    stats = {"services": 0.0}
    for i, k in enumerate(order):
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0:
            break
        got = _service_milp(
            d2, int(k), whole[k], energy, start_cny, min_up, left / (order.size - i), threads
        )
        if got is not None:
            out[k] = got
            stats["services"] += 1
    stats["seconds"] = time.perf_counter() - t0
    return out, stats


def _service_milp(
    d2: ModelData,
    k: int,
    have: np.ndarray,
    energy: np.ndarray,
    start_cny: float,
    min_up: int,
    time_limit_s: float,
    threads: int,
) -> np.ndarray | None:
    """Whole devices [site, type, hour] of service k within `have` (see `trim_devices`);
    None if HiGHS has no solution at least as good as `have` in time."""
    members = np.array([k])
    tp, on = _throughput_and_routes(d2, members)
    pairs = [
        (int(s), int(a))
        for s in np.unique(d2.route_site[on[0]])
        for a in np.flatnonzero((tp[0] > 0) & (have[s] > 0).any(axis=-1))
    ]
    if not pairs:
        return None
    ps, pa = (np.array([p[i] for p in pairs], dtype=np.int64) for i in range(2))
    pk = np.zeros(ps.size, dtype=np.int64)
    model, _ = _arrays(d2, members, on, tp, pk, ps, pa, have, energy, start_cny, min_up)
    c, lb, ub, mat, lo, hi, integrality = model
    n = ps.size * d2.H
    integrality = integrality.copy()
    integrality[:n] = 1
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(time_limit_s, 0.1))
    h.setOptionValue("mip_rel_gap", 1e-3)
    h.setOptionValue("threads", threads)
    pass_arrays(h, c, lb, ub, mat, lo, hi, integrality)
    start = np.zeros(c.size)
    start[:n] = have[ps, pa].ravel()
    sol = highspy.HighsSolution()
    sol.col_value = start
    sol.value_valid = True
    h.setSolution(sol)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # no feasible solution
        return None
    x = np.round(np.asarray(h.getSolution().col_value)[:n]).reshape(ps.size, d2.H)
    out = np.zeros_like(have)
    np.add.at(out, (ps, pa), np.minimum(x, have[ps, pa]))
    return out


def _device_hour_cny(sc: Scenario) -> np.ndarray:
    """[site, type, hour] the grid cost (price plus carbon) of one device's busy-over-idle
    power for an hour."""
    mw = device_busy_mw(sc)  # [site, type]
    return mw[:, :, None] * grid_cost_per_mwh(sc)[:, None, :]


def _throughput_and_routes(d2: ModelData, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Throughput [member, type] (demand units per device) and routes [member, route] of
    services `members` in the whole-device sets `d2` (a unit per service)."""
    tp = np.zeros((members.size, d2.A))
    for ki, k in enumerate(members):
        here = d2.uopt_unit == k
        tp[ki, d2.uopt_acc[here]] = d2.uopt_throughput[here]
    return tp, d2.route_unit == members[:, None]
