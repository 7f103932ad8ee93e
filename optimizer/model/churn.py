"""Churn, priced and bounded: starting inference devices, and pausing preemptible jobs.

A device started for a service loads its model first (warm-up minutes of lost throughput);
a job that pauses writes a checkpoint and restores it later, its whole gang idle meanwhile.
Both are paid for here, so the plan changes only where the change saves more than it costs.
Moves keep their migration cost (`migration.py`).
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.rules import pause_cost_cny, replica_min_up_hours, replica_start_cost_cny

EMPTY = np.zeros(0, dtype=np.int64)


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Replica starts, their minimum up-time, and job pauses.

    .. math::

        \sigma_{k,s,a,h} \ge n_{k,s,a,h} - n_{k,s,a,h-1}   \quad \forall h \ge 1      && \text{(replica\_starts)}

        n_{k,s,a,h} \ge \sum_{t = h - U + 1}^{h} \sigma_{k,s,a,t}                     && \text{(replica\_min\_up)}

        \rho_{j,e,h} \ge x_{j,e,h} - x_{j,e,h-1}                                      && \text{(job\_resumes)}

        \sum_h \rho_{j,e,h} \ge y_{j,e}                                               && \text{(job\_first\_block)}

        \sum_h \rho_{j,e,h} \le (1 + P^{max})\, y_{j,e}                               && \text{(max\_pauses)}

        \text{cost} \mathrel{+}= c^{start} \sum \sigma
            + \sum_{j,e} c^{pause}_j \Big( \sum_h \rho_{j,e,h} - y_{j,e} \Big)
            + \sum_{j,e\ \text{hours implied}} c^{pause}_j\, B_{j,e}\, y_{j,e}

    A device count missing in an hour (no demand the site can serve then) is zero. The first
    hour is the state carried into the horizon: no start is counted there. A job's pauses
    are its blocks of run hours less one (:math:`\sum_h \rho - y`); a contiguous job has
    none; an option whose hours are implied by the assignment has :math:`B_{j,e}` of them.
    A job placed runs at least one block, so :math:`\sum_h \rho \ge y` holds at every
    whole solution; without it the relaxation ran a job half as hard over twice its hours
    for half a block, a pause cost below zero (on the default scenario the full LP priced
    pauses at -4,111 CNY; bench/results/pause-row-2026-12-07.md).
    The minimum up-time binds only in hours the device count exists (a replica may stop
    early where the service has no demand it could serve from the site). With services
    merged into classes starts are counted per class, a lower bound of the per-service
    count, so the relaxation stays a relaxation. The round strategy (docs/solving.md) keeps
    replica starts in its pricing LPs (`SolverSettings.pricing_churn`), leaves them out of
    stage 1 (a relaxation still: the left-out costs are never negative) and prices them
    when it completes the chosen job plan.

    ======================  ======================  ==========  ===============================================
    symbol                  name                    unit        meaning
    ======================  ======================  ==========  ===============================================
    :math:`\sigma_{k,s,a,h}`  ``v_replica_starts``  devices     devices of type a started for k at site s in h
    :math:`n_{k,s,a,h}`     ``v_devices``           devices     devices serving k (inference.py)
    :math:`\rho_{j,e,h}`    ``v_resume``            0..1        job j (re)starts a block of run hours at h on e
    :math:`x_{j,e,h}`       ``v_run``               binary      job j runs in hour h on e (jobs.py)
    :math:`y_{j,e}`         ``v_assign``            binary      job j runs on option e (jobs.py)
    :math:`U`               replica_min_up_hours    h           minimum up-time of a started device
    :math:`c^{start}`       replica start cost      CNY/device  warm-up h x lost_hour_cost + replica_start_cost_cny
    :math:`c^{pause}_j`     pause cost              CNY         (checkpoint + restore) h x gang x lost_hour_cost
    :math:`P^{max}`         max_pauses_per_job      pauses      cap on a job's pauses (absent: no row)
    ======================  ======================  ==========  ===============================================
    """
    _replica_starts(m, d)
    _job_pauses(m, d)


def _previous(group: np.ndarray, hour: np.ndarray, lag: int = 1) -> np.ndarray:
    """Position of the element of the same group `lag` hours earlier, or -1."""
    if not hour.size:
        return EMPTY
    H = int(hour.max()) + 1
    key = group * H + hour
    order = np.argsort(key, kind="stable")
    want = key - lag
    pos = np.searchsorted(key[order], want)
    pos = np.minimum(pos, max(key.size - 1, 0))
    found = (key[order][pos] == want) & (hour >= lag)  # hour >= lag: never the group before
    return np.where(found, order[pos], -1)


