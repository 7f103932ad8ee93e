"""Scenario: the optimizer's validated input, its directory format and its loader."""

from optimizer.scenario.load import (
    fingerprint,
    load_scenario,
    read_scenario_dir,
    scenario_from_tables,
    scenario_to_tables,
    write_scenario,
)
from optimizer.scenario.types import (
    Accelerator,
    Battery,
    InputValidationError,
    Job,
    Policy,
    Problem,
    Scenario,
    Service,
    Site,
    run_hours_needed,
)

__all__ = [
    "Accelerator",
    "Battery",
    "InputValidationError",
    "Job",
    "Policy",
    "Problem",
    "Scenario",
    "Service",
    "Site",
    "fingerprint",
    "load_scenario",
    "read_scenario_dir",
    "run_hours_needed",
    "scenario_from_tables",
    "scenario_to_tables",
    "write_scenario",
]
