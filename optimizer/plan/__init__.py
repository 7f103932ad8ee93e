"""The optimizer's output: a plan as plain tables, its KPIs, its explanations and the plan
bundle (the audited contract: summary.json plus CSV tables, see docs/bundle.md).

Every planner (the MILP, the greedy and the carbon-agnostic baselines) produces a
`Schedule`; `assemble_plan` turns any schedule into the same tables and KPIs, so the plans
are compared on equal terms. The modules: `contract` (every name of the bundle, declared
once), `types`, `assemble`, `kpis`, `explain`, `bundle` (on disk), `warm` (warm start).
"""

from optimizer.contract import BUNDLE_TABLES, KPI_KEYS, Kpis
from optimizer.plan.assemble import assemble_plan, busy_devices, facility_mw, job_hour_matrix
from optimizer.plan.explain import binding_limits, job_mw, moved_jobs, unplaced_reason
from optimizer.plan.kpis import policy_violations
from optimizer.plan.types import Plan, Schedule
from optimizer.plan.warm import schedule_from_plan

__all__ = [
    "BUNDLE_TABLES",
    "KPI_KEYS",
    "Kpis",
    "Plan",
    "Schedule",
    "assemble_plan",
    "binding_limits",
    "busy_devices",
    "facility_mw",
    "job_hour_matrix",
    "job_mw",
    "moved_jobs",
    "policy_violations",
    "schedule_from_plan",
    "unplaced_reason",
]
