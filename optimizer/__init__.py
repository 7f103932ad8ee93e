"""greenopt's optimizer: a pure library (no HTTP, no database).

`load_scenario` -> `Scenario` -> `optimize` -> `Plan` -> `validate_plan`.
"""

from optimizer.plan import Plan
from optimizer.planner import SolveCancelled, baseline_plan, optimize
from optimizer.scenario import InputValidationError, Problem, Scenario, load_scenario
from optimizer.solve import SolverSettings

__all__ = [
    "InputValidationError",
    "Plan",
    "Problem",
    "Scenario",
    "SolveCancelled",
    "SolverSettings",
    "baseline_plan",
    "load_scenario",
    "optimize",
]
