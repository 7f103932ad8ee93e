"""The independent validator: recompute every limit and every total of a plan from its
bundle tables and the scenario, and report every violation at once.

It shares no code with what produced the plan (not `optimizer.model`, `optimizer.rules`,
`optimizer.baselines`, `optimizer.heuristics`, `optimizer.planner` nor `optimizer.plan`;
`tests/test_validate.py` checks the imports): the job rules documented in
`optimizer/rules.py` and the bundle contract in docs/bundle.md are re-derived here from the
`Scenario`'s raw fields. It reads only the tables a bundle holds (as a `Plan` carries them,
or as read back from CSV) and maps timestamps to hours from their ISO strings, so it audits
a bundle on disk and a freshly assembled plan alike.

One module per check family, run in the order of `run.MODULES`: `bundle` (format), `jobs`,
`services` (inference), `capacity`, `power`, `policy`, `totals`; `state` holds the checker
they share, `names` the contract's names, `report` what a run reports.
"""

from optimizer.validate.names import (
    COUNT_KPIS,
    JOB_KINDS,
    KPI_KEYS,
    NUMERIC_COLUMNS,
    PLAN_STATUSES,
    SUMMARY_KEYS,
    TABLE_COLUMNS,
    WORKLOAD_KINDS,
)
from optimizer.validate.report import CHECKS, PlanValidationError, ValidationReport, Violation
from optimizer.validate.run import MODULES, validate_bundle, validate_plan
from optimizer.validate.state import WHOLE_TOL, Checker, PlanTables, work_in_horizon

__all__ = [
    "CHECKS",
    "COUNT_KPIS",
    "JOB_KINDS",
    "KPI_KEYS",
    "MODULES",
    "NUMERIC_COLUMNS",
    "PLAN_STATUSES",
    "SUMMARY_KEYS",
    "TABLE_COLUMNS",
    "WHOLE_TOL",
    "WORKLOAD_KINDS",
    "Checker",
    "PlanTables",
    "PlanValidationError",
    "ValidationReport",
    "Violation",
    "validate_bundle",
    "validate_plan",
    "work_in_horizon",
]
