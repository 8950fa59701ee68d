"""slack messages the app sent (owner outreach), found again by (channel, ts) after a click

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: outreach rows (one per finding and episode); other kinds may show a finding more than once
OUTREACH_ROWS = "kind IN ('finding', 'digest')"


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "slack_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("finding", sa.String(64), sa.ForeignKey("findings.fingerprint"), nullable=True),
        sa.Column("episode", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(40), sa.ForeignKey("remediation_requests.id"), nullable=True),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("recipient", sa.String(128), nullable=False),
        sa.Column("resolved_by", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("ts", sa.String(32), nullable=True),
        sa.Column("thread_ts", sa.String(32), nullable=True),
        sa.Column("interrupt_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
    )
    op.create_index("ix_slack_messages_channel_ts", "slack_messages", ["channel", "ts"])
    op.create_index("ix_slack_messages_request_id", "slack_messages", ["request_id"])
    # one notification per finding and episode: concurrent outreach runs insert the same key, one wins
    op.create_index(
        "uq_slack_messages_finding_episode",
        "slack_messages",
        ["finding", "episode"],
        unique=True,
        sqlite_where=sa.text(OUTREACH_ROWS),
        postgresql_where=sa.text(OUTREACH_ROWS),
    )


def downgrade() -> None:
    op.drop_index("uq_slack_messages_finding_episode", table_name="slack_messages")
    op.drop_index("ix_slack_messages_request_id", table_name="slack_messages")
    op.drop_index("ix_slack_messages_channel_ts", table_name="slack_messages")
    op.drop_table("slack_messages")
