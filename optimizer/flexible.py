"""Short jobs planned as flexible load: thousands of sub-hour jobs aggregated into *lanes*
before the solve and handed back to each job after it (issue 17, item 3).

The line: a job is **flexible** when its gang is at most `FLEX_MAX_GANG` devices (one
server: no gang placement across servers), it runs under `FLEX_MAX_RUN_H` (the model's
step) on the fastest type it accepts, it is not running yet and its deadline lies within
the horizon. Bigger or longer jobs stay individual decisions: a whole gang at one site,
blocks of whole hours, migration costs are what the per-job model is for.

Aggregation. Flexible jobs are grouped by class: (lane types, allowed regions, gang,
release hour, deadline hour, data-origin site). A job's *lane types* are the types it
accepts on which it runs under an hour. Within a class the jobs, longest first, are packed
first-fit into **lanes**: a lane is `gang` devices of one type at one site for one hour,
running its jobs one after another, their run times on the slowest lane type summing to at
most an hour. Each lane enters the model as one ordinary job (gang `gang`, one hour on any
lane type, the class's window and regions, its members' data and unplaced penalty summed),
so it shares the device, power, carbon and capacity rows with everything else and the
solver places it like any job: the device-hours of a class at a (site, type, hour) are its
lanes placed there.

Disaggregation rule (what the bundle states and the validator re-derives): every job of a
lane runs at the lane's site, on its type, in its hour, with its own gang; the jobs of a
lane share its devices, run back to back, so their run times on that type sum to at most one
hour; a lane's devices count once per hour, however many jobs run in it. `workloads.csv`
names each job's lane (`lane_id`). No job is split across hours, sites or types, and a
device-hour is never handed out beyond its hour.

What the aggregation gives up: jobs of one lane move together (same site, type and hour),
and a lane's unused minutes stay idle-but-busy (they are billed as busy power, as any
job's partial last hour is). The solver's bound is the bound of this aggregated model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from optimizer import choose
from optimizer.plan import Plan, Schedule, assemble_plan
from optimizer.plan.types import lane_name
from optimizer.plan.warm import lane_ids
from optimizer.rules import work_in_horizon
from optimizer.scenario.types import Job, Scenario
from optimizer.solve import Beside

FLEX_MAX_GANG = 8  # devices: one server (8 accelerators), so no gang placement across servers
FLEX_MAX_RUN_H = 1.0  # h: the model's step; shorter jobs would each hold a device-hour
# "auto" aggregates from this many flexible jobs: below it the per-job model is small
# enough, and small scenarios keep their exact per-job answers  (assumed)
AUTO_MIN_FLEXIBLE = 200
# `finish_by_limit`: the share of the budget kept for stating the lanes' plan and its
# baselines on the original jobs (20,000-job week: 25 s with the baselines planned again,
# bench/results/trace-week-20k-2026-12-06.md; they are now planned once)
DISAGGREGATE_SHARE = 0.05
PACK_TOL_H = 1e-9  # h: run times summing to 1 h within this still fit one lane


@dataclass(frozen=True)
class Lanes:
    """The aggregated scenario and how to map its plan back to the original jobs.

    The lane scenario's jobs are the kept (individual) jobs, in their original order, then
    the lanes: `kept[i]` is the original position of lane-scenario job i, lane k is job
    `len(kept) + k` and holds the original jobs `members[k]`.
    """

    scenario: Scenario
    kept: np.ndarray
    members: list[np.ndarray]
    classes: int

    @property
    def flexible_jobs(self) -> int:
        return int(sum(m.size for m in self.members))

    def lane_id(self, k: int) -> str:
        return self.scenario.jobs[self.kept.size + k].job_id


def run_time_h(sc: Scenario, job: Job, acc: str) -> float:
    """Hours `job` runs at full gang on type `acc` (its work due in this horizon)."""
    tp = sc.accelerators[sc.accelerator_index[acc]].relative_throughput
    return work_in_horizon(sc, job) / (job.gang * tp)


def lane_types(sc: Scenario, job: Job) -> tuple[str, ...]:
    """The types `job` accepts on which it runs under `FLEX_MAX_RUN_H`."""
    return tuple(a for a in job.accelerators if run_time_h(sc, job, a) < FLEX_MAX_RUN_H)


def is_flexible(sc: Scenario, job: Job) -> bool:
    """Planned as flexible load (see the module docstring for the line and why)."""
    return (
        job.gang <= FLEX_MAX_GANG
        and job.current_site is None
        and 0 <= job.release < job.deadline <= sc.hours
        and bool(lane_types(sc, job))
    )


def class_key(sc: Scenario, job: Job) -> tuple[Any, ...]:
    """Jobs with the same key are interchangeable in a lane."""
    return (
        lane_types(sc, job),
        job.allowed_regions,
        job.gang,
        job.release,
        job.deadline,
        job.data_origin_site or "",
    )


def pack(durations: np.ndarray) -> list[np.ndarray]:
    """First-fit decreasing: positions of `durations` (h, each < 1) grouped into lanes of at
    most one hour each."""
    order = sorted(range(durations.size), key=lambda i: (-durations[i], i))
    loads: list[float] = []
    lanes: list[list[int]] = []
    for i in order:
        for k, load in enumerate(loads):
            if load + durations[i] <= 1.0 + PACK_TOL_H:
                loads[k] += float(durations[i])
                lanes[k].append(i)
                break
        else:
            loads.append(float(durations[i]))
            lanes.append([i])
    return [np.array(sorted(x), dtype=np.int64) for x in lanes]


def aggregate(sc: Scenario) -> Lanes | None:
    r"""The lane scenario of `sc`, or None when no job is flexible.

    .. math::

        \sum_{j \in M_\ell} \frac{W_j}{N_c\, \tau_{a^*_c}} \le 1
            \quad \forall \ell \in L_c          && \text{(lane packing, first-fit decreasing)}

        W_\ell = N_c\, \tau_{a^*_c} \;\Rightarrow\; D_{\ell,a} = \lceil \tau_{a^*_c} / \tau_a \rceil = 1
            \quad \forall a \in A_c                && \text{(a lane is one hour on any lane type)}

        \pi_\ell = \sum_{j \in M_\ell} \pi_j, \quad G_\ell = \sum_{j \in M_\ell} G_j
            && \text{(penalty, data moved)}

        (s_j, a_j, h_j) = (s_\ell, a_\ell, h_\ell) \quad \forall j \in M_\ell
            && \text{(disaggregation)}

    Each lane is a job of the model (module ``jobs``): its gang registers in ``device_use``
    once per hour, so the device-hours of class c at (s, a, h) are
    :math:`N_c` times its lanes placed there, within the same capacity, power, carbon and
    cost rows as every other job.

    ========================  ==================  ==========  ==============================================
    symbol                    name                unit        meaning
    ========================  ==================  ==========  ==============================================
    :math:`c`                 class               \-          (lane types, regions, gang, release, deadline, data origin)
    :math:`L_c, M_\ell`       lanes, members      \-          lanes of class c; jobs of lane l
    :math:`A_c, a^*_c`        lane types          \-          types its jobs run under an hour on; the slowest
    :math:`W_j`               work in horizon     device-h    reference device-hours of job j
    :math:`N_c`               gang                devices     devices of each job of the class (<= 8)
    :math:`\tau_a`            relative throughput \-          work per device-hour of type a
    :math:`D_{\ell,a}`        run hours           h           hours lane l needs on type a
    :math:`\pi_j, G_j`        penalty, data       CNY, GB     unplaced penalty, data moved with job j
    ========================  ==================  ==========  ==============================================
    """
    classes: dict[tuple[Any, ...], list[int]] = {}
    kept: list[int] = []
    for j, job in enumerate(sc.jobs):
        if is_flexible(sc, job):
            classes.setdefault(class_key(sc, job), []).append(j)
        else:
            kept.append(j)
    if not classes:
        return None
    members: list[np.ndarray] = []
    lanes: list[Job] = []
    for key, jobs in classes.items():
        types = key[0]
        slowest = min(
            types, key=lambda a: sc.accelerators[sc.accelerator_index[a]].relative_throughput
        )
        dur = np.array([run_time_h(sc, sc.jobs[j], slowest) for j in jobs])
        for group in pack(dur):
            ids = np.asarray(jobs, dtype=np.int64)[group]
            lanes.append(_lane_job(sc, lane_name(len(lanes)), types, slowest, ids))
            members.append(ids)
    lane_sc = dataclasses.replace(sc, jobs=tuple(sc.jobs[j] for j in kept) + tuple(lanes))
    return Lanes(lane_sc, np.asarray(kept, dtype=np.int64), members, len(classes))


def _lane_job(
    sc: Scenario, lane_id: str, types: tuple[str, ...], slowest: str, ids: np.ndarray
) -> Job:
    """One lane as a job: one hour of `gang` devices on any lane type (its work is one
    hour on the slowest, so at most one hour on every other), the members' data and
    penalties summed."""
    first = sc.jobs[int(ids[0])]
    tp_min = sc.accelerators[sc.accelerator_index[slowest]].relative_throughput
    kinds = {sc.jobs[int(j)].kind for j in ids}
    return Job(
        job_id=lane_id,
        kind=kinds.pop() if len(kinds) == 1 else "batch",
        accelerators=types,
        gang=first.gang,
        work_device_hours=first.gang * tp_min,
        release=first.release,
        deadline=first.deadline,
        preemptible=False,
        allowed_regions=first.allowed_regions,
        data_origin_site=first.data_origin_site,
        data_gb=float(sum(sc.jobs[int(j)].data_gb for j in ids)),
        current_site=None,
        lost_hours_on_move=0.0,
        priority=1.0,
        unplaced_penalty_cny=float(
            sum(
                sc.job_penalty_cny(sc.jobs[int(j)], work_in_horizon(sc, sc.jobs[int(j)]))
                for j in ids
            )
        ),
    )


def disaggregate(sc: Scenario, lanes: Lanes, lane_sched: Schedule) -> Schedule:
    """`lane_sched` (a plan of the lane scenario) as a plan of `sc`: kept jobs as planned,
    each flexible job in its lane's site, type and hour (the rule in the module docstring)."""
    out = Schedule.empty(sc)
    n = lanes.kept.size
    for i, j in enumerate(lanes.kept.tolist()):
        out.job_site[j] = lane_sched.job_site[i]
        out.job_acc[j] = lane_sched.job_acc[i]
        out.job_hours[j] = lane_sched.job_hours[i].copy()
        out.job_reason[j] = lane_sched.job_reason[i]
    lane_of = np.full(len(sc.jobs), -1, dtype=np.int64)
    for k, ids in enumerate(lanes.members):
        lane_of[ids] = k
        s, a = int(lane_sched.job_site[n + k]), int(lane_sched.job_acc[n + k])
        hours = lane_sched.job_hours[n + k]
        for j in ids.tolist():
            if s < 0:
                why = lane_sched.job_reason[n + k]
                out.job_reason[j] = f"its flexible lane {lanes.lane_id(k)} is unplaced" + (
                    f": {why}" if why else ""
                )
                continue
            out.job_site[j], out.job_acc[j] = s, a
            out.job_hours[j] = hours[:1].copy()  # a lane runs one hour
    out.job_lane = lane_of
    for name in ("svc_devices", "flows", "green_mw", "charge_mw", "discharge_mw", "soc_mwh"):
        setattr(out, name, getattr(lane_sched, name))
    return out


