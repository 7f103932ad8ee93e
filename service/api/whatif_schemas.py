"""Response models of the what-if routes, each with an example (kept apart from
`schemas.py` only to keep that shared file small; the same conventions apply). Each reads
the typed result of `service.whatif` (`from_attributes`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.api.schemas import TS, DiffOut, UnplacedOut

RunState = Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]


def _example(ex: dict[str, Any]) -> ConfigDict:
    return ConfigDict(from_attributes=True, json_schema_extra={"examples": [ex]})


_PLAN = {
    "id": 9,
    "status": "optimal",
    "objective": 161200.4,
    "bound": 161080.0,
    "gap": 0.00075,
    "total_cost": 158900.1,
    "energy_cost": 158400.1,
    "carbon_cost": 0.0,
    "penalty": 2300.3,
    "emissions_t": 58.2,
    "emissions_location_t": 90.4,
    "green_share": 0.38,
    "placed": 11,
    "unplaced": 1,
    "served_share": 1.0,
}


class WhatIfPlanOut(BaseModel):
    """The what-if plan's headline numbers; the plan itself is at /plans/{id}."""

    model_config = _example(_PLAN)
    id: int
    status: str = Field(description="optimal | feasible | fallback")
    objective: float | None
    bound: float | None
    gap: float | None = Field(description="relative MIP gap of the solve")
    total_cost: float | None = Field(description="energy + carbon + moves + transfers")
    energy_cost: float | None
    carbon_cost: float | None = Field(description="carbon price x contract-based emissions")
    penalty: float | None = Field(description="unplaced work, unmet demand, policy")
    emissions_t: float | None = Field(description="contract-based accounting")
    emissions_location_t: float | None = Field(description="location-based accounting")
    green_share: float | None
    placed: int | None
    unplaced: int | None
    served_share: float | None


_HIGHLIGHTS = {
    "binding_hours": {"nx-west": {"capacity": 6, "green_supply": 4}},
    "unplaced": [
        {
            "workload_id": "urgent-eval",
            "kind": "batch",
            "status": "unplaced",
            "reason": "deadline cannot be met: ...",
        }
    ],
    "unplaced_total": 1,
    "moves": [],
    "moves_total": 0,
    "policy_violations": {"green_share": [], "carbon_excess_t": 0.0},
}


class HighlightsOut(BaseModel):
    """The headline of the plan's explanation (all of it: /plans/{id}/explain)."""

    model_config = _example(_HIGHLIGHTS)
    binding_hours: dict[str, dict[str, int]] = Field(
        description="per site, how many hours devices (capacity), the grid (power) or green "
        "supply were used up"
    )
    unplaced: list[UnplacedOut] = Field(description="the first unplaced workloads and why")
    unplaced_total: int
    moves: list[dict[str, Any]] = Field(description="the running jobs moved that save most")
    moves_total: int
    policy_violations: dict[str, Any]


_DIFF: dict[str, Any] = DiffOut.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index,assignment]
_WHATIF = {
    "run_id": 12,
    "state": "succeeded",
    "scenario_version_id": 3,
    "base_plan_id": 4,
    "overrides": {"price_changes": [{"multiplier": 2.0, "zones": ["ningxia", "guizhou"]}]},
    "settings": {"time_limit_s": 60.0, "mip_rel_gap": 0.001, "threads": 1, "seed": 0},
    "progress": {"phase": "done", "status": "optimal", "gap": 0.00075, "activated": False},
    "error": None,
    "plan": _PLAN,
    "diff": {**_DIFF, "plan_a": 4, "plan_b": 9},
    "explain": _HIGHLIGHTS,
    "message": None,
    "links": {
        "run": "/runs/12",
        "what_if": "/what-if/12",
        "plan": "/plans/9",
        "explain": "/plans/9/explain",
        "diff": "/plans/4/diff/9",
    },
}


