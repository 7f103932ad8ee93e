"""The bundle contract as the validator reads it: the summary keys, tables, columns, KPIs
and vocabularies a plan bundle must carry (docs/bundle.md).

Only NAMES come from `optimizer/contract.py`, the one declaration of the bundle (it imports
nothing of the planner): which tables, columns, keys and statuses to expect. Every value
under these names is recomputed by the validator from the scenario, never taken from the
planner's code.
"""

from __future__ import annotations

import optimizer.contract as contract

PLAN_STATUSES = contract.PLAN_STATUSES
JOB_KINDS = contract.JOB_KINDS
WORKLOAD_KINDS = contract.WORKLOAD_KINDS

SUMMARY_KEYS = contract.SUMMARY_KEYS
"""summary.json keys of the contract."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: t.contract_columns for t in contract.TABLES if t.status == "contract"
}
"""Required tables and their contract columns (more columns are allowed)."""

NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    t.name: t.numeric_columns for t in contract.TABLES if t.status == "contract"
}

KPI_KEYS = contract.KPI_KEYS
"""Plan KPIs the validator recomputes (and the keys a baseline's KPI block must carry)."""

COUNT_KPIS = contract.COUNT_KPIS

EXTRA_TABLES = tuple(t.name for t in contract.TABLES if t.status != "contract")
"""Tables a bundle also holds; only their presence is checked (moves.csv by the job check)."""

SUMMARY_OBJECT_KEYS = ("baselines", "timings_s", "model_size")
"""summary.json keys whose value is a JSON object."""

SUMMARY_NON_NUMERIC_KEYS = (
    *SUMMARY_OBJECT_KEYS,
    "status",
    "scenario_fingerprint",
    "currency",
    "bound",
    "gap",
)
"""summary.json keys that need not be finite numbers (text, objects; no bound proven: null)."""

JOB_STATUSES = contract.JOB_STATUSES
"""workloads.csv `status` of a job: `on_track` for a job due after the horizon that runs its
in-horizon share, `placed` for one done within it."""
