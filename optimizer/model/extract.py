"""Read solution vectors back into plain decisions (a `Schedule`); nothing of the solver or
of Pyomo leaves these functions."""

from __future__ import annotations

import numpy as np

from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.plan import Schedule


def jobs_from_solution(m: LinearModel, d: ModelData, x: np.ndarray, sched: Schedule) -> None:
    """Fill `sched`'s job decisions (option and hours of every job) from `x`."""
    sc = d.sc
    y = np.round(m.vars["v_assign"].values(x)).astype(np.int64)
    chosen = np.flatnonzero(y > 0)
    sched.job_site[:] = -1
    sched.job_acc[:] = -1
    sched.job_site[d.opts.job[chosen]] = d.opts.site[chosen]
    sched.job_acc[d.opts.job[chosen]] = d.opts.acc[chosen]
    is_chosen = np.zeros(d.opts.size, dtype=bool)
    is_chosen[chosen] = True
    imp_o = np.asarray(m.meta["implied_option"], dtype=np.int64)
    imp_h = np.asarray(m.meta["implied_hour"], dtype=np.int64)
    keep = is_chosen[imp_o]
    run = m.vars["v_run"]
    on = np.round(run.values(x)) > 0
    start = m.vars["v_start"]
    st = np.round(start.values(x)) > 0
    so, sh = start.index["option"][st], start.index["hour"][st]
    lengths = d.opts.run_hours[so]
    block = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    o = np.concatenate([imp_o[keep], run.index["option"][on], np.repeat(so, lengths)])
    h = np.concatenate([imp_h[keep], run.index["hour"][on], np.repeat(sh, lengths) + block])
    jobs = d.opts.job[o]
    order = np.lexsort((h, jobs))
    jobs, h = jobs[order], h[order]
    bounds = np.searchsorted(jobs, np.arange(len(sc.jobs) + 1))
    sched.job_hours = [h[bounds[j] : bounds[j + 1]].copy() for j in range(len(sc.jobs))]


def services_and_energy_from_solution(
    m: LinearModel, d: ModelData, x: np.ndarray, sched: Schedule
) -> None:
    """Fill `sched`'s inference devices and flows, green use and battery from `x`.

    Needs a model with one serving unit per service (whole devices).
    """
    if d.aggregated:
        raise ValueError("services merged into classes: disaggregate before extracting")
    S, H = d.S, d.H
    service_of_unit = np.argsort(d.unit_of_service)
    dev = m.vars["v_devices"]
    n = np.round(dev.values(x)).astype(np.int64)
    nz = n > 0
    idx = dev.index
    sched.svc_devices[:] = 0
    sched.svc_devices[
        service_of_unit[idx["unit"][nz]], idx["site"][nz], idx["accelerator"][nz], idx["hour"][nz]
    ] = n[nz]
    flow = m.vars["v_flow"]
    fi = flow.index
    k = service_of_unit[fi["unit"]]
    sched.flows[:] = 0.0
    sched.flows[k, fi["region"], fi["site"], fi["hour"]] = (
        np.maximum(flow.values(x), 0.0) * d.service_scale[k]
    )
    sched.green_mw = np.maximum(m.vars["v_green_mw"].values(x), 0.0).reshape(S, H).copy()
    ch, dis, soc = np.zeros((S, H)), np.zeros((S, H)), np.zeros((S, H))
    for name, arr in (("v_charge_mw", ch), ("v_discharge_mw", dis), ("v_soc_mwh", soc)):
        b = m.vars[name]
        arr[b.index["site"], b.index["hour"]] = np.maximum(b.values(x), 0.0)
    sched.charge_mw, sched.discharge_mw, sched.soc_mwh = ch, dis, soc


def schedule_from_solution(m: LinearModel, d: ModelData, x: np.ndarray) -> Schedule:
    sched = Schedule.empty(d.sc)
    jobs_from_solution(m, d, x, sched)
    services_and_energy_from_solution(m, d, x, sched)
    return sched


def solution_from_schedule(
    m: LinearModel, d: ModelData, sched: Schedule
) -> tuple[np.ndarray, np.ndarray]:
    """Integer part of a MIP start from a schedule: (model columns, values).

    Only the integer decisions are given; HiGHS completes the continuous ones. Jobs whose
    schedule does not fit the model's options (e.g. a changed scenario, or an option left
    out) are given as unplaced; HiGHS repairs the rest or ignores the start.
    """
    sc = d.sc
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    y = m.vars["v_assign"]
    key = {
        (int(j), int(s), int(a)): i
        for i, (j, s, a) in enumerate(zip(d.opts.job, d.opts.site, d.opts.acc, strict=True))
    }
    yv = np.zeros(d.opts.size)
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
        rv = np.array(
            [
                1.0 if h in hours_of_opt.get(int(o), ()) else 0.0
                for o, h in zip(run.index["option"], run.index["hour"], strict=True)
            ]
        )
        cols.append(run.cols())
        vals.append(rv)
    start = m.vars["v_start"]
    if start.size:
        first = {o: min(hs) for o, hs in hours_of_opt.items() if hs}
        sv = np.array(
            [
                1.0 if first.get(int(o)) == int(h) else 0.0
                for o, h in zip(start.index["option"], start.index["hour"], strict=True)
            ]
        )
        cols.append(start.cols())
        vals.append(sv)
    dev = m.vars["v_devices"]
    if dev.size and dev.integer and not d.aggregated:
        i = dev.index
        k = np.argsort(d.unit_of_service)[i["unit"]]
        cols.append(dev.cols())
        vals.append(
            np.minimum(sched.svc_devices[k, i["site"], i["accelerator"], i["hour"]], dev.ub).astype(
                float
            )
        )
    return np.concatenate(cols), np.concatenate(vals)
