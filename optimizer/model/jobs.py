"""Training, fine-tuning and batch jobs: which option (site, accelerator) and which hours.

A job runs as a gang of N devices of one type on one site, in whole hours at full gang
size, within [release, deadline); preemptible jobs may pause between hours,
non-preemptible ones run one contiguous block; work that cannot be placed is left
unplaced at a penalty instead of making the model infeasible.
"""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel, ragged_arange
from optimizer.model.sets import ModelData


# Long on purpose: a model module adds its family through one `add_to_model` (the builder's
# convention, optimizer/model/build.py), and its blocks follow the docstring's constraints one
# by one, so the math and the code read side by side.
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

    ========================  ===================  ==============  ==========================================
    symbol                    name                 unit            meaning
    ========================  ===================  ==============  ==========================================
    :math:`y_{j,e}`           ``v_assign``         binary          job j runs on option e = (site, accelerator)
    :math:`u_j`               ``v_unplaced``       fraction        job j is left unplaced
    :math:`x_{j,e,h}`         ``v_run``            binary          preemptible job j runs in hour h on e
    :math:`z_{j,e,t}`         ``v_start``          binary          contiguous job j starts its block at t on e
    :math:`D_{j,e}`           run hours            h               whole hours needed (``optimizer.rules``)
    :math:`T_{j,e}`           allowed hours        \-              window hours where the site has room for the gang
    :math:`S_{j,e}`           allowed starts       \-              starts whose whole block has room for the gang
    :math:`N_j`               gang                 devices         devices the job holds while running
    :math:`\pi_j`             penalty              CNY             cost of leaving its work undone
    ========================  ===================  ==============  ==========================================
    """
    sc = d.sc
    if d.fixed_job_use is not None:
        _fixed(m)
        return
    n_jobs = len(sc.jobs)
    n_opt = d.opts.job.size
    cap = sc.capacity
    gang_o = d.job_gang[d.opts.job] if n_opt else np.zeros(0, np.int64)

    # hours in each option's window where the site can hold the whole gang
    win_len = np.maximum(d.opts.window_end - d.opts.window_start, 0)
    w_opt, w_hour = ragged_arange(d.opts.window_start, win_len)
    w_ok = cap[d.opts.site[w_opt], d.opts.acc[w_opt], w_hour] >= gang_o[w_opt]

    ub = np.ones(n_opt)
    use_keys: list[np.ndarray] = []
    use_cols: list[np.ndarray] = []
    use_gang: list[np.ndarray] = []

    y = m.add_variables(
        "v_assign",
        n_opt,
        ub=ub,
        integer=True,
        index={"job": d.opts.job, "site": d.opts.site, "accelerator": d.opts.acc},
        doc="job runs on option (site, accelerator)",
    )

    # --- preemptible options: choose D hours among the allowed ones
    pre = d.opts.preemptible
    sel = pre[w_opt] & w_ok
    p_opt, p_hour = w_opt[sel], w_hour[sel]
    n_allowed = np.bincount(p_opt, minlength=n_opt)
    short = pre & (n_allowed < d.opts.run_hours)
    exact = pre & (n_allowed == d.opts.run_hours)
    free = pre & (n_allowed > d.opts.run_hours)
    ub[short] = 0.0
    # exact: the hours are implied by the assignment
    e_sel = exact[p_opt]
    use_keys.append(d.sah_key(d.opts.site[p_opt[e_sel]], d.opts.acc[p_opt[e_sel]], p_hour[e_sel]))
    use_cols.append(y.cols(p_opt[e_sel]))
    use_gang.append(gang_o[p_opt[e_sel]])
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
    use_keys.append(d.sah_key(d.opts.site[x_opt], d.opts.acc[x_opt], x_hour))
    use_cols.append(x.cols())
    use_gang.append(gang_o[x_opt])

    # --- contiguous options: one block of D hours, start among the allowed starts
    con = ~pre
    # a start t is allowed if every hour t..t+D-1 has room; count bad hours by prefix sums
    c_sel = con[w_opt]
    cw_opt, cw_bad = w_opt[c_sel], ~w_ok[c_sel]
    first = np.zeros(n_opt + 1, dtype=np.int64)
    np.cumsum(np.bincount(cw_opt, minlength=n_opt), out=first[1:])
    bad_prefix = np.concatenate([[0], np.cumsum(cw_bad.astype(np.int64))])
    n_starts = np.where(con, np.maximum(d.opts.start_max - d.opts.start_min + 1, 0), 0)
    s_opt, s_t = ragged_arange(d.opts.start_min, n_starts)
    base = first[s_opt] + (s_t - d.opts.window_start[s_opt])
    bad_in_block = bad_prefix[base + d.opts.run_hours[s_opt]] - bad_prefix[base]
    good = bad_in_block == 0
    s_opt, s_t = s_opt[good], s_t[good]
    k_starts = np.bincount(s_opt, minlength=n_opt)
    ub[con & (k_starts == 0)] = 0.0
    single = con & (k_starts == 1)
    multi = con & (k_starts > 1)
    # single start: block implied by the assignment
    one = single[s_opt]
    b_opt, b_hour = ragged_arange(s_t[one], d.opts.run_hours[s_opt[one]])
    b_opt = s_opt[one][b_opt]
    use_keys.append(d.sah_key(d.opts.site[b_opt], d.opts.acc[b_opt], b_hour))
    use_cols.append(y.cols(b_opt))
    use_gang.append(gang_o[b_opt])
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
    zb, zb_hour = ragged_arange(z_t, d.opts.run_hours[z_opt])
    zb_opt = z_opt[zb]
    use_keys.append(d.sah_key(d.opts.site[zb_opt], d.opts.acc[zb_opt], zb_hour))
    use_cols.append(z.cols(zb))
    use_gang.append(gang_o[zb_opt])

    y.ub[:] = ub
    # hours implied by the assignment alone, for extraction
    m.meta["implied_option"] = np.concatenate([p_opt[e_sel], b_opt])
    m.meta["implied_hour"] = np.concatenate([p_hour[e_sel], b_hour])
    m.register(
        "device_use",
        np.concatenate(use_keys),
        np.concatenate(use_cols),
        np.concatenate(use_gang).astype(float),
    )

    # --- assignment and unplaced work
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
    for name in ("v_assign", "v_run", "v_start", "v_unplaced"):
        m.add_variables(name, 0, index={})
    m.meta["implied_option"] = empty
    m.meta["implied_hour"] = empty
