"""Training, fine-tuning and batch jobs: which option (site, accelerator) and which hours.

A job runs as a gang of N devices of one type on one site, in whole hours at full gang
size, within [release, deadline); preemptible jobs may pause between hours,
non-preemptible ones run one contiguous block; work that cannot be placed is left
unplaced at a penalty instead of making the model infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.model.core import INF, LinearModel, VarBlock, ragged_arange
from optimizer.model.sets import ModelData

# a long contiguous option's block hours are counted by a chain (block_running) where its
# starts x run hours exceed this many times the chain's nonzeros (a horizon under ~80 h
# never qualifies: S x D <= ((S + D) / 2)^2) ...
CHAIN_MIN_SAVING = 4.0
CHAIN_NZ_PER_HOUR = 5  # r's chain row (r, r-1, z in, z out) and its device_use term
# ... on horizons over a week: up to a week (nightly plans, every benchmark size so far) the
# model stays the one measured and tested before, byte for byte
CHAIN_MIN_HORIZON_H = 168


def add_to_model(m: LinearModel, d: ModelData) -> None:
    r"""Assignment, run hours and contiguity of jobs.

    .. math::

        \sum_{e \in E_j} y_{j,e} + u_j = 1 \quad \forall j                      && \text{(assign\_once)}

        \sum_{h \in T_{j,e}} x_{j,e,h} = D_{j,e}\, y_{j,e}  \quad \forall j, e \text{ preemptible}   && \text{(run\_hours)}

        x_{j,e,h} \le y_{j,e}                                                    && \text{(run\_only\_if\_assigned)}

        \sum_{t \in S_{j,e}} z_{j,e,t} = y_{j,e} \quad \forall j, e \text{ contiguous}  && \text{(one\_start)}

        \text{use}_{s,a,h} \mathrel{+}= N_j x_{j,e,h}
            \;\text{or}\; N_j \sum_{t = h - D_{j,e} + 1}^{h} z_{j,e,t}   && \text{(registered: device\_use)}

        \text{cost} \mathrel{+}= \pi_j u_j

    When an option has exactly as many allowed hours (or starts) as it needs, its hours
    are implied by :math:`y` and no :math:`x` (or :math:`z`) is created.

    A long contiguous option with many starts would put each :math:`z` in all :math:`D`
    rows of its block (:math:`|S| \cdot D` nonzeros: 13 M for a year of 3,400 jobs of
    4-90 h, 97 % of the model's nonzeros). Where that is over `CHAIN_MIN_SAVING` times the
    nonzeros of a running count (horizons over a week), the block's hours are counted by a free variable
    :math:`r_{j,e,h} = \sum_{t = h - D + 1}^{h} z_{j,e,t}`, stated as a chain over the
    option's span (same LP, same integer points; short horizons never qualify):

    .. math::

        r_{j,e,h} - r_{j,e,h-1} - z_{j,e,h} + z_{j,e,h-D} = 0                   && \text{(block\_running)}

        \text{use}_{s,a,h} \mathrel{+}= N_j r_{j,e,h}

    ========================  ===================  ==============  ==========================================
    symbol                    name                 unit            meaning
    ========================  ===================  ==============  ==========================================
    :math:`y_{j,e}`           ``v_assign``         binary          job j runs on option e = (site, accelerator)
    :math:`u_j`               ``v_unplaced``       fraction        job j is left unplaced
    :math:`x_{j,e,h}`         ``v_run``            binary          preemptible job j runs in hour h on e
    :math:`z_{j,e,t}`         ``v_start``          binary          contiguous job j starts its block at t on e
    :math:`r_{j,e,h}`         ``v_block_running``  free            blocks of a long contiguous option running at h
    :math:`D_{j,e}`           run hours            h               whole hours needed (``optimizer.rules``)
    :math:`T_{j,e}`           allowed hours        \-              window hours where the site has room for the gang
    :math:`S_{j,e}`           allowed starts       \-              starts whose whole block has room for the gang
    :math:`N_j`               gang                 devices         devices the job holds while running
    :math:`\pi_j`             penalty              CNY             cost of leaving its work undone
    ========================  ===================  ==============  ==========================================
    """
    if d.fixed_job_use is not None:
        _fixed(m)
        return
    n_opt = d.opts.job.size
    gang_o = d.job_gang[d.opts.job] if n_opt else np.zeros(0, np.int64)
    # hours in each option's window where the site can hold the whole gang
    win_len = np.maximum(d.opts.window_end - d.opts.window_start, 0)
    w_opt, w_hour = ragged_arange(d.opts.window_start, win_len)
    w_ok = d.sc.capacity[d.opts.site[w_opt], d.opts.acc[w_opt], w_hour] >= gang_o[w_opt]
    window = _Window(w_opt, w_hour, w_ok, gang_o)

    ub = np.ones(n_opt)
    y = m.add_variables(
        "v_assign",
        n_opt,
        ub=ub,
        integer=True,
        index={"job": d.opts.job, "site": d.opts.site, "accelerator": d.opts.acc},
        doc="job runs on option (site, accelerator)",
    )
    use = _DeviceUse(d, gang_o)
    implied_p = _preemptible(m, d, y, ub, window, use)
    implied_c = _contiguous(m, d, y, ub, window, use)
    y.ub[:] = ub
    # hours implied by the assignment alone, for extraction
    m.meta["implied_option"] = np.concatenate([implied_p[0], implied_c[0]])
    m.meta["implied_hour"] = np.concatenate([implied_p[1], implied_c[1]])
    use.register(m)
    _assignment(m, d, y, ub)


@dataclass(frozen=True)
class _Window:
    """Every (option, hour) of the options' windows, and whether the site holds the gang."""

    opt: np.ndarray
    hour: np.ndarray
    ok: np.ndarray
    gang: np.ndarray  # gang size per option


class _DeviceUse:
    """Terms of the shared `device_use` sum: columns holding `gang` devices at (site, acc, h)."""

    def __init__(self, d: ModelData, gang_o: np.ndarray) -> None:
        self.d, self.gang_o = d, gang_o
        self.keys: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.gang: list[np.ndarray] = []

    def add(self, opt: np.ndarray, hour: np.ndarray, cols: np.ndarray) -> None:
        self.keys.append(self.d.sah_key(self.d.opts.site[opt], self.d.opts.acc[opt], hour))
        self.cols.append(cols)
        self.gang.append(self.gang_o[opt])

    def register(self, m: LinearModel) -> None:
        m.register(
            "device_use",
            np.concatenate(self.keys),
            np.concatenate(self.cols),
            np.concatenate(self.gang).astype(float),
        )


def _preemptible(
    m: LinearModel, d: ModelData, y: VarBlock, ub: np.ndarray, w: _Window, use: _DeviceUse
) -> tuple[np.ndarray, np.ndarray]:
    """Preemptible options choose D hours among the allowed ones (run_hours,
    run_only_if_assigned); returns the (option, hour) pairs implied by the assignment alone."""
    n_opt = d.opts.job.size
    pre = d.opts.preemptible
    sel = pre[w.opt] & w.ok
    p_opt, p_hour = w.opt[sel], w.hour[sel]
    n_allowed = np.bincount(p_opt, minlength=n_opt)
    short = pre & (n_allowed < d.opts.run_hours)
    exact = pre & (n_allowed == d.opts.run_hours)
    free = pre & (n_allowed > d.opts.run_hours)
    ub[short] = 0.0
    # exact: the hours are implied by the assignment
    e_sel = exact[p_opt]
    use.add(p_opt[e_sel], p_hour[e_sel], y.cols(p_opt[e_sel]))
    # free: x variables
    f_sel = free[p_opt]
    x_opt, x_hour = p_opt[f_sel], p_hour[f_sel]
    x = m.add_variables(
        "v_run",
        x_opt.size,
        ub=1.0,
        integer=True,
        index={"option": x_opt, "hour": x_hour},
        doc="preemptible job runs in hour on option",
    )
    free_ids = np.flatnonzero(free)
    row_of = np.full(n_opt, -1, dtype=np.int64)
    row_of[free_ids] = np.arange(free_ids.size)
    m.add_constraints(
        "run_hours",
        free_ids.size,
        rows=np.concatenate([row_of[x_opt], np.arange(free_ids.size)]),
        cols=np.concatenate([x.cols(), y.cols(free_ids)]),
        vals=np.concatenate([np.ones(x_opt.size), -d.opts.run_hours[free_ids].astype(float)]),
        lo=0.0,
        hi=0.0,
        index={"option": free_ids},
        doc="preemptible job runs exactly its hours on the chosen option",
    )
    if d.settings.get("tight", True) and x_opt.size:
        n = x_opt.size
        m.add_constraints(
            "run_only_if_assigned",
            n,
            rows=np.concatenate([np.arange(n), np.arange(n)]),
            cols=np.concatenate([x.cols(), y.cols(x_opt)]),
            vals=np.concatenate([np.ones(n), -np.ones(n)]),
            hi=0.0,
            index={"option": x_opt, "hour": x_hour},
            doc="a job runs only on the option it is assigned to (tightens the LP relaxation)",
        )
    use.add(x_opt, x_hour, x.cols())
    return p_opt[e_sel], p_hour[e_sel]


def _allowed_starts(d: ModelData, w: _Window) -> tuple[np.ndarray, np.ndarray]:
    """(option, start) pairs of contiguous options whose whole block has room for the gang:
    a start t is allowed if every hour t..t+D-1 has room; bad hours counted by prefix sums."""
    n_opt = d.opts.job.size
    con = ~d.opts.preemptible
    c_sel = con[w.opt]
    cw_opt, cw_bad = w.opt[c_sel], ~w.ok[c_sel]
    first = np.zeros(n_opt + 1, dtype=np.int64)
    np.cumsum(np.bincount(cw_opt, minlength=n_opt), out=first[1:])
    bad_prefix = np.concatenate([[0], np.cumsum(cw_bad.astype(np.int64))])
    n_starts = np.where(con, np.maximum(d.opts.start_max - d.opts.start_min + 1, 0), 0)
    s_opt, s_t = ragged_arange(d.opts.start_min, n_starts)
    base = first[s_opt] + (s_t - d.opts.window_start[s_opt])
    bad_in_block = bad_prefix[base + d.opts.run_hours[s_opt]] - bad_prefix[base]
    good = bad_in_block == 0
    return s_opt[good], s_t[good]


def _contiguous(
    m: LinearModel, d: ModelData, y: VarBlock, ub: np.ndarray, w: _Window, use: _DeviceUse
) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous options run one block of D hours from one allowed start (one_start);
    returns the (option, hour) pairs implied by the assignment alone."""
    n_opt = d.opts.job.size
    con = ~d.opts.preemptible
    s_opt, s_t = _allowed_starts(d, w)
    k_starts = np.bincount(s_opt, minlength=n_opt)
    ub[con & (k_starts == 0)] = 0.0
    single = con & (k_starts == 1)
    multi = con & (k_starts > 1)
    # single start: block implied by the assignment
    one = single[s_opt]
    b_opt, b_hour = ragged_arange(s_t[one], d.opts.run_hours[s_opt[one]])
    b_opt = s_opt[one][b_opt]
    use.add(b_opt, b_hour, y.cols(b_opt))
    # several starts: z variables
    many = multi[s_opt]
    z_opt, z_t = s_opt[many], s_t[many]
    z = m.add_variables(
        "v_start",
        z_opt.size,
        ub=1.0,
        integer=True,
        index={"option": z_opt, "hour": z_t},
        doc="contiguous job starts its block in hour on option",
    )
    multi_ids = np.flatnonzero(multi)
    row_of = np.full(n_opt, -1, dtype=np.int64)
    row_of[multi_ids] = np.arange(multi_ids.size)
    m.add_constraints(
        "one_start",
        multi_ids.size,
        rows=np.concatenate([row_of[z_opt], np.arange(multi_ids.size)]),
        cols=np.concatenate([z.cols(), y.cols(multi_ids)]),
        vals=np.concatenate([np.ones(z_opt.size), -np.ones(multi_ids.size)]),
        lo=0.0,
        hi=0.0,
        index={"option": multi_ids},
        doc="a contiguous job starts exactly once on the chosen option",
    )
    chain = _chained(d, z_opt, z_t, multi)
    direct = ~chain[z_opt]
    zb, zb_hour = ragged_arange(z_t[direct], d.opts.run_hours[z_opt[direct]])
    use.add(z_opt[direct][zb], zb_hour, z.cols(np.flatnonzero(direct)[zb]))
    _block_running(m, d, z, chain, use)
    return b_opt, b_hour


def chains_long_blocks(hours: int) -> bool:
    """Whether a horizon of `hours` counts long contiguous blocks by a chain (over a week)."""
    return hours > CHAIN_MIN_HORIZON_H


def _chained(d: ModelData, z_opt: np.ndarray, z_t: np.ndarray, multi: np.ndarray) -> np.ndarray:
    """Options whose block hours are cheaper counted by a chain (`block_running`): their
    starts times run hours exceed `CHAIN_MIN_SAVING` times the chain's nonzeros (about
    `CHAIN_NZ_PER_HOUR` per hour of the option's span), on horizons over a week."""
    n_opt = d.opts.job.size
    if not chains_long_blocks(d.H):
        return np.zeros(n_opt, dtype=bool)
    n_starts = np.bincount(z_opt, minlength=n_opt)
    first, last = _start_range(n_opt, z_opt, z_t)
    span = np.maximum(last - first + d.opts.run_hours, 0)
    return multi & (n_starts * d.opts.run_hours > CHAIN_MIN_SAVING * CHAIN_NZ_PER_HOUR * span)


def _start_range(n_opt: int, z_opt: np.ndarray, z_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[option] the first and last allowed start (int64 max and -1 where it has none)."""
    first = np.full(n_opt, np.iinfo(np.int64).max)
    last = np.full(n_opt, -1)
    np.minimum.at(first, z_opt, z_t)
    np.maximum.at(last, z_opt, z_t)
    return first, last


def _block_running(
    m: LinearModel, d: ModelData, z: VarBlock, chain: np.ndarray, use: _DeviceUse
) -> None:
    """r[o, h] = r[o, h-1] + z[o, h] - z[o, h-D] over each chained option's span, and r in
    device_use: the running count of the option's block, O(span) nonzeros instead of
    O(starts x D). r is free: the chain implies its range, and a bound would take duals
    the pricing reads from the rows."""
    z_opt, z_t = z.index["option"], z.index["hour"]
    sel = np.flatnonzero(chain[z_opt])
    c_opt, c_t = z_opt[sel], z_t[sel]
    ids = np.flatnonzero(chain)
    first, last = _start_range(d.opts.job.size, c_opt, c_t)
    span = last[ids] - first[ids] + d.opts.run_hours[ids]
    r_grp, r_hour = ragged_arange(first[ids], span)
    r_opt = ids[r_grp]
    r = m.add_variables(
        "v_block_running",
        r_opt.size,
        lb=-INF,
        index={"option": r_opt, "hour": r_hour},
        doc="blocks of a long contiguous option running in hour (a running count of its starts)",
    )
    # r's position of (option, hour): the option's offset plus the hour's place in its span
    offset = np.zeros(d.opts.job.size, dtype=np.int64)
    length = np.zeros(d.opts.job.size, dtype=np.int64)
    offset[ids], length[ids] = np.cumsum(span) - span, span
    enter = offset[c_opt] + (c_t - first[c_opt])  # z enters the count at its start...
    leave = enter + d.opts.run_hours[c_opt]  # ...and leaves D hours later, within the span
    inside = leave < offset[c_opt] + length[c_opt]
    prev = np.flatnonzero(r_hour > first[r_opt])  # r[h-1], for every hour but the first
    z_cols = z.cols(sel)
    m.add_constraints(
        "block_running",
        r_opt.size,
        rows=np.concatenate([np.arange(r_opt.size), prev, enter, leave[inside]]),
        cols=np.concatenate([r.cols(), r.cols(prev - 1), z_cols, z_cols[inside]]),
        vals=np.concatenate(
            [
                np.ones(r_opt.size),
                -np.ones(prev.size),
                -np.ones(sel.size),
                np.ones(int(inside.sum())),
            ]
        ),
        lo=0.0,
        hi=0.0,
        index={"option": r_opt, "hour": r_hour},
        doc="a long contiguous option's running count: last hour's, plus starts, less ends",
    )
    use.add(r_opt, r_hour, r.cols())


def _assignment(m: LinearModel, d: ModelData, y: VarBlock, ub: np.ndarray) -> None:
    """Each job on one option or unplaced (assign_once), unplaced work at its penalty."""
    n_jobs = len(d.sc.jobs)
    n_opt = d.opts.job.size
    u = m.add_variables(
        "v_unplaced", n_jobs, ub=1.0, index={"job": np.arange(n_jobs)}, doc="job left unplaced"
    )
    m.add_constraints(
        "assign_once",
        n_jobs,
        rows=np.concatenate([d.opts.job, np.arange(n_jobs)]),
        cols=np.concatenate([y.cols(), u.cols()]),
        vals=np.ones(n_opt + n_jobs),
        lo=1.0,
        hi=1.0,
        index={"job": np.arange(n_jobs)},
        doc="each job runs on one option or is unplaced",
    )
    # work with no usable option is unplaced whatever the plan: a constant, kept out of the
    # objective so that the gap measures only what decisions can change
    usable = np.bincount(d.opts.job[ub > 0], minlength=n_jobs) > 0
    u.lb[~usable] = 1.0
    m.fixed_cost += float(d.job_penalty_cny[~usable].sum())
    m.add_cost("unplaced", u.cols(np.flatnonzero(usable)), d.job_penalty_cny[usable])


def _fixed(m: LinearModel) -> None:
    """The job plan is decided: empty blocks keep the model's shape (see capacity.py)."""
    empty = np.zeros(0, dtype=np.int64)
    for name in ("v_assign", "v_run", "v_start", "v_block_running", "v_unplaced"):
        m.add_variables(name, 0, index={})
    m.meta["implied_option"] = empty
    m.meta["implied_hour"] = empty
