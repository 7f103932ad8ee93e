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


def allowed_hours(sc: Scenario, opts: JobOptions, gang: np.ndarray, i: int) -> np.ndarray:
    """Window hours of option i where its site has room for the whole gang (as jobs.py)."""
    hours = np.arange(opts.window_start[i], opts.window_end[i])
    return hours[sc.capacity[opts.site[i], opts.acc[i], hours] >= gang[opts.job[i]]]


def _pattern_cost(
    sc: Scenario, opts: JobOptions, gang: np.ndarray, i: int, price: np.ndarray
) -> float:
    """min over run patterns of option i of the sum of `price` over its hours; inf if none."""
    D = int(opts.run_hours[i])
    lo, hi = int(opts.window_start[i]), int(opts.window_end[i])
    p = price[lo:hi].copy()
    room = sc.capacity[opts.site[i], opts.acc[i], lo:hi] >= gang[opts.job[i]]
    p[~room] = np.inf
    if opts.preemptible[i]:
        ok = p[np.isfinite(p)]
        return float(np.partition(ok, D - 1)[:D].sum()) if ok.size >= D else np.inf
    sums = np.convolve(np.where(np.isfinite(p), p, 1e30), np.ones(D), mode="valid")
    starts = sums[int(opts.start_min[i]) - lo : int(opts.start_max[i]) - lo + 1]
    best = float(starts.min()) if starts.size else np.inf
    return best if best < 1e29 else np.inf


def contiguity_relaxed(sc: Scenario, opts: JobOptions, gang: np.ndarray) -> JobOptions:
    """`opts` with every option that has an allowed block preemptible: a relaxation of
    the jobs' model (a block is one way to run its hours) whose usable options, and so its
    constant of work no option can run (`jobs.py`, `fixed_cost`), are the model's own. An
    option with no allowed block stays contiguous: unusable in both, not made usable here."""
    con = np.flatnonzero(~opts.preemptible)
    zero = np.zeros(sc.hours)
    runs = np.fromiter(
        (np.isfinite(_pattern_cost(sc, opts, gang, int(i), zero)) for i in con),
        dtype=bool,
        count=con.size,
    )
    preemptible = opts.preemptible.copy()
    preemptible[con[runs]] = True
    return dataclasses.replace(opts, preemptible=preemptible)


def estimated_costs(sc: Scenario, opts: JobOptions, gang: np.ndarray) -> np.ndarray:
    """Cost of each option's cheapest run pattern at grid price (carbon priced), before any
    solve: which options to try first."""
    price = grid_cost_per_mwh(sc)
    out = np.empty(opts.size)
    for i in range(opts.size):
        s, a = opts.site[i], opts.acc[i]
        mw = gang[opts.job[i]] * sc.busy_kw[a] / KW_PER_MW * sc.pue[s]
        out[i] = (
            mw * _pattern_cost(sc, opts, gang, i, price[s])
            + opts.migration_cny[i]
            + opts.transfer_cny[i]
        )
    return out


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
    for i in which:
        s, a = opts.site[i], opts.acc[i]
        # a run hour adds N_j to v_busy's row with coefficient -N_j: its price is N_j * mu
        pattern = _pattern_cost(sc, opts, gang, int(i), mu[s, a])
        rc[i] = (
            opts.migration_cny[i]
            + opts.transfer_cny[i]
            - alpha[opts.job[i]]
            + gang[opts.job[i]] * pattern
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
