"""An LP-guided job plan: round the LP relaxation into whole gangs, then repair.

The LP relaxation of the model is close to integral on realistic fleets (on the default
scenario 10 of 300 jobs are fractional and the LP bound is within 0.3% of the MILP optimum),
but rounding it fails where big gangs compete for the same devices: the LP splits a
512-device job over two sites, and once everyone else takes their LP hours no whole block is
left for it. So:

1. jobs the LP placed whole go first, exactly where and when the LP runs them (together
   they fit, as the LP shows); the rest follow largest first (the order of first-fit-
   decreasing packing), each on the option the LP weighs most, in the hours the LP runs it
   most, falling back to other options and to the cheapest feasible hours;
2. a job that still finds no room gets it made: preemptible jobs occupying the hours it
   needs are shifted to other free hours of their own windows, until the gang fits.

Devices the LP gave to latency-bound inference are held back, with room to round them to
whole devices per service, so that jobs do not crowd out demand that cannot go elsewhere;
inference that most sites can serve is re-routed around the jobs afterwards.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from optimizer.baselines import FleetState, best_hours
from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData
from optimizer.plan import Schedule, busy_devices
from optimizer.rules import Option, grid_cost_per_mwh, job_options, pause_cost_cny, pauses_of

EPS = 1e-6


class _Placement:
    """The job plan being built, with who occupies which (site, type, hour)."""

    def __init__(self, sc, st: FleetState) -> None:  # type: ignore[no-untyped-def]
        self.sc = sc
        self.st = st
        self.sched = Schedule.empty(sc)
        self.occupants: dict[tuple[int, int, int], set[int]] = defaultdict(set)
        self.option: dict[int, Option] = {}

    def place(self, j: int, o: Option, hours: np.ndarray) -> None:
        gang = self.sc.jobs[j].gang
        self.st.take(o.site, o.accelerator, hours, gang)
        self.sched.job_site[j] = o.site
        self.sched.job_acc[j] = o.accelerator
        self.sched.job_hours[j] = np.sort(hours)
        self.option[j] = o
        for h in hours:
            self.occupants[(o.site, o.accelerator, int(h))].add(j)

    def remove(self, j: int) -> tuple[Option, np.ndarray]:
        """Take job j out of the plan; returns where it ran (to put it back)."""
        o, hours = self.option.pop(j), self.sched.job_hours[j]
        self.st.take(o.site, o.accelerator, hours, -self.sc.jobs[j].gang)
        for h in hours:
            self.occupants[(o.site, o.accelerator, int(h))].discard(j)
        self.sched.job_site[j] = -1
        self.sched.job_acc[j] = -1
        self.sched.job_hours[j] = np.zeros(0, dtype=np.int64)
        return o, hours

    def move_hour(self, k: int, h_from: int, h_to: int) -> None:
        o = self.option[k]
        gang = self.sc.jobs[k].gang
        self.st.take(o.site, o.accelerator, np.array([h_from]), -gang)
        self.st.take(o.site, o.accelerator, np.array([h_to]), gang)
        hours = self.sched.job_hours[k]
        self.sched.job_hours[k] = np.sort(np.where(hours == h_from, h_to, hours))
        self.occupants[(o.site, o.accelerator, h_from)].discard(k)
        self.occupants[(o.site, o.accelerator, h_to)].add(k)


def lp_guided_jobs(
    m: LinearModel, d: ModelData, x: np.ndarray, reserve: np.ndarray | None = None
) -> Schedule:
    """Whole-gang job decisions guided by the LP solution `x` of model `m` (services empty).

    `reserve` [site, type, hour]: devices kept free besides the inference the LP runs
    (room to round it to whole devices later).
    """
    sc = d.sc
    st = FleetState.start(sc)
    if reserve is not None:
        for s, a, h in zip(*np.nonzero(reserve), strict=True):
            st.take(int(s), int(a), np.array([h]), int(min(reserve[s, a, h], st.free[s, a, h])))
    _hold_bound_inference(st, m, d, x)
    y, weight = _lp_weights(m, d, x)
    option_of = {
        (int(j), int(s), int(a)): i
        for i, (j, s, a) in enumerate(zip(d.opts.job, d.opts.site, d.opts.acc, strict=True))
    }
    options = [job_options(sc, job)[0] for job in sc.jobs]

    def lp_weight(j: int, o: Option) -> float:
        i = option_of.get((j, o.site, o.accelerator))
        return float(y[i]) if i is not None else -math.inf

    p = _Placement(sc, st)
    unplaced: list[int] = []
    for j in _guided_order(d, y, weight, options):
        if not options[j]:
            continue
        best: tuple[Option, np.ndarray, float] | None = None
        for o in sorted(options[j], key=lambda o: -lp_weight(j, o)):
            i = option_of.get((j, o.site, o.accelerator))
            prefer = weight[i, o.window_start : o.window_end] if i is not None else None
            hours, cost = best_hours(sc, st, j, o, cheapest=True, prefer=prefer)
            if hours is None:
                continue
            total = cost + o.migration_cost_cny + o.transfer_cost_cny
            if lp_weight(j, o) > EPS:
                best = (o, hours, total)  # the LP's favourite option that fits
                break
            if best is None or total < best[2] - 1e-9:
                best = (o, hours, total)
        if best is None:
            unplaced.append(j)
            continue
        p.place(j, best[0], best[1])
    for j in unplaced:
        for o in sorted(options[j], key=lambda o: -lp_weight(j, o)):
            if _make_room(p, j, o):
                break
    return p.sched


def _hold_bound_inference(st: FleetState, m: LinearModel, d: ModelData, x: np.ndarray) -> None:
    """Take from `st` the whole devices of the LP's latency-bound inference.

    Latency-bound inference keeps its LP devices; inference that half the sites can serve
    moves wherever the jobs leave room when the plan is completed.
    """
    dev = m.vars["v_devices"]
    reach = np.zeros(d.unit_demand.shape[0], dtype=np.int64)
    for u in range(reach.size):
        reach[u] = np.unique(d.route_site[d.route_unit == u]).size
    bound_units = reach < max(1, d.S // 2)
    sel = bound_units[dev.index["unit"]] & (dev.values(x) > EPS)
    # whole devices per service: a unit of K services may need up to K - 1 devices more
    # than its rounded-up total, so that much is held back too
    members = np.bincount(d.unit_of_service, minlength=reach.size)
    need = np.ceil(dev.values(x)[sel] - EPS) + members[dev.index["unit"][sel]] - 1
    held = np.zeros((d.S, d.A, d.H))
    np.add.at(
        held, (dev.index["site"][sel], dev.index["accelerator"][sel], dev.index["hour"][sel]), need
    )
    held = held.astype(np.int64)
    for s, a, h in zip(*np.nonzero(held), strict=True):
        st.take(int(s), int(a), np.array([h]), int(min(held[s, a, h], st.free[s, a, h])))


def _lp_weights(m: LinearModel, d: ModelData, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The LP's weight on every option (`y`) and on every (option, hour)."""
    H = d.H
    y = m.vars["v_assign"].values(x)
    weight = np.zeros((d.opts.size, H))
    run = m.vars["v_run"]
    weight[run.index["option"], run.index["hour"]] = run.values(x)
    imp_o = np.asarray(m.meta["implied_option"], dtype=np.int64)
    imp_h = np.asarray(m.meta["implied_hour"], dtype=np.int64)
    weight[imp_o, imp_h] = y[imp_o]
    start = m.vars["v_start"]
    zw = np.zeros((d.opts.size, H))
    zw[start.index["option"], start.index["hour"]] = start.values(x)
    for o in np.unique(start.index["option"]):  # an hour weighs the starts whose block covers it
        weight[o] = np.convolve(zw[o], np.ones(int(d.opts.run_hours[o])))[:H]
    return y, weight


