"""findings, feedback and alert state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("resource_kind", sa.String(64), nullable=True),
        sa.Column("account", sa.String(256), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("owner_reason", sa.Text, nullable=True),
        sa.Column("monthly_impact", sa.Numeric(20, 6), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("proposed_action", sa.String(64), nullable=True),
        sa.Column("action_params", sa.Text, nullable=False),
        sa.Column("recommendation", sa.Text, nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("times_seen", sa.Integer, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_findings_rule_id", "findings", ["rule_id"])
    op.create_index("ix_findings_status", "findings", ["status"])
    op.create_index("ix_findings_team", "findings", ["team"])
    op.create_table(
        "finding_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), sa.ForeignKey("findings.fingerprint"), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_finding_feedback_fingerprint", "finding_feedback", ["fingerprint"])
    op.create_table(
        "alert_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_key", sa.String(256), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("alert_key", name="uq_alert_key"),
    )


def downgrade() -> None:
    op.drop_table("alert_state")
    op.drop_index("ix_finding_feedback_fingerprint", table_name="finding_feedback")
    op.drop_table("finding_feedback")
    op.drop_index("ix_findings_team", table_name="findings")
    op.drop_index("ix_findings_status", table_name="findings")
    op.drop_index("ix_findings_rule_id", table_name="findings")
    op.drop_table("findings")
