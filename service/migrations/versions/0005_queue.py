"""The workload queue: jobs and services submitted over the API, with reported progress.

`queue_items` has a row per (kind, id): the spec as the scenario table row it becomes, the
state (`active`, `cancelled`), a revision counted up on every change, and a job's reported
progress (device-hours done, the site it runs on now).

Revision ID: 0005_queue
Revises: 0004_instances
Create Date: 2026-12-05 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_queue"
down_revision: str | None = "0004_instances"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_items",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("workload_id", sa.String(length=200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("done_device_hours", sa.Float(), nullable=False),
        sa.Column("current_site", sa.String(length=200), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint("kind IN ('job', 'service')", name=op.f("ck_queue_items_kind")),
        sa.CheckConstraint("state IN ('active', 'cancelled')", name=op.f("ck_queue_items_state")),
        sa.PrimaryKeyConstraint("kind", "workload_id", name=op.f("pk_queue_items")),
    )


def downgrade() -> None:
    op.drop_table("queue_items")