def _guided_order(
    d: ModelData, y: np.ndarray, weight: np.ndarray, options: list[list[Option]]
) -> list[int]:
    """Jobs the LP places whole first, then by size (device-hours), deadline and id."""
    jobs = d.sc.jobs
    size = np.array(
        [
            job.gang * max((o.run_hours for o in opts), default=0)
            for job, opts in zip(jobs, options, strict=True)
        ]
    )
    ymax = np.zeros(len(jobs))
    np.maximum.at(ymax, d.opts.job, y)
    whole_job = ymax > 1 - EPS
    frac_hours = np.abs(weight - np.round(weight)).max(axis=1) if d.opts.size else np.zeros(0)
    for o in np.flatnonzero(frac_hours > EPS):
        if y[o] > EPS:
            whole_job[d.opts.job[o]] = False
    return sorted(
        range(len(jobs)),
        key=lambda j: (not whole_job[j], -size[j], jobs[j].deadline, jobs[j].job_id),
    )


def _make_room(p: _Placement, j: int, o: Option) -> bool:
    """Place job j on option o by shifting preemptible jobs out of the hours it needs."""
    sc, st = p.sc, p.st
    job = sc.jobs[j]
    s, a = o.site, o.accelerator
    window = np.arange(o.window_start, o.window_end)
    mw = job.gang * (sc.busy_kw[a] - sc.idle_kw[a]) / 1000.0 * sc.pue[s]
    power_ok = st.headroom(s, window) >= mw - EPS
    # candidate hours: the ones with most free devices (preemptible) or the best block
    free = st.free[s, a, window]
    if job.preemptible:
        cand = np.flatnonzero(power_ok)
        if cand.size < o.run_hours:
            return False
        need = window[cand[np.argsort(-free[cand], kind="stable")[: o.run_hours]]]
    else:
        best_t, best_short = -1, math.inf
        for t in range(o.start_min, o.start_max + 1):
            i = t - o.window_start
            if not power_ok[i : i + o.run_hours].all():
                continue
            short = np.maximum(job.gang - free[i : i + o.run_hours], 0).sum()
            if short < best_short:
                best_t, best_short = t, short
        if best_t < 0:
            return False
        need = np.arange(best_t, best_t + o.run_hours)
    moves: list[tuple[int, int, int]] = []
    needed = set(int(h) for h in need)
    for h in need:
        h = int(h)
        while st.free[s, a, h] < job.gang:
            moved = False
            for k in sorted(p.occupants[(s, a, h)], key=lambda k: -sc.jobs[k].gang):
                if not sc.jobs[k].preemptible:
                    continue
                ok_k = p.option[k]
                mine = set(int(x) for x in p.sched.job_hours[k])
                gk = sc.jobs[k].gang
                mwk = gk * (sc.busy_kw[a] - sc.idle_kw[a]) / 1000.0 * sc.pue[s]
                for h2 in range(ok_k.window_start, ok_k.window_end):
                    if h2 in mine or h2 in needed:
                        continue
                    if st.free[s, a, h2] >= gk and st.headroom(s, np.array([h2]))[0] >= mwk - EPS:
                        p.move_hour(k, h, h2)
                        moves.append((k, h, h2))
                        moved = True
                        break
                if moved:
                    break
            if not moved:
                for k, h1, h2 in reversed(moves):  # undo: no room to be made here
                    p.move_hour(k, h2, h1)
                return False
    p.place(j, o, need)
    return True


