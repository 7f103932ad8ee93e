"""Which plan `optimize` returns, and how two plans compare (issue 11, issue 16 item 0).

The solver's plan is one candidate among others: the plan handed to HiGHS as its first
incumbent (the best greedy plan, or a previous plan repaired) and every baseline plan. The
planner returns the candidate with the lowest objective *with penalties* (unplaced work and
unmet demand priced), so it is never worse than a baseline or its own start, whatever HiGHS
did with the start (issue 16 measured a first incumbent of 175 M CNY handed a 0.61 M start).
Where objectives tie, the earlier candidate wins: the solver's plan, then the baselines in the
order given, then the start (a cold start is often the greedy plan itself, better named so).
A baseline or start that breaks a rule of the scenario the heuristics do not know (a minimum
up-time, a pause cap) is not a candidate (`pick_keeping_rules`).

`dominance` compares two plans' KPIs on the criteria of issue 11's "Done when": cost (with
contract payments, without the carbon price, which prices the emissions compared beside it),
emissions in both accountings, and contracted green curtailed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.plan import Plan, Schedule, assemble_plan
from optimizer.scenario.types import Scenario
from optimizer.validate import validate_plan

IMPROVED = "improved"
"""The solver's plan came back: no candidate beats it."""
START = "start"
"""The plan handed to the solver as its first incumbent came back."""
BASELINE = "baseline:"
"""Prefix of a baseline's name: that baseline's plan came back (e.g. `baseline:greedy`)."""

REL_TOL = 1e-7
"""Objectives closer than this (relative, plus 1e-6 CNY) tie: the earlier candidate wins."""


@dataclass(frozen=True)
class Candidate:
    """A plan `optimize` may return: its origin (`IMPROVED`, `START`, `baseline:<name>`),
    decisions and the plan assembled from them (its objective counts penalties)."""

    origin: str
    schedule: Schedule
    plan: Plan

    @property
    def objective(self) -> float:
        return float(self.plan.summary["objective"])


def baseline_origin(name: str) -> str:
    return f"{BASELINE}{name}"


def pick(candidates: list[Candidate]) -> Candidate:
    """The candidate with the lowest objective; on a tie, the earliest."""
    if not candidates:
        raise ValueError("no candidate plan to choose from")
    best = candidates[0]
    for c in candidates[1:]:
        if c.objective < best.objective - (REL_TOL * abs(best.objective) + 1e-6):
            best = c
    return best


def pick_keeping_rules(sc: Scenario, candidates: list[Candidate]) -> Candidate:
    """`pick` among the candidates that keep every rule of `sc`. Baselines and starts come
    from heuristics that know nothing of some hard rules (a minimum up-time, a cap on
    pauses), so one that would win is first checked by the independent validator and passed
    over if it breaks one; the solver's plan is checked by the caller, as every plan is.
    When every other candidate breaks a rule the best of all comes back (a fallback; its
    check then says what it breaks)."""
    left = list(candidates)
    while left:
        best = pick(left)
        if best.origin == IMPROVED or validate_plan(sc, best.plan).ok:
            return best
        left.remove(best)
    return pick(candidates)


# ----------------------------------------------------------------------------- dominance
CRITERIA = (
    "cost",
    "emissions_t",
    "emissions_location_t",
    "curtailed_mwh",
)
"""What `dominance` compares, all lower-is-better: `cost` (the objective without the carbon
price: energy, contract payments less resale, certificates, moves, churn, and the penalties
of work left undone and policy minimums missed, so plans doing unequal work compare at
their price), emissions contract- and location-based, contracted green curtailed."""

ABS_TOL = {"cost": 0.5, "emissions_t": 1e-4, "emissions_location_t": 1e-4, "curtailed_mwh": 1e-4}
"""Differences below these count as equal (CNY, t, t, MWh): rounding noise of the LPs."""


def criteria(kpis: dict[str, Any]) -> dict[str, float]:
    """A plan's `CRITERIA` from its KPIs (a summary or a baseline's KPI block)."""
    return {
        "cost": float(kpis["objective"]) - float(kpis["carbon_cost"]),
        "emissions_t": float(kpis["emissions_t"]),
        "emissions_location_t": float(kpis["emissions_location_t"]),
        "curtailed_mwh": float(kpis["curtailed_mwh"]),
    }


