"""approval requests, decisions, the hash-chained audit trail, model routes and LLM limits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "remediation_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("finding", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("resource_kind", sa.String(64), nullable=False),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("environment", sa.String(64), nullable=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("monthly_savings", sa.Numeric(20, 6), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        sa.Column("approvals_given", sa.Integer, nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("supersedes", sa.String(40), nullable=True),
        sa.Column("action_id", sa.String(40), nullable=True, unique=True),
        sa.Column("captured", sa.Text, nullable=True),
        sa.Column("applied", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("executed_at", tz, nullable=True),
        sa.Column("rolled_back_at", tz, nullable=True),
        sa.Column("dry_run", sa.Integer, nullable=False),
        sa.Column("slack_channel", sa.String(64), nullable=True),
        sa.Column("slack_ts", sa.String(32), nullable=True),
    )
    op.create_index("ix_remediation_requests_finding", "remediation_requests", ["finding"])
    op.create_index("ix_remediation_requests_resource", "remediation_requests", ["resource"])
    op.create_index("ix_remediation_requests_team", "remediation_requests", ["team"])
    op.create_index("ix_remediation_requests_status", "remediation_requests", ["status"])
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("remediation_requests.id"), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("decided_at", tz, nullable=False),
        sa.UniqueConstraint("request_id", "actor", name="uq_decision_actor"),
    )
    op.create_index("ix_approval_decisions_request_id", "approval_decisions", ["request_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", tz, nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("request_id", sa.String(40), nullable=True),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    for column in ("at", "event", "actor", "request_id"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "entries": 0, "last_hash": GENESIS}])
    op.create_table(
        "model_routes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("feature", "environment", name="uq_model_route"),
    )
    op.create_table(
        "llm_limits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("rpm", sa.BigInteger, nullable=True),
        sa.Column("max_budget", sa.Numeric(20, 6), nullable=True),
        sa.Column("monthly_tokens", sa.BigInteger, nullable=True),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("subject", "environment", name="uq_llm_limit"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # the trail is append-only for everyone, including the application's own role
        op.execute("""
            CREATE OR REPLACE FUNCTION finops_audit_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION finops_audit_append_only()
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS finops_audit_append_only()")
    for table in ("llm_limits", "model_routes", "audit_head", "audit_log", "approval_decisions"):
        op.drop_table(table)
    op.drop_table("remediation_requests")
