"""continuous operation: the scheduler's lease, job runs (idempotent per job and period), model price
snapshots and changes, the governance intake register

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(160), nullable=False),
        sa.Column("acquired_at", tz, nullable=False),
        sa.Column("renewed_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=False),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(160), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("finished_at", tz, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("job", "period", name="uq_job_run_period"),
    )
    op.create_table(
        "price_snapshots",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("price", sa.Numeric(20, 10), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("seen_at", tz, nullable=False),
    )
    op.create_table(
        "price_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(160), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("old_price", sa.Numeric(20, 10), nullable=True),
        sa.Column("new_price", sa.Numeric(20, 10), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("recorded_at", tz, nullable=False),
        sa.UniqueConstraint("provider", "model", "kind", "effective_from", "source", name="uq_price_change"),
    )
    op.create_index("ix_price_changes_model", "price_changes", ["provider", "model"])
    op.create_table(
        "ai_services",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.Column("use_case", sa.Text, nullable=False),
        sa.Column("models", sa.Text, nullable=False, server_default="[]"),
        sa.Column("est_monthly_spend", sa.Numeric(20, 6), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_by", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("registered_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("feature", "environment", name="uq_ai_service_feature_env"),
    )


def downgrade() -> None:
    op.drop_table("ai_services")
    op.drop_index("ix_price_changes_model", table_name="price_changes")
    op.drop_table("price_changes")
    op.drop_table("price_snapshots")
    op.drop_table("job_runs")
    op.drop_table("job_leases")
