"""Nightly re-optimisation: run-now rows beside the nights, outcomes, scheduler liveness.

`nightly_runs.night` becomes nullable (a run-now has no night, and NULLs do not collide
under the UNIQUE constraint, so it never blocks the night); each row records its trigger,
the fire time it stands for, the plan it kept and the plan it made, who ran it and when it
ended. `schedule` records when a scheduler process was last seen.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nightly_runs", schema=None) as batch_op:
        batch_op.alter_column("night", existing_type=sa.Date(), nullable=True)
        batch_op.add_column(
            sa.Column("trigger", sa.String(length=16), nullable=False, server_default="schedule")
        )
        batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("previous_plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("created_by", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_nightly_runs_previous_plan_id_plans"),
            "plans",
            ["previous_plan_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_nightly_runs_plan_id_plans"), "plans", ["plan_id"], ["id"]
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_nightly_runs_state"), "state IN ('running', 'succeeded', 'failed')"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_nightly_runs_trigger"), "trigger IN ('schedule', 'manual')"
        )

    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheduler_seen_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("scheduler_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("schedule", schema=None) as batch_op:
        batch_op.drop_column("scheduler_id")
        batch_op.drop_column("scheduler_seen_at")

    # rows of run-now (no night) cannot survive a NOT NULL night
    op.execute("DELETE FROM nightly_runs WHERE night IS NULL")
    with op.batch_alter_table("nightly_runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_nightly_runs_trigger"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_nightly_runs_state"), type_="check")
        batch_op.drop_constraint(batch_op.f("fk_nightly_runs_plan_id_plans"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_nightly_runs_previous_plan_id_plans"), type_="foreignkey"
        )
        batch_op.drop_column("finished_at")
        batch_op.drop_column("created_by")
        batch_op.drop_column("plan_id")
        batch_op.drop_column("previous_plan_id")
        batch_op.drop_column("scheduled_for")
        batch_op.drop_column("trigger")
        batch_op.alter_column("night", existing_type=sa.Date(), nullable=False)