def work_done(kpis: dict[str, Any]) -> tuple[float, float]:
    """(in-horizon device-hours left undone, Mtokens of demand left unserved)."""
    return float(kpis["unplaced_device_hours"]), float(kpis["unmet_mtokens"])


def does_work_of(plan: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether `plan` leaves no more job work undone and no more demand unserved than `base`
    (both KPI mappings)."""
    (undone_a, unmet_a), (undone_b, unmet_b) = work_done(plan), work_done(base)
    return undone_a <= undone_b + 1e-6 and unmet_a <= unmet_b + 1e-6


def dominance(plan: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """How `plan` compares with `base` (both KPI mappings).

    `dominates`: no worse on every criterion, strictly better on one, and at least as much
    work done (jobs' device-hours and tokens served) — more work for no more cost and carbon
    is dominance at equal work or better. `equal_work` says whether the work is the same;
    `diff` is plan - base per criterion, and the work differences beside it.
    """
    a, b = criteria(plan), criteria(base)
    diff = {k: a[k] - b[k] for k in CRITERIA}
    no_worse = all(diff[k] <= ABS_TOL[k] for k in CRITERIA)
    better = any(diff[k] < -ABS_TOL[k] for k in CRITERIA)
    (undone_a, unmet_a), (undone_b, unmet_b) = work_done(plan), work_done(base)
    return {
        "dominates": bool(no_worse and better and does_work_of(plan, base)),
        "equal_work": bool(abs(undone_a - undone_b) <= 1e-6 and abs(unmet_a - unmet_b) <= 1e-6),
        "diff": diff,
        "undone_device_hours_diff": undone_a - undone_b,
        "unmet_mtokens_diff": unmet_a - unmet_b,
    }


def restricted(sc: Scenario, sched: Schedule, base: Schedule) -> Schedule | None:
    """`sched` doing no job `base` leaves unplaced: those jobs taken out (unplaced, with their
    penalty), green used first for what is left; None if there is no such job."""
    extra = (sched.job_site >= 0) & (base.job_site < 0)
    if not extra.any():
        return None
    out = dataclasses.replace(
        sched,
        job_site=np.where(extra, -1, sched.job_site),
        job_acc=np.where(extra, -1, sched.job_acc),
        job_hours=[
            np.zeros(0, np.int64) if x else h for h, x in zip(sched.job_hours, extra, strict=True)
        ],
        job_reason=[""] * len(sched.job_reason),
        green_mw=None,
    )
    return out


def at_equal_work(
    sc: Scenario, plan: Candidate, base: Candidate
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`dominance` of `plan` over `base` at equal job work, and the KPIs compared: where
    `plan` runs jobs `base` leaves unplaced, `plan` without them (`restricted`), so both do
    the same jobs and those jobs' penalty is the same on both sides; the work differences
    are reported beside it."""
    cut = restricted(sc, plan.schedule, base.schedule)
    kpis = plan.plan.summary if cut is None else assemble_plan(sc, cut, status="check").summary
    out = dominance(kpis, base.plan.summary)
    out["restricted"] = cut is not None
    out["full"] = dominance(plan.plan.summary, base.plan.summary)
    return out, kpis


def dominance_report(
    sc: Scenario, best: Candidate, baselines: dict[str, Candidate]
) -> dict[str, Any]:
    """Whether the plan returned dominates each baseline at equal work (`at_equal_work`),
    and by how much per criterion: `solver.dominance`."""
    out: dict[str, Any] = {}
    for name, c in baselines.items():
        d, _ = at_equal_work(sc, best, c)
        out[name] = {
            "dominates": d["dominates"],
            "restricted": d["restricted"],
            "diff": d["diff"],
            "undone_device_hours_diff": d["full"]["undone_device_hours_diff"],
            "unmet_mtokens_diff": d["full"]["unmet_mtokens_diff"],
        }
    return out
