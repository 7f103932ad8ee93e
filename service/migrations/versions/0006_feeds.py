"""Forecast feeds: `feed_series` keeps every hourly series a feed delivered (uploaded,
dropped in the watched folder, pulled over HTTP) with its provenance: provider, issue time,
the window it covers and how far ahead of its issue that reaches (horizon), where it was
read (`channel`: upload, folder, http) and by whom. `scenario_versions.feeds` holds, for a window a night built from the
feeds, which provider gave each series and the fall backs it had to make.

Revision ID: 0006_feeds
Revises: 0005_queue
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_feeds"
down_revision: str | None = "0005_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=400), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("horizon_h", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("quantiles", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "channel IN ('upload', 'folder', 'http')", name=op.f("ck_feed_series_channel")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_series")),
    )
    op.create_index(
        "ix_feed_series_lookup", "feed_series", ["series", "entity", "provider", "issued_at"]
    )
    op.create_index(op.f("ix_feed_series_source_sha256"), "feed_series", ["source_sha256"])
    op.add_column("scenario_versions", sa.Column("feeds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scenario_versions") as batch:
        batch.drop_column("feeds")
    op.drop_index(op.f("ix_feed_series_source_sha256"), table_name="feed_series")
    op.drop_index("ix_feed_series_lookup", table_name="feed_series")
    op.drop_table("feed_series")