class WhatIfOut(BaseModel):
    """A what-if: its run's state and, once solved, the plan's KPIs, what changed against
    the base plan, and why the plan looks as it does. Still solving (202): only the run."""

    model_config = _example(_WHATIF)
    run_id: int
    state: RunState
    scenario_version_id: int = Field(description="the scenario version the overrides change")
    base_plan_id: int | None = Field(
        description="the plan compared with and started from (null: none of that version)"
    )
    overrides: dict[str, Any]
    settings: dict[str, Any]
    progress: dict[str, Any]
    error: str | None
    plan: WhatIfPlanOut | None
    diff: DiffOut | None = Field(description="optimizer.diff.diff_plans(base plan, what-if plan)")
    explain: HighlightsOut | None
    message: str | None = Field(description="why there is no plan or no diff, if so")
    links: dict[str, str] = Field(description="where to follow the run and read the plan")


_POINT = {
    "value": 100.0,
    "run_id": 21,
    "state": "succeeded",
    "error": None,
    "plan_id": 15,
    "status": "optimal",
    "objective": 167300.2,
    "bound": 167200.0,
    "gap": 0.0006,
    "total_cost": 165000.0,
    "energy_cost": 159200.0,
    "carbon_cost": 5800.0,
    "penalty": 2300.2,
    "cost_excl_carbon": 161500.2,
    "emissions_t": 58.0,
    "emissions_location_t": 91.0,
    "green_share": 0.4,
    "unplaced": 1,
    "pareto": True,
    "pareto_location": True,
}


class SweepPointOut(BaseModel):
    """One value of a sweep: its run and, once solved, its plan's numbers."""

    model_config = _example(_POINT)
    value: float
    run_id: int | None
    state: RunState | None
    error: str | None
    plan_id: int | None
    status: str | None
    objective: float | None
    bound: float | None
    gap: float | None
    total_cost: float | None = Field(description="energy + carbon + moves + transfers")
    energy_cost: float | None
    carbon_cost: float | None
    penalty: float | None
    cost_excl_carbon: float | None = Field(
        description="objective without the carbon price: the cost axis of the Pareto flags"
    )
    emissions_t: float | None = Field(description="contract-based accounting")
    emissions_location_t: float | None = Field(description="location-based accounting")
    green_share: float | None
    unplaced: int | None
    pareto: bool | None = Field(
        description="on the front of cost_excl_carbon and emissions_t (null: no plan)"
    )
    pareto_location: bool | None = Field(
        description="on the front of cost_excl_carbon and emissions_location_t"
    )


_SWEEP_ITEM = {
    "id": 3,
    "state": "running",
    "parameter": "carbon_price_cny_per_t",
    "values": [0.0, 50.0, 100.0, 200.0, 500.0],
    "scenario_version_id": 3,
    "base_plan_id": 4,
    "overrides": {},
    "settings": {"time_limit_s": 60.0, "mip_rel_gap": 0.001, "threads": 1, "seed": 0},
    "note": "carbon price curve",
    "created_by": "key:ops-team#2",
    "created_at": TS,
    "counts": {"succeeded": 3, "running": 2},
    "links": {"self": "/what-if/sweep/3"},
}


class SweepItem(BaseModel):
    model_config = _example(_SWEEP_ITEM)
    id: int
    state: Literal["running", "done", "partial", "failed"] = Field(
        description="running while a point is queued or running; done: every point "
        "succeeded; failed: none did; partial: some did"
    )
    parameter: str
    values: list[float] = Field(description="in ascending order")
    scenario_version_id: int
    base_plan_id: int | None
    overrides: dict[str, Any] = Field(description="the base overrides every point shares")
    settings: dict[str, Any]
    note: str
    created_by: str
    created_at: dt.datetime
    counts: dict[str, int] = Field(description="points per run state")
    links: dict[str, str]


class SweepOut(SweepItem):
    """A sweep and its curve."""

    model_config = _example({**_SWEEP_ITEM, "points": [_POINT]})
    points: list[SweepPointOut] = Field(description="one per value, in value order")
