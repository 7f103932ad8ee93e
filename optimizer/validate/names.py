"""The bundle contract as the validator reads it: the summary keys, tables, columns, KPIs
and vocabularies a plan bundle must carry (docs/bundle.md).

Written out here rather than imported from `optimizer.plan`, so that the validator stays
independent of the code that writes bundles; kept together in this one file so that they
can be derived from a single declaration of the contract.
"""

from __future__ import annotations

PLAN_STATUSES = ("optimal", "feasible", "fallback", "baseline")
JOB_KINDS = ("training", "finetune", "batch")
WORKLOAD_KINDS = (*JOB_KINDS, "inference")

SUMMARY_KEYS = (
    "status",
    "objective_cny",
    "bound_cny",
    "gap",
    "energy_cost_cny",
    "carbon_cost_cny",
    "migration_cost_cny",
    "grid_mwh",
    "green_mwh",
    "curtailed_mwh",
    "emissions_t",
    "emissions_location_t",
    "green_share",
    "unplaced",
    "baselines",
    "timings_s",
    "model_size",
    "scenario_fingerprint",
)
"""summary.json keys of the contract."""

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "workloads": (
        "workload_id",
        "kind",
        "accelerator",
        "devices",
        "work_device_hours",
        "release",
        "deadline",
        "preemptible",
        "current_site",
        "allowed_sites",
        "status",
        "site_id",
        "reason",
    ),
    "assignments": (
        "workload_id",
        "site_id",
        "accelerator",
        "timestamp",
        "devices",
        "tokens_per_s",
    ),
    "site_hours": (
        "site_id",
        "timestamp",
        "pue",
        "it_mw",
        "facility_mw",
        "grid_limit_mw",
        "green_available_mw",
        "green_used_mw",
        "curtailed_mw",
        "grid_mw",
        "battery_charge_mw",
        "battery_discharge_mw",
        "battery_soc_mwh",
        "grid_price_cny_per_mwh",
        "green_price_cny_per_mwh",
        "carbon_kg_per_mwh",
        "energy_cost_cny",
        "emissions_kg",
    ),
    "site_hour_devices": (
        "site_id",
        "timestamp",
        "accelerator",
        "capacity",
        "busy",
        "busy_kw",
        "idle_kw",
    ),
    "service_hours": (
        "service_id",
        "timestamp",
        "demand_tokens_per_s",
        "served_tokens_per_s",
        "unmet_tokens_per_s",
    ),
    # not in the list, but the only place a flow's demand region is written: the
    # latency limit and the per-region demand balance cannot be audited without it
    "service_flows": ("service_id", "demand_region", "site_id", "timestamp", "tokens_per_s"),
}
"""Required tables and their contract columns (more columns are allowed)."""

NUMERIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "workloads": ("devices", "work_device_hours"),
    "assignments": ("devices",),
    "site_hours": TABLE_COLUMNS["site_hours"][2:],
    "site_hour_devices": ("capacity", "busy", "busy_kw", "idle_kw"),
    "service_hours": TABLE_COLUMNS["service_hours"][2:],
    "service_flows": ("tokens_per_s",),
}

KPI_KEYS = (
    "total_cost_cny",
    "energy_cost_cny",
    "grid_cost_cny",
    "green_cost_cny",
    "carbon_cost_cny",
    "migration_cost_cny",
    "data_transfer_cost_cny",
    "penalty_cny",
    "objective_cny",
    "grid_mwh",
    "green_mwh",
    "curtailed_mwh",
    "facility_mwh",
    "it_mwh",
    "emissions_t",
    "emissions_location_t",
    "green_share",
    "placed",
    "unplaced",
    "unplaced_device_hours",
    "moved_jobs",
    "unmet_mtokens",
    "served_share",
)
"""Plan KPIs the validator recomputes (and the keys a baseline's KPI block must carry).

Written out here rather than imported from `optimizer.plan`: this is the bundle contract as
the checker reads it, so a key the planner stops writing is caught, not silently dropped."""

COUNT_KPIS = ("placed", "unplaced", "moved_jobs")

EXTRA_TABLES = ("binding", "moves")
"""Tables a bundle also holds; only their presence is checked (moves.csv by the job check)."""

SUMMARY_OBJECT_KEYS = ("baselines", "timings_s", "model_size")
"""summary.json keys whose value is a JSON object."""

SUMMARY_NON_NUMERIC_KEYS = (
    "status",
    "baselines",
    "timings_s",
    "model_size",
    "scenario_fingerprint",
    "bound_cny",
    "gap",
)
"""summary.json keys that need not be finite numbers (text, objects; no bound proven: null)."""

JOB_STATUSES = ("placed", "unplaced")
"""workloads.csv `status` of a job."""