def insert_unplaced(sc, jobs: Schedule) -> Schedule | None:  # type: ignore[no-untyped-def]
    """`jobs` (a job plan) with its unplaced jobs placed where room can be made, largest
    first; None if none could be. The completion step of the large-instance strategy: an
    unplaced job's penalty dwarfs what moving others costs (issue 16: a 1,376 device-h job
    left out of the default scenario's 60 s plan).

    Room is made on the job's options, cheapest grid price first: preemptible jobs in the
    way shift to other hours of their windows (`_make_room`); failing that, every job
    occupying the block it needs is moved to the cheapest place left for it, on any of its
    options (all or nothing). Devices only jobs hold count here: the inference around the
    new job plan is re-solved afterwards, and the caller keeps the plan only if the
    completed plan's objective is lower.
    """
    p = _Placement(sc, FleetState.start(sc))
    options = [job_options(sc, job)[0] for job in sc.jobs]
    for j in np.flatnonzero(jobs.job_site >= 0):
        o = next(
            (
                o
                for o in options[j]
                if (o.site, o.accelerator) == (jobs.job_site[j], jobs.job_acc[j])
            ),
            None,
        )
        if o is None:
            return None  # not a plan of this scenario's options
        p.place(int(j), o, np.asarray(jobs.job_hours[j], dtype=np.int64))
    out = np.flatnonzero(jobs.job_site < 0)
    size = {int(j): sc.jobs[j].work_device_hours for j in out}
    placed = 0
    price = p.st.grid_cost
    for k in sorted(size, key=lambda i: -size[i]):
        ranked = sorted(
            options[k], key=lambda o: price[o.site, o.window_start : o.window_end].mean()
        )
        if any(_make_room(p, k, o) or _relocate_blockers(p, k, o, options) for o in ranked):
            placed += 1
    return p.sched if placed else None