def plan_flexible(
    sc: Scenario,
    settings: Any,
    solve: Callable[..., Plan],
    baselines: Callable[[Scenario, Any, Any], Beside[dict[str, Schedule]]],
    **kwargs: Any,
) -> Plan | None:
    """`sc` planned with its short jobs in lanes, or None when `settings.flexible_jobs`
    leaves them individual (off, or "auto" with fewer than `AUTO_MIN_FLEXIBLE`).

    The lane scenario is planned by `solve` (the planner, flexible jobs off); the plan and
    its baselines are then stated on `sc`'s own jobs. The baselines are planned on the
    lanes too (`baselines`: the planner's `plan_baselines`), so plan and baselines compare
    at equal work and the same short-job packing; a warm re-solve with a core free plans
    them and states them on the jobs, in turn, on the thread beside pricing (`Beside`).
    `extra_baselines` (schedules of `sc`'s own jobs, e.g. the cost-only optimiser's) do not
    fit the lanes: they are reported beside the others and compared with the plan at equal
    work (`solver.dominance`), but neither compete nor bound the dominance guard.
    """
    if settings.flexible_jobs == "off":
        return None
    t0 = time.perf_counter()
    lanes = aggregate(sc)
    if lanes is None or (
        settings.flexible_jobs == "auto" and lanes.flexible_jobs < AUTO_MIN_FLEXIBLE
    ):
        return None
    agg_s = time.perf_counter() - t0
    warm = kwargs.pop("warm_start", None)
    extra = kwargs.pop("extra_baselines", None) or {}
    # planned once on the lanes: handed to the planner and stated on the jobs
    lane_baselines = baselines(lanes.scenario, settings, warm)
    stated = Beside(lambda: _stated(sc, lanes, lane_baselines.result()), after=lane_baselines)
    base_s = time.perf_counter() - t0 - agg_s
    # the budget, less this and (`finish_by_limit`) a share kept for stating the plan on
    # the original jobs after (`DISAGGREGATE_SHARE`)
    keep = DISAGGREGATE_SHARE * settings.time_limit_s if settings.finish_by_limit else 0.0
    inner = dataclasses.replace(
        settings,
        flexible_jobs="off",
        time_limit_s=max(1.0, settings.time_limit_s - agg_s - base_s - keep),
    )
    # a previous plan is matched by job id, its flexible jobs by their lane's
    # (`on_lanes`); a Schedule is positional, of the original jobs, so it cannot seed the
    # lane scenario
    plan = solve(
        lanes.scenario,
        inner,
        warm_start=on_lanes(warm) if isinstance(warm, Plan) else None,
        baseline_schedules=lane_baselines,
        **kwargs,
    )
    assert plan.schedule is not None
    t1 = time.perf_counter()
    solver = dict(plan.summary["solver"])
    solver["flexible"] = summary(lanes)
    out = assemble_plan(
        sc,
        disaggregate(sc, lanes, plan.schedule),
        status=plan.status,
        solver=solver,
        model_size=plan.summary["model_size"],
        planner=str(plan.summary["planner"]),
    )
    # the lane model's duals, which bound the next warm re-solve's lane model
    out = dataclasses.replace(out, pricing_duals=plan.pricing_duals)
    # which candidate came back on the lanes (`optimizer.choose`) is the one stated here
    out.summary["origin"] = plan.summary.get("origin")
    out.summary["baselines"] |= stated.result()
    _compare_extra(sc, out, extra)
    timings = dict(plan.summary["timings_s"])
    timings["baselines"] = timings.get("baselines", 0.0) + base_s
    timings["flexible_aggregate"] = agg_s
    timings["flexible_disaggregate"] = time.perf_counter() - t1
    timings["total"] = timings.get("total", 0.0) + agg_s + base_s + timings["flexible_disaggregate"]
    out.summary["timings_s"] = timings
    return out


