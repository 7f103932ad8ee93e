"""Initial schema: every table of docs/service.md.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 01:13:22.177337
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Long on purpose: a migration is a frozen snapshot of the tables it creates, one
# create_table per table, never edited after it has run anywhere.
def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'planner', 'admin')", name=op.f("ck_api_keys_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
        sa.UniqueConstraint("sha256", name=op.f("uq_api_keys_sha256")),
    )
    op.create_table(
        "scenario_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_scenario_blobs")),
    )
    op.create_table(
        "scenario_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["scenario_versions.id"],
            name=op.f("fk_scenario_versions_parent_id_scenario_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenario_versions")),
        sa.UniqueConstraint("parent_id", name=op.f("uq_scenario_versions_parent_id")),
    )
    with op.batch_alter_table("scenario_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scenario_versions_fingerprint"), ["fingerprint"], unique=False
        )

    op.create_table(
        "schedule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("time_limit_s", sa.Float(), nullable=False),
        sa.Column("stability_weight", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_schedule_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule")),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("planner", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scenario_version_id", sa.Integer(), nullable=False),
        sa.Column("scenario_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("objective_cny", sa.Float(), nullable=True),
        sa.Column("bound_cny", sa.Float(), nullable=True),
        sa.Column("gap", sa.Float(), nullable=True),
        sa.Column("total_cost_cny", sa.Float(), nullable=True),
        sa.Column("emissions_t", sa.Float(), nullable=True),
        sa.Column("emissions_location_t", sa.Float(), nullable=True),
        sa.Column("green_share", sa.Float(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("bundle_sha256", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scenario_version_id"],
            ["scenario_versions.id"],
            name=op.f("fk_plans_scenario_version_id_scenario_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("run_id", name=op.f("uq_plans_run_id")),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_plans_scenario_fingerprint"), ["scenario_fingerprint"], unique=False
        )

    op.create_table(
        "active_plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_active_plan_single_row")),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_active_plan_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_active_plan")),
    )
    op.create_table(
        "plan_artifacts",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_artifacts_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "name", name=op.f("pk_plan_artifacts")),
    )
    op.create_table(
        "plan_assignments",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("workload_id", sa.String(length=200), nullable=False),
        sa.Column("site_id", sa.String(length=200), nullable=False),
        sa.Column("accelerator", sa.String(length=100), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_assignments_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "seq", name=op.f("pk_plan_assignments")),
    )
    with op.batch_alter_table("plan_assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_plan_assignments_site", ["plan_id", "site_id", "seq"], unique=False
        )
        batch_op.create_index(
            "ix_plan_assignments_workload", ["plan_id", "workload_id", "seq"], unique=False
        )

    op.create_table(
        "plan_site_hours",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("pue", sa.Float(), nullable=True),
        sa.Column("it_mw", sa.Float(), nullable=True),
        sa.Column("facility_mw", sa.Float(), nullable=True),
        sa.Column("grid_limit_mw", sa.Float(), nullable=True),
        sa.Column("green_available_mw", sa.Float(), nullable=True),
        sa.Column("green_used_mw", sa.Float(), nullable=True),
        sa.Column("curtailed_mw", sa.Float(), nullable=True),
        sa.Column("grid_mw", sa.Float(), nullable=True),
        sa.Column("battery_charge_mw", sa.Float(), nullable=True),
        sa.Column("battery_discharge_mw", sa.Float(), nullable=True),
        sa.Column("battery_soc_mwh", sa.Float(), nullable=True),
        sa.Column("grid_price_cny_per_mwh", sa.Float(), nullable=True),
        sa.Column("green_price_cny_per_mwh", sa.Float(), nullable=True),
        sa.Column("carbon_kg_per_mwh", sa.Float(), nullable=True),
        sa.Column("energy_cost_cny", sa.Float(), nullable=True),
        sa.Column("emissions_kg", sa.Float(), nullable=True),
        sa.Column("emissions_location_kg", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_site_hours_plan_id_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "seq", name=op.f("pk_plan_site_hours")),
    )
    with op.batch_alter_table("plan_site_hours", schema=None) as batch_op:
        batch_op.create_index(
            "ix_plan_site_hours_site", ["plan_id", "site_id", "seq"], unique=False
        )

    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("scenario_version_id", sa.Integer(), nullable=False),
        sa.Column("base_plan_id", sa.Integer(), nullable=True),
        sa.Column("parameter", sa.String(length=100), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["base_plan_id"], ["plans.id"], name=op.f("fk_sweeps_base_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["scenario_version_id"],
            ["scenario_versions.id"],
            name=op.f("fk_sweeps_scenario_version_id_scenario_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("scenario_version_id", sa.Integer(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("warm_start_plan_id", sa.Integer(), nullable=True),
        sa.Column("activate_on_success", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_detail", sa.JSON(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=True),
        sa.Column("sweep_id", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('run', 'whatif', 'sweep_point', 'nightly')", name=op.f("ck_runs_kind")
        ),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled')",
            name=op.f("ck_runs_state"),
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_runs_plan_id_plans")),
        sa.ForeignKeyConstraint(
            ["scenario_version_id"],
            ["scenario_versions.id"],
            name=op.f("fk_runs_scenario_version_id_scenario_versions"),
        ),
        sa.ForeignKeyConstraint(["sweep_id"], ["sweeps.id"], name=op.f("fk_runs_sweep_id_sweeps")),
        sa.ForeignKeyConstraint(
            ["warm_start_plan_id"], ["plans.id"], name=op.f("fk_runs_warm_start_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_runs_idempotency_key")),
    )
    # plans and runs refer to each other: the plans -> runs key is added once both exist
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f("fk_plans_run_id_runs"), "runs", ["run_id"], ["id"])

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_kind_id", ["kind", "id"], unique=False)
        batch_op.create_index("ix_runs_state_priority", ["state", "priority", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_sweep_id"), ["sweep_id"], unique=False)

    op.create_table(
        "nightly_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_nightly_runs_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nightly_runs")),
        sa.UniqueConstraint("night", name=op.f("uq_nightly_runs_night")),
    )
    op.create_table(
        "plan_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("previous_plan_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_activations_plan_id_plans")
        ),
        sa.ForeignKeyConstraint(
            ["previous_plan_id"],
            ["plans.id"],
            name=op.f("fk_plan_activations_previous_plan_id_plans"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_plan_activations_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_activations")),
    )
    with op.batch_alter_table("plan_activations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_activations_plan_id"), ["plan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_activations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_activations_plan_id"))

    op.drop_table("plan_activations")
    op.drop_table("nightly_runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_sweep_id"))
        batch_op.drop_index("ix_runs_state_priority")
        batch_op.drop_index("ix_runs_kind_id")

    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_plans_run_id_runs"), type_="foreignkey")

    op.drop_table("runs")
    op.drop_table("sweeps")
    with op.batch_alter_table("plan_site_hours", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_site_hours_site")

    op.drop_table("plan_site_hours")
    with op.batch_alter_table("plan_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_assignments_workload")
        batch_op.drop_index("ix_plan_assignments_site")

    op.drop_table("plan_assignments")
    op.drop_table("plan_artifacts")
    op.drop_table("active_plan")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plans_scenario_fingerprint"))

    op.drop_table("plans")
    op.drop_table("schedule")
    with op.batch_alter_table("scenario_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scenario_versions_fingerprint"))

    op.drop_table("scenario_versions")
    op.drop_table("scenario_blobs")
    op.drop_table("api_keys")