def _relocate_blockers(p: _Placement, j: int, o: Option, options: list[list[Option]]) -> bool:
    """Place job j on option o in the block where it is shortest of devices, moving every
    job there to the cheapest room left for it on any of its options; undone if one of them
    finds none."""
    sc, st, job = p.sc, p.st, p.sc.jobs[j]
    s, a = o.site, o.accelerator
    best_t, best_short = -1, math.inf
    starts = range(o.start_min, o.start_max + 1) if not job.preemptible else [o.window_start]
    for t in starts:
        span = o.run_hours if not job.preemptible else o.window_end - o.window_start
        short = np.maximum(job.gang - st.free[s, a, t : t + span], 0)
        if job.preemptible:  # the run_hours least short hours of the window
            short = np.sort(short)[: o.run_hours]
        if short.sum() < best_short:
            best_t, best_short = t, short.sum()
    if best_t < 0:
        return False
    window = np.arange(o.window_start, o.window_end)
    if job.preemptible:
        need = window[np.argsort(-st.free[s, a, window], kind="stable")[: o.run_hours]]
    else:
        need = np.arange(best_t, best_t + o.run_hours)
    blockers = sorted(
        {k for h in need for k in p.occupants[(s, a, int(h))]}, key=lambda k: -sc.jobs[k].gang
    )
    was = {k: p.remove(k) for k in blockers}
    mw = job.gang * (sc.busy_kw[a] - sc.idle_kw[a]) / 1000.0 * sc.pue[s]
    fits = bool(
        (st.free[s, a, need] >= job.gang).all() and (st.headroom(s, need) >= mw - EPS).all()
    )
    moved: list[int] = []
    if fits:
        p.place(j, o, need)
        for k in blockers:
            spot = _cheapest_spot(sc, st, k, options[k])
            if spot is None:
                break
            p.place(k, *spot)
            moved.append(k)
    if fits and len(moved) == len(blockers):
        return True
    for k in moved:
        p.remove(k)
    if fits:
        p.remove(j)
    for k, (ok, hours) in was.items():
        p.place(k, ok, hours)
    return False


def _cheapest_spot(sc, st: FleetState, k: int, opts: list[Option]):  # type: ignore[no-untyped-def]
    """The cheapest feasible (option, hours) of job k in fleet state `st`, or None."""
    best: tuple[Option, np.ndarray] | None = None
    best_c = math.inf
    for o in opts:
        hours, cost = best_hours(sc, st, k, o, cheapest=True)
        c = cost + o.migration_cost_cny + o.transfer_cost_cny
        if hours is not None and c < best_c:
            best, best_c = (o, hours), c
    return best


def relax_small_jobs(m: LinearModel, d: ModelData, share: float) -> None:
    """Solve job options whose gang is at most `share` of the site's devices of that type as
    continuous: whole gangs of them are easy to fit afterwards, and branching on them is what
    makes the MILP slow."""
    sc = d.sc
    installed = sc.installed_devices[d.opts.site, d.opts.acc]
    small = d.job_gang[d.opts.job] <= share * installed
    m.vars["v_assign"].relaxed = small
    for name in ("v_run", "v_start"):
        b = m.vars[name]
        b.relaxed = small[b.index["option"]] if b.size else np.zeros(0, dtype=bool)


def compact_pauses(sc, jobs: Schedule) -> Schedule:  # type: ignore[no-untyped-def]
    """`jobs` with each paused preemptible job run as one block instead, where its devices
    allow and the block's grid energy costs less more than the pauses it saves (issue 12).

    A repair of rounded job plans (the large-instance strategy prices pauses in stage 1, but
    rounding small jobs to their LP-preferred hours brings pauses back). Energy is priced at
    the grid (plus carbon) price of the gang's busy power over idle: the caller compares the
    completed plan with the others on the full objective before keeping it.
    """
    out = Schedule.empty(sc)
    out.job_site[:] = jobs.job_site
    out.job_acc[:] = jobs.job_acc
    out.job_hours = [h.copy() for h in jobs.job_hours]
    free = sc.capacity - busy_devices(sc, out)
    price = grid_cost_per_mwh(sc)  # [site, hour]
    for j, job in enumerate(sc.jobs):
        hours, s, a = out.job_hours[j], int(out.job_site[j]), int(out.job_acc[j])
        pauses = pauses_of(hours)
        if s < 0 or not job.preemptible or pauses == 0:
            continue
        opt = next((o for o in job_options(sc, job)[0] if (o.site, o.accelerator) == (s, a)), None)
        if opt is None:
            continue
        mw = job.gang * (sc.busy_kw[a] - sc.idle_kw[a]) / 1000.0 * sc.pue[s]
        free[s, a, hours] += job.gang
        D = hours.size
        now = mw * price[s, hours].sum() + pauses * pause_cost_cny(sc, job)
        best, best_t = now, -1
        for t in range(opt.window_start, opt.window_end - D + 1):
            if (free[s, a, t : t + D] >= job.gang).all():
                cost = mw * price[s, t : t + D].sum()
                if cost < best - EPS:
                    best, best_t = cost, t
        if best_t >= 0:
            out.job_hours[j] = np.arange(best_t, best_t + D, dtype=np.int64)
        free[s, a, out.job_hours[j]] -= job.gang
    return out
