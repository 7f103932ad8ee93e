"""The base of a what-if: the scenario version it changes and the plan it is compared with
and warm-started from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service import plans, scenarios
from service.errors import Conflict, InvalidInput, request_problem
from service.models import ScenarioVersion
from service.repo import sweeps as repo


@dataclass(frozen=True)
class Base:
    """What a what-if starts from: the scenario version it changes and the plan it is
    compared with and warm-started from (None: no plan of that version to compare with)."""

    version: ScenarioVersion
    plan_id: int | None


def resolve_base(
    session: Session, *, scenario_version_id: int | None, base_plan_id: int | None
) -> Base:
    """The base of a what-if: a given plan, a given scenario version (compared with the
    active plan if it is of that version, else with the version's newest plain plan), or by
    default the active plan."""
    if scenario_version_id is not None and base_plan_id is not None:
        raise InvalidInput(
            "give scenario_version_id or base_plan_id, not both",
            problems=[
                request_problem(
                    "base_plan_id",
                    "cannot be given with scenario_version_id: the version is the base plan's",
                )
            ],
        )
    if base_plan_id is not None:
        plan = plans.get_plan(session, base_plan_id)
        return Base(scenarios.get_version(session, plan.scenario_version_id), plan.id)
    active_id = plans.active_plan_id(session)
    if scenario_version_id is not None:
        version = scenarios.get_version(session, scenario_version_id)
        if (
            active_id is not None
            and plans.get_plan(session, active_id).scenario_version_id == version.id
        ):
            return Base(version, active_id)
        plain = repo.newest_plain_plan(session, version.id)
        return Base(version, plain.id if plain is not None else None)
    if active_id is None:
        raise Conflict(
            "no plan is active to ask a what-if of: activate one (POST /runs "
            '{"activate": true}), or name scenario_version_id or base_plan_id'
        )
    plan = plans.get_plan(session, active_id)
    return Base(scenarios.get_version(session, plan.scenario_version_id), plan.id)
