"""A what-if's answer, typed: its run's state and, once solved, the plan's KPIs (read in
one place, `plan_kpis`), the diff against the base plan and the explanation's highlights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from service import plans
from service.models import Plan, Run
from service.runs import FINAL_STATES

HIGHLIGHTS = 20  # unplaced workloads and moves shown in a what-if's answer


@dataclass(frozen=True)
class PlanKpis:
    """A stored plan's headline numbers (both emission accountings, each on its own)."""

    id: int
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    total_cost: float | None
    energy_cost: float | None
    carbon_cost: float | None
    penalty: float | None
    emissions_t: float | None
    emissions_location_t: float | None
    green_share: float | None
    placed: int | None
    unplaced: int | None
    served_share: float | None

    @property
    def cost_excl_carbon(self) -> float | None:
        """The objective without the carbon price: a sweep's cost axis."""
        if self.objective is None or self.carbon_cost is None:
            return None
        return self.objective - self.carbon_cost


def plan_kpis(p: Plan) -> PlanKpis:
    """The one place the what-if code reads a plan's KPIs (columns, then the summary)."""
    s = p.summary
    return PlanKpis(
        id=p.id,
        status=p.status,
        objective=p.objective,
        bound=p.bound,
        gap=p.gap,
        total_cost=p.total_cost,
        energy_cost=_num(s.get("energy_cost")),
        carbon_cost=_num(s.get("carbon_cost")),
        penalty=_num(s.get("penalty")),
        emissions_t=p.emissions_t,
        emissions_location_t=p.emissions_location_t,
        green_share=p.green_share,
        placed=_int(s.get("placed")),
        unplaced=_int(s.get("unplaced")),
        served_share=_num(s.get("served_share")),
    )


@dataclass(frozen=True)
class Highlights:
    """The headline of `optimizer.diff.explain` (the whole of it: /plans/{id}/explain)."""

    binding_hours: dict[str, dict[str, int]]
    unplaced: list[dict[str, Any]]
    unplaced_total: int
    moves: list[dict[str, Any]]
    moves_total: int
    policy_violations: dict[str, Any]


def highlights(ex: dict[str, Any]) -> Highlights:
    """Hours each limit binds per site (counted), the first unplaced workloads and the moves
    that save most."""
    binding = {
        site: {limit: len(hours) for limit, hours in limits.items() if hours}
        for site, limits in ex["binding_hours"].items()
    }
    moves = sorted(ex["moves"], key=lambda m: -(_num(m.get("net_saving")) or 0.0))
    return Highlights(
        binding_hours={s: v for s, v in binding.items() if v},
        unplaced=ex["unplaced"][:HIGHLIGHTS],
        unplaced_total=len(ex["unplaced"]),
        moves=moves[:HIGHLIGHTS],
        moves_total=len(moves),
        policy_violations=ex["policy_violations"],
    )


@dataclass
class WhatIfResult:
    """A what-if run as answered."""

    run_id: int
    state: str
    scenario_version_id: int
    base_plan_id: int | None
    overrides: dict[str, Any]
    settings: dict[str, Any]
    progress: dict[str, Any]
    error: str | None
    plan: PlanKpis | None = None
    diff: dict[str, Any] | None = None
    explain: Highlights | None = None
    message: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


def whatif_result(session: Session, run: Run) -> WhatIfResult:
    """Its state and, once it succeeded, the plan's KPIs, the diff against the base plan
    and the explanation's highlights."""
    base_id = run.warm_start_plan_id
    out = WhatIfResult(
        run_id=run.id,
        state=run.state,
        scenario_version_id=run.scenario_version_id,
        base_plan_id=base_id,
        overrides=run.overrides,
        settings=run.settings,
        progress=run.progress,
        error=run.error,
        links={"run": f"/runs/{run.id}", "what_if": f"/what-if/{run.id}"},
    )
    if not out.finished:
        out.message = f"still {run.state}: poll /runs/{run.id} or /what-if/{run.id}"
        return out
    if run.state != "succeeded" or run.plan_id is None:
        out.message = f"the what-if run {run.state}: {run.error or 'no plan'}"
        return out
    plan = plans.get_plan(session, run.plan_id)
    out.plan = plan_kpis(plan)
    out.explain = highlights(plans.explain_plan(session, plan.id))
    out.links |= {"plan": f"/plans/{plan.id}", "explain": f"/plans/{plan.id}/explain"}
    if base_id is None:
        out.message = (
            f"no plan of scenario version {run.scenario_version_id} solved without overrides "
            "to compare with: solve one (POST /runs) and ask again, or name base_plan_id"
        )
    else:
        out.diff = plans.diff(session, base_id, plan.id)
        out.links["diff"] = f"/plans/{base_id}/diff/{plan.id}"
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(float(v)) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) else None