def _stated(
    sc: Scenario, lanes: Lanes, lane_baselines: dict[str, Schedule]
) -> dict[str, dict[str, Any]]:
    """The lanes' baseline plans stated on `sc`'s own jobs: their KPIs, by name."""
    out = {}
    for name, lane_sched in lane_baselines.items():
        bs = disaggregate(sc, lanes, lane_sched)
        out[name] = assemble_plan(sc, bs, status="baseline", planner=name).kpis.as_dict()
    return out


def on_lanes(plan: Plan) -> Plan:
    """`plan` (stated on the original jobs) as a warm start of a lane scenario: each
    flexible job's assignment relabelled with its lane's id (workloads.csv `lane_id`, the
    lane scenario's job id), one row per lane-hour, so that each lane starts where its jobs
    ran. The lanes of the same jobs are the same lanes; where the jobs changed, a lane is
    matched by id and repaired like any other job (`baselines.repair_start`)."""
    a = plan.assignments
    lane_of = lane_ids(plan)
    if a is None or a.empty or not lane_of:
        return plan
    member = a["workload_id"].isin(lane_of)
    lanes = (
        a[member]
        .assign(workload_id=a.loc[member, "workload_id"].map(lane_of))
        .drop_duplicates(subset=["workload_id", "timestamp"])
    )
    out = pd.concat([a[~member], lanes], ignore_index=True)
    return dataclasses.replace(plan, assignments=out)


def _compare_extra(sc: Scenario, out: Plan, extra: dict[str, Schedule]) -> None:
    """`extra` baselines (of `sc`'s own jobs) reported in `out` and compared with it."""
    if not extra:
        return
    assert out.schedule is not None
    named = {
        n: choose.Candidate(
            choose.baseline_origin(n), s, assemble_plan(sc, s, status="baseline", planner=n)
        )
        for n, s in extra.items()
    }
    out.summary["baselines"] |= {n: c.plan.kpis.as_dict() for n, c in named.items()}
    mine = choose.Candidate(str(out.summary.get("origin")), out.schedule, out)
    out.summary["solver"].setdefault("dominance", {}).update(
        choose.dominance_report(sc, mine, named)
    )


def summary(lanes: Lanes) -> dict[str, Any]:
    """What the aggregation did, for the plan's solver summary."""
    return {
        "flexible_jobs": lanes.flexible_jobs,
        "classes": lanes.classes,
        "lanes": len(lanes.members),
        "individual_jobs": int(lanes.kept.size),
        "rule": "short jobs (gang <= 8, under 1 h on their fastest type) packed into one-hour "
        "lanes per class; bound and objective of the solve are the lane model's",
    }
