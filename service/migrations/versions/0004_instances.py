"""Service instances and their heartbeats; runs record the instance that runs them.

`instances` has a row per running `greenopt serve` / `greenopt scheduler` process (its
heartbeat, and whether it runs the nightly scheduler); `runs.instance_id` names the
instance whose solver pool runs the run, so a second instance starting on the same database
leaves a live instance's runs alone.

Revision ID: 0004_instances
Revises: 0003_key_expiry
Create Date: 2026-12-05 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_instances"
down_revision: str | None = "0003_key_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holds_scheduler", sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('api', 'scheduler')", name=op.f("ck_instances_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("instance_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("instance_id")
    op.drop_table("instances")
