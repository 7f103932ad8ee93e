"""Column generation over job options: solve with the promising options only, and prove
with LP duals which of the others could still lower the cost.

A job has an option per (site, accelerator type) it may use: tens per job on a national
fleet, each with a variable per window hour. Most are never worth it. The LP relaxation is
solved over a subset; each left-out option is priced with the duals of the job's
`assign_once` row (alpha_j) and of the `device_use` rows (mu_{s,a,h}). The cheapest way to
run job j on option e is a pattern p of its run hours (any D allowed hours if preemptible,
a block otherwise), and its reduced cost is

    rc_e = c_e - alpha_j + N_j * min_p sum_{h in p} mu_{s,a,h}

(c_e the option's migration and transfer cost). Options with rc_e < 0 join the subset and
the LP is solved again. Whatever the subset, the full LP's optimum is at least

    z_subset + sum_j min(0, min_e rc_e)

(each job's weights sum to at most one), so this Lagrangian bound is a valid bound on the
MILP even when pricing stops early; at convergence it equals the full LP's optimum.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.power import KW_PER_MW
from optimizer.model.sets import JobOptions
from optimizer.rules import grid_cost_per_mwh
from optimizer.scenario.types import Scenario

RC_TOL = 1e-6


# option-hours per chunk of `pattern_costs` (a few arrays of this many floats at a time)
PATTERN_CHUNK_CELLS = 500_000


def pattern_costs(
    sc: Scenario, opts: JobOptions, gang: np.ndarray, which: np.ndarray, price: np.ndarray
) -> np.ndarray:
    """Per option in `which` (indices into `opts`): the least sum of `price` [site, type,
    hour] over a run pattern of its (its D run hours within its window where its site has
    room for the whole gang: any D if preemptible, else a block starting within its
    starts); inf where it has none. Options in chunks of about `PATTERN_CHUNK_CELLS`
    option-hours, by window start, each over its chunk's span of hours only."""
    which = np.asarray(which, dtype=np.int64)
    out = np.full(which.size, np.inf)
    order = np.argsort(opts.window_start[which], kind="stable")
    at = 0
    while at < order.size:
        rest = which[order[at:]]
        first = int(opts.window_start[rest[0]])
        span = np.maximum.accumulate(opts.window_end[rest]) - first
        fits = np.arange(1, rest.size + 1) * span <= PATTERN_CHUNK_CELLS
        k = max(1, int(fits.sum()))  # the product grows with k: the first k fit
        out[order[at : at + k]] = _chunk_costs(sc, opts, gang, rest[:k], price, first)
        at += k
    return out


def _chunk_costs(
    sc: Scenario,
    opts: JobOptions,
    gang: np.ndarray,
    idx: np.ndarray,
    price: np.ndarray,
    first: int,
) -> np.ndarray:
    """`pattern_costs` of the options `idx`, whose windows start at `first` or later, over
    the hours from `first` to the last window's end."""
    last = int(opts.window_end[idx].max())
    hours = np.arange(first, last)
    n, width = idx.size, hours.size
    site, acc = opts.site[idx], opts.acc[idx]
    room = (
        (sc.capacity[site, acc, first:last] >= gang[opts.job[idx]][:, None])
        & (hours >= opts.window_start[idx][:, None])
        & (hours < opts.window_end[idx][:, None])
    )
    p = price[site, acc, first:last]
    d = opts.run_hours[idx].astype(np.int64)
    rows = np.arange(n)
    zero = np.zeros((n, 1))
    # preemptible: the D cheapest hours with room (inf where fewer than D have room)
    cheapest = np.sort(np.where(room, p, np.inf), axis=1)
    any_d = np.concatenate([zero, np.cumsum(cheapest, axis=1)], axis=1)[rows, np.minimum(d, width)]
    any_d = np.where(d <= width, any_d, np.inf)
    # contiguous: a block of D hours with room starting at h (sums and counts of hours
    # without room by prefix sums, so no sentinel enters a sum)
    sums = np.concatenate([zero, np.cumsum(np.where(room, p, 0.0), axis=1)], axis=1)
    short = np.concatenate([zero, np.cumsum(~room, axis=1)], axis=1)
    end = np.minimum(np.arange(width)[None, :] + d[:, None], width)
    block = np.take_along_axis(sums, end, axis=1) - sums[:, :width]
    without = np.take_along_axis(short, end, axis=1) - short[:, :width]
    starts = hours[None, :]
    ok = (
        (starts + d[:, None] <= last)
        & (without == 0)
        & (starts >= opts.start_min[idx][:, None])
        & (starts <= opts.start_max[idx][:, None])
    )
    blocks = np.where(ok, block, np.inf).min(axis=1)
    return np.where(opts.preemptible[idx], any_d, blocks)