def _replica_starts(m: LinearModel, d: ModelData) -> None:
    sc = d.sc
    cost = replica_start_cost_cny(sc)
    up = replica_min_up_hours(sc)
    n = m.vars["v_devices"]
    idx = n.index
    counted = np.flatnonzero(idx["hour"] > 0)
    if (cost <= 0 and up <= 1) or not d.settings.get("price_replica_starts", True):
        counted = EMPTY  # nothing priced or bounded: no rows
    group = (idx["unit"] * d.S + idx["site"]) * d.A + idx["accelerator"]
    prev = _previous(group, idx["hour"])
    sigma = m.add_variables(
        "v_replica_starts",
        counted.size,
        index={k: v[counted] for k, v in idx.items()},
        doc="devices started for a service at a site in an hour",
    )
    c = counted.size
    has_prev = prev[counted] >= 0
    rows = np.concatenate([np.arange(c), np.arange(c), np.flatnonzero(has_prev)])
    cols = np.concatenate([sigma.cols(), n.cols(counted), n.cols(prev[counted][has_prev])])
    vals = np.concatenate([np.ones(c), -np.ones(c), np.ones(int(has_prev.sum()))])
    m.add_constraints(
        "replica_starts",
        c,
        rows,
        cols,
        vals,
        lo=0.0,
        index=sigma.index,
        doc="devices started are at least the increase from the hour before",
    )
    if cost > 0:
        m.add_cost("replica_starts", sigma.cols(), cost)
    if up > 1 and c:
        # n at h covers the starts of the last U hours (of the same group, where counted)
        sigma_of = np.full(n.size, -1, dtype=np.int64)
        sigma_of[counted] = np.arange(c)
        r_rows, r_cols = [np.arange(n.size)], [n.cols()]
        r_vals = [np.ones(n.size)]
        for lag in range(up):
            at = np.arange(n.size) if lag == 0 else _previous(group, idx["hour"], lag)
            ok = at >= 0
            ok[ok] = sigma_of[at[ok]] >= 0
            r_rows.append(np.flatnonzero(ok))
            r_cols.append(sigma.cols(sigma_of[at[ok]]))
            r_vals.append(-np.ones(int(ok.sum())))
        m.add_constraints(
            "replica_min_up",
            n.size,
            np.concatenate(r_rows),
            np.concatenate(r_cols),
            np.concatenate(r_vals),
            lo=0.0,
            index=dict(idx),
            doc="a device started serves at least the minimum up-time",
        )


def _job_pauses(m: LinearModel, d: ModelData) -> None:
    sc = d.sc
    if d.fixed_job_use is not None or not sc.jobs or not d.settings.get("price_pauses", True):
        m.add_variables("v_resume", 0, index={})
        return
    per_job = np.array([pause_cost_cny(sc, j) for j in sc.jobs])
    cap = sc.policy.max_pauses_per_job
    y, x = m.vars["v_assign"], m.vars["v_run"]
    x_opt, x_hour = x.index["option"], x.index["hour"]
    if not per_job.any() and cap is None:
        m.add_variables("v_resume", 0, index={})
        return
    prev = _previous(x_opt, x_hour)
    rho = m.add_variables(
        "v_resume",
        x.size,
        ub=1.0,
        index={"option": x_opt, "hour": x_hour},
        doc="a job starts or resumes a block of run hours",
    )
    k = x.size
    has_prev = prev >= 0
    m.add_constraints(
        "job_resumes",
        k,
        np.concatenate([np.arange(k), np.arange(k), np.flatnonzero(has_prev)]),
        np.concatenate([rho.cols(), x.cols(), x.cols(prev[has_prev])]),
        np.concatenate([np.ones(k), -np.ones(k), np.ones(int(has_prev.sum()))]),
        lo=0.0,
        index=rho.index,
        doc="a block starts where the job runs and did not the hour before",
    )
    free = np.unique(x_opt)
    job_of = d.opts.job
    row_of = np.full(d.opts.size, -1, dtype=np.int64)
    row_of[free] = np.arange(free.size)
    if per_job.any() and free.size:
        # valid for whole solutions (a job placed starts a block), cuts fractional ones
        m.add_constraints(
            "job_first_block",
            free.size,
            np.concatenate([row_of[x_opt], np.arange(free.size)]),
            np.concatenate([rho.cols(), y.cols(free)]),
            np.concatenate([np.ones(k), -np.ones(free.size)]),
            lo=0.0,
            index={"option": free},
            doc="a job placed runs at least one block (its pause cost is never below zero)",
        )
    if per_job.any():
        m.add_cost("pauses", rho.cols(), per_job[job_of[x_opt]])
        m.add_cost("pauses", y.cols(free), -per_job[job_of[free]])
        # options whose hours the assignment implies: their pauses are known
        imp_o = np.asarray(m.meta["implied_option"], dtype=np.int64)
        imp_h = np.asarray(m.meta["implied_hour"], dtype=np.int64)
        pre = d.opts.preemptible[imp_o]
        blocks = _blocks_per_option(imp_o[pre], imp_h[pre], d.opts.size)
        paused = np.flatnonzero(blocks > 1)
        m.add_cost("pauses", y.cols(paused), per_job[job_of[paused]] * (blocks[paused] - 1))
    if cap is not None:
        imp_o = np.asarray(m.meta["implied_option"], dtype=np.int64)
        imp_h = np.asarray(m.meta["implied_hour"], dtype=np.int64)
        pre = d.opts.preemptible[imp_o]
        blocks = _blocks_per_option(imp_o[pre], imp_h[pre], d.opts.size)
        y.ub[blocks - 1 > cap] = 0.0  # its implied hours pause more often than allowed
    if cap is not None and free.size:
        m.add_constraints(
            "max_pauses",
            free.size,
            np.concatenate([row_of[x_opt], np.arange(free.size)]),
            np.concatenate([rho.cols(), y.cols(free)]),
            np.concatenate([np.ones(k), -(1.0 + float(cap)) * np.ones(free.size)]),
            hi=0.0,
            index={"option": free},
            doc="a job pauses at most the cap",
        )


def _blocks_per_option(opt: np.ndarray, hour: np.ndarray, n_opt: int) -> np.ndarray:
    """Blocks of consecutive hours per option, from its (option, hour) pairs."""
    if not opt.size:
        return np.zeros(n_opt, dtype=np.int64)
    order = np.lexsort((hour, opt))
    o, h = opt[order], hour[order]
    new_block = np.ones(o.size, dtype=bool)
    new_block[1:] = (o[1:] != o[:-1]) | (h[1:] != h[:-1] + 1)
    return np.bincount(o[new_block], minlength=n_opt)
