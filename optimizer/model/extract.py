"""Read a solution vector back into plain decisions (a `Schedule`); nothing of the
solver or of Pyomo leaves this function."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.inference import KTOKENS
from optimizer.model.sets import ModelData
from optimizer.plan import Schedule


def schedule_from_solution(m: LinearModel, d: ModelData, x: np.ndarray) -> Schedule:
    sc = d.sc
    sched = Schedule.empty(sc)
    S, H = d.S, d.H
    y = np.round(m.vars["v_assign"].values(x)).astype(np.int64)
    chosen = np.flatnonzero(y > 0)
    sched.job_site[d.opt_job[chosen]] = d.opt_site[chosen]
    sched.job_acc[d.opt_job[chosen]] = d.opt_acc[chosen]
    is_chosen = np.zeros(d.opt_job.size, dtype=bool)
    is_chosen[chosen] = True
    parts_opt: list[np.ndarray] = []
    parts_hour: list[np.ndarray] = []
    imp_o = np.asarray(m.meta["implied_option"], dtype=np.int64)
    imp_h = np.asarray(m.meta["implied_hour"], dtype=np.int64)
    keep = is_chosen[imp_o]
    parts_opt.append(imp_o[keep])
    parts_hour.append(imp_h[keep])
    run = m.vars["v_run"]
    on = np.round(run.values(x)) > 0
    parts_opt.append(run.index["option"][on])
    parts_hour.append(run.index["hour"][on])
    start = m.vars["v_start"]
    st = np.round(start.values(x)) > 0
    so, sh = start.index["option"][st], start.index["hour"][st]
    lengths = d.opt_run_hours[so]
    parts_opt.append(np.repeat(so, lengths))
    parts_hour.append(
        np.repeat(sh, lengths)
        + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    )
    o = np.concatenate(parts_opt)
    h = np.concatenate(parts_hour)
    jobs = d.opt_job[o]
    order = np.lexsort((h, jobs))
    jobs, h = jobs[order], h[order]
    bounds = np.searchsorted(jobs, np.arange(len(sc.jobs) + 1))
    sched.job_hours = [h[bounds[j] : bounds[j + 1]].copy() for j in range(len(sc.jobs))]

    dev = m.vars["v_devices"]
    n = np.round(dev.values(x)).astype(np.int64)
    nz = n > 0
    idx = dev.index
    sched.svc_devices[
        idx["service"][nz], idx["site"][nz], idx["accelerator"][nz], idx["hour"][nz]
    ] = n[nz]
    flow = m.vars["v_flow"]
    fv = np.maximum(flow.values(x), 0.0) / KTOKENS
    fi = flow.index
    sched.flows[fi["service"], fi["region"], fi["site"], fi["hour"]] = fv

    sched.green_mw = np.maximum(m.vars["v_green_mw"].values(x), 0.0).reshape(S, H).copy()
    ch = np.zeros((S, H))
    dis = np.zeros((S, H))
    soc = np.zeros((S, H))
    for name, arr in (("v_charge_mw", ch), ("v_discharge_mw", dis), ("v_soc_mwh", soc)):
        b = m.vars[name]
        arr[b.index["site"], b.index["hour"]] = np.maximum(b.values(x), 0.0)
    sched.charge_mw, sched.discharge_mw, sched.soc_mwh = ch, dis, soc
    return sched


def solution_from_schedule(
    m: LinearModel, d: ModelData, sched: Schedule
) -> tuple[np.ndarray, np.ndarray]:
    """Integer part of a MIP start from a schedule: (model columns, values).

    Only the integer decisions are given; HiGHS completes the continuous ones. Jobs whose
    schedule does not fit the model's options (e.g. a changed scenario) are left out and
    HiGHS repairs the rest or ignores the start.
    """
    sc = d.sc
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    y = m.vars["v_assign"]
    n_opt = d.opt_job.size
    key = {
        (int(j), int(s), int(a)): i
        for i, (j, s, a) in enumerate(zip(d.opt_job, d.opt_site, d.opt_acc, strict=True))
    }
    yv = np.zeros(n_opt)
    hours_of_opt: dict[int, set[int]] = {}
    for j in range(len(sc.jobs)):
        s, a = int(sched.job_site[j]), int(sched.job_acc[j])
        if s < 0:
            continue
        o = key.get((j, s, a))
        if o is None or y.ub[o] == 0:
            continue
        yv[o] = 1.0
        hours_of_opt[o] = {int(h) for h in sched.job_hours[j]}
    cols.append(y.cols())
    vals.append(yv)
    run = m.vars["v_run"]
    if run.size:
        ro, rh = run.index["option"], run.index["hour"]
        rv = np.array(
            [1.0 if h in hours_of_opt.get(int(o), ()) else 0.0 for o, h in zip(ro, rh, strict=True)]
        )
        cols.append(run.cols())
        vals.append(rv)
    start = m.vars["v_start"]
    if start.size:
        so, sh = start.index["option"], start.index["hour"]
        first = {o: min(hs) for o, hs in hours_of_opt.items() if hs}
        sv = np.array(
            [1.0 if first.get(int(o)) == int(h) else 0.0 for o, h in zip(so, sh, strict=True)]
        )
        cols.append(start.cols())
        vals.append(sv)
    dev = m.vars["v_devices"]
    if dev.size:
        i = dev.index
        cols.append(dev.cols())
        vals.append(
            np.minimum(
                sched.svc_devices[i["service"], i["site"], i["accelerator"], i["hour"]], dev.ub
            ).astype(float)
        )
    return np.concatenate(cols), np.concatenate(vals)