def contiguity_relaxed(sc: Scenario, opts: JobOptions, gang: np.ndarray) -> JobOptions:
    """`opts` with every option that has an allowed block preemptible: a relaxation of
    the jobs' model (a block is one way to run its hours) whose usable options, and so its
    constant of work no option can run (`jobs.py`, `fixed_cost`), are the model's own. An
    option with no allowed block stays contiguous: unusable in both, not made usable here."""
    con = np.flatnonzero(~opts.preemptible)
    zero = np.zeros((len(sc.sites), len(sc.accelerators), sc.hours))
    runs = np.isfinite(pattern_costs(sc, opts, gang, con, zero))
    preemptible = opts.preemptible.copy()
    preemptible[con[runs]] = True
    return dataclasses.replace(opts, preemptible=preemptible)


def estimated_costs(sc: Scenario, opts: JobOptions, gang: np.ndarray) -> np.ndarray:
    """Cost of each option's cheapest run pattern at grid price (carbon priced), before any
    solve: which options to try first."""
    price = grid_cost_per_mwh(sc)  # [site, hour]
    each = np.broadcast_to(price[:, None, :], (len(sc.sites), len(sc.accelerators), sc.hours))
    mw = gang[opts.job] * sc.busy_kw[opts.acc] / KW_PER_MW * sc.pue[opts.site]
    pattern = pattern_costs(sc, opts, gang, np.arange(opts.size), each)
    return mw * pattern + opts.migration_cny + opts.transfer_cny


def initial_subset(
    sc: Scenario,
    opts: JobOptions,
    gang: np.ndarray,
    per_job: int,
    must: np.ndarray,
    max_window_hours: int | None = None,
) -> tuple[np.ndarray, int, bool]:
    """The `per_job` cheapest options of each job by estimate, plus the `must` ones; the
    number per job taken, fewer (down to one) where their hours in window would pass
    `max_window_hours` (the first LP's size grows with them: its job-hour columns); and
    whether the options taken are within it."""
    est = estimated_costs(sc, opts, gang)
    order = np.lexsort((est, opts.job))
    rank = np.empty(opts.size, dtype=np.int64)
    first = np.searchsorted(opts.job[order], opts.job[order])
    rank[order] = np.arange(opts.size) - first
    hours = opts.window_hours
    for n in range(max(per_job, 1), 0, -1):
        keep = must | ((rank < n) & np.isfinite(est))
        fits = max_window_hours is None or int(hours[keep].sum()) <= max_window_hours
        if fits or n == 1:
            return keep, n, fits
    raise AssertionError("unreachable")


def reduced_costs(
    sc: Scenario,
    opts: JobOptions,
    gang: np.ndarray,
    alpha: np.ndarray,
    mu: np.ndarray,
    which: np.ndarray,
) -> np.ndarray:
    """rc of the options `which` (indices into `opts`) given job duals `alpha` [job] and
    device duals `mu` [site, type, hour] (HiGHS sign: reduced cost = c - A^T dual)."""
    rc = np.full(opts.size, np.inf)
    which = np.asarray(which, dtype=np.int64)
    job = opts.job[which]
    # a run hour adds N_j to v_busy's row with coefficient -N_j: its price is N_j * mu
    pattern = pattern_costs(sc, opts, gang, which, mu)
    rc[which] = (
        opts.migration_cny[which] + opts.transfer_cny[which] - alpha[job] + gang[job] * pattern
    )
    return rc


def lp_duals(m: LinearModel, row_dual: np.ndarray, sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(alpha per job, mu per [site, type, hour]) from the row duals of model `m`."""
    assign = m.cons["assign_once"]
    alpha = np.zeros(len(sc.jobs))
    alpha[assign.index["job"]] = row_dual[assign.offset : assign.offset + assign.size]
    use = m.cons["device_use"]
    mu = np.zeros((len(sc.sites), len(sc.accelerators), sc.hours))
    mu[use.index["site"], use.index["accelerator"], use.index["hour"]] = row_dual[
        use.offset : use.offset + use.size
    ]
    return alpha, mu


def lagrangian_bound(z: float, opts: JobOptions, rc: np.ndarray, n_jobs: int) -> float:
    """z + sum_j min(0, min rc of job j's options): a bound on the full LP."""
    best = np.zeros(n_jobs)
    finite = np.isfinite(rc)
    np.minimum.at(best, opts.job[finite], rc[finite])
    return float(z + np.minimum(best, 0.0).sum())


def open_unit_bounds(m: LinearModel) -> tuple[np.ndarray, np.ndarray]:
    """Column bounds for the pricing LP: the 0-1 bounds of the job decisions dropped where
    the rows already imply them (sum y + u = 1, x <= y, sum z = y). A variable resting on
    such a bound would take the dual a row should carry, and the job duals would no longer
    price the options left out."""
    lb, ub = m.bounds()
    ub = ub.copy()
    for name in ("v_assign", "v_run", "v_start", "v_unplaced"):
        b = m.vars[name]
        cols = b.cols()
        ub[cols] = np.where(b.ub == 1.0, np.inf, b.ub)
    return lb, ub
