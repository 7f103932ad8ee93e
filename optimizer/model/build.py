"""Assemble the model from its modules in a fixed order (GridPath-style module list).

Adding a family of constraints is one new module with `add_to_model(m, d)` and one line
here. Order matters only for shared sums: a module registering terms (device use, power
balance) comes before the module that builds the row summing them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from optimizer.model import (
    battery,
    capacity,
    churn,
    energy,
    inference,
    jobs,
    migration,
    objective,
    policy,
    power,
    robust,
)
from optimizer.model.core import LinearModel
from optimizer.model.sets import ModelData, build_sets
from optimizer.scenario.types import Scenario

MODULES: tuple[ModuleType, ...] = (
    jobs,  # registers device_use
    migration,
    inference,  # registers device_use
    churn,  # prices starts of inference devices and job pauses
    capacity,  # sums device_use
    power,  # registers power_balance (facility)
    battery,  # registers power_balance (charge, discharge)
    energy,  # sums power_balance; energy and carbon cost
    robust,  # headroom for green at its low quantile (robust mode only)
    policy,
    objective,
)


def build_model(sc: Scenario, *, tight: bool = True, **sets: Any) -> tuple[LinearModel, ModelData]:
    """The linear model of `sc` (backend-neutral sparse blocks) and its index sets.

    `sets` go to `build_sets`: a subset of job options, services merged into classes, or a
    fixed job plan.
    """
    d = build_sets(sc, tight=tight, **sets)
    return build_from_sets(d), d


def build_from_sets(d: ModelData) -> LinearModel:
    m = LinearModel()
    for module in MODULES:
        module.add_to_model(m, d)
    return m
