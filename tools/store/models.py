"""App database tables (SQLAlchemy 2.x typed models). Changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class IngestionRun(Base):
    """One `finops ingest` invocation (a delivery of one or more files of one kind and source)."""

    __tablename__ = "ingestion_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # focus | openai-usage | openai-costs | ...
    source: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    files: Mapped[int] = mapped_column(Integer, default=0)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class IngestedFile(Base):
    """The ingestion ledger: which file (by checksum) landed in which partitions, with row counts."""

    __tablename__ = "ingested_files"
    __table_args__ = (Index("ix_ingested_files_lookup", "kind", "source", "checksum"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("ingestion_runs.id"))
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    billing_periods: Mapped[str] = mapped_column(Text, default="")  # comma-separated YYYY-MM
    partitions: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of partition paths
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    rejects_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | superseded
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LakePartition(Base):
    """One Parquet partition of the cost lake and the run that last wrote it."""

    __tablename__ = "lake_partitions"
    __table_args__ = (
        UniqueConstraint("kind", "source", "billing_period", "account", name="uq_lake_partition"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # cost | usage
    source: Mapped[str] = mapped_column(String(128))
    billing_period: Mapped[str] = mapped_column(String(7))
    account: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[str] = mapped_column(ForeignKey("ingestion_runs.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FindingRow(Base):
    """A finding as an owner sees it: one row per fingerprint, updated by every scan that sees it again."""

    __tablename__ = "findings"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # waste | anomaly | budget | token-budget | governance
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open|notified|snoozed|resolved|suppressed
    severity: Mapped[str] = mapped_column(String(8))
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    resource_kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account: Mapped[str | None] = mapped_column(String(256), nullable=True)
    scope: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of dimensions
    team: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    owner_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    monthly_impact: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    currency: Mapped[str] = mapped_column(String(3))
    evidence: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    proposed_action: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action_params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    recommendation: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FindingFeedback(Base):
    """What a person said about a finding (expected / not waste / snooze), kept as history."""

    __tablename__ = "finding_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(ForeignKey("findings.fingerprint"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))  # expected | not-waste | snooze | reopen
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertState(Base):
    """Alerts that have fired, so each (budget, period, threshold) fires once whatever the re-scans."""

    __tablename__ = "alert_state"
    __table_args__ = (UniqueConstraint("alert_key", name="uq_alert_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_key: Mapped[str] = mapped_column(String(256))
    fingerprint: Mapped[str] = mapped_column(String(64))
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RemediationRequest(Base):
    """A proposed fix waiting for, or carrying, its approvals; the plan it is bound to; its execution.

    Status moves only through ``approvals.machine`` and only by conditional UPDATEs (``approvals.store``),
    so that one caller, never two, moves a request out of a state.
    """

    __tablename__ = "remediation_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="remediation")  # remediation | rollback
    finding: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)  # JSON
    resource: Mapped[str] = mapped_column(Text, index=True)
    resource_kind: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    environment: Mapped[str | None] = mapped_column(String(64), nullable=True)
    plan: Mapped[str] = mapped_column(Text)  # canonical JSON of the plan
    plan_hash: Mapped[str] = mapped_column(String(64))
    monthly_savings: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), index=True)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    approvals_given: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    supersedes: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    captured: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: state saved to undo
    applied: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: facts from the change
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: verification, errors
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rolled_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dry_run: Mapped[int] = mapped_column(Integer, default=0)
    slack_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slack_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ApprovalDecision(Base):
    """One person's decision on a request; a person decides a request at most once."""

    __tablename__ = "approval_decisions"
    __table_args__ = (UniqueConstraint("request_id", "actor", name="uq_decision_actor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("remediation_requests.id"), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject | rollback
    channel: Mapped[str] = mapped_column(String(16))  # cli | slack | api
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan_hash: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """The append-only, hash-chained audit trail. Never updated or deleted (a PostgreSQL trigger refuses)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    event: Mapped[str] = mapped_column(String(48), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the number of entries and the last hash. Appends lock it first, so entries chain in order
    on every backend; truncating the trail without it is detected by ``audit verify``."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class ModelRoute(Base):
    """The model-routing policy the product keeps: which model a feature uses in an environment."""

    __tablename__ = "model_routes"
    __table_args__ = (UniqueConstraint("feature", "environment", name="uq_model_route"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feature: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(64))  # "*" = every environment
    model: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class LlmLimit(Base):
    """A team's or project's rate limit or token budget per environment, kept by the product and exported
    to the LLM gateway (LiteLLM)."""

    __tablename__ = "llm_limits"
    __table_args__ = (UniqueConstraint("subject", "environment", name="uq_llm_limit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(160))  # "team:search" or "project:support-bot"
    environment: Mapped[str] = mapped_column(String(64))  # "*" = every environment
    tpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rpm: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 6), nullable=True)
    monthly_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


#: the kinds of ``slack_messages`` rows that notify an owner of a finding (one row per finding and episode)
OUTREACH_KINDS = ("finding", "digest")
_OUTREACH_ROWS = "kind IN ('finding', 'digest')"


class SlackMessage(Base):
    """A message the Slack app sent, one row per finding (or request) it shows: a digest that lists five
    findings is five rows with the same ``channel`` / ``ts``. The handlers find what a clicked message
    shows by (channel, ts) and update it with chat.update.

    Outreach claims a finding by inserting its row in status ``sending`` before calling Slack; the unique
    index on (finding, episode) of the outreach kinds decides between concurrent runs, so a finding is
    notified once per episode. ``episode`` starts at 1 and grows only when a finding that was notified is
    open again (it was resolved, snoozed or reopened since): see ``agent.slack.store``.
    """

    __tablename__ = "slack_messages"
    __table_args__ = (
        Index("ix_slack_messages_channel_ts", "channel", "ts"),
        Index(
            "uq_slack_messages_finding_episode",
            "finding",
            "episode",
            unique=True,
            sqlite_where=text(_OUTREACH_ROWS),
            postgresql_where=text(_OUTREACH_ROWS),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # finding | digest
    finding: Mapped[str | None] = mapped_column(ForeignKey("findings.fingerprint"), nullable=True)
    episode: Mapped[int] = mapped_column(Integer, default=1)
    request_id: Mapped[str | None] = mapped_column(
        ForeignKey("remediation_requests.id"), nullable=True, index=True
    )
    team: Mapped[str | None] = mapped_column(String(128), nullable=True)
    recipient: Mapped[str] = mapped_column(String(128))  # the user id or channel it was addressed to
    resolved_by: Mapped[str] = mapped_column(String(16))  # config | email | team-channel | finops-channel
    channel: Mapped[str | None] = mapped_column(
        String(64), nullable=True
    )  # the id Slack returned (D.../C...)
    ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    thread_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    interrupt_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # sending | sent | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobLease(Base):
    """Who runs the scheduled jobs: one row per lease name, held by one ``finops serve`` replica until it
    expires; renewed by the holder, taken over by another replica once expired."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(160))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobRun(Base):
    """One run of a scheduled job for one period (``2024-09``, ``2024-09-21``, ``2024-W38`` ...): claimed by
    inserting the row, so a retry, a second replica or a takeover never runs (or alerts) twice."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period", name="uq_job_run_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    holder: Mapped[str] = mapped_column(String(160))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON


class PriceSnapshot(Base):
    """The last price seen for a model and token kind (per 1M tokens), to notice when it changes."""

    __tablename__ = "price_snapshots"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # input | output | cache_read ...
    price: Mapped[Decimal] = mapped_column(Numeric(20, 10))
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(128))  # "genai-prices 0.0.x" | "config override"
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PriceChange(Base):
    """A model price that changed (a newer genai-prices snapshot or a config override)."""

    __tablename__ = "price_changes"
    __table_args__ = (
        UniqueConstraint("provider", "model", "kind", "effective_from", "source", name="uq_price_change"),
        Index("ix_price_changes_model", "provider", "model"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(32))
    old_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 10), nullable=True)
    new_price: Mapped[Decimal | None] = mapped_column(Numeric(20, 10), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(128))
    effective_from: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AiService(Base):
    """The governance intake register: an AI service / feature someone registered, with its owner, use
    case, environment, models and estimated monthly spend. Usage of an unregistered feature is a finding."""

    __tablename__ = "ai_services"
    __table_args__ = (UniqueConstraint("feature", "environment", name="uq_ai_service_feature_env"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    feature: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column(String(64))
    team: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(160))
    use_case: Mapped[str] = mapped_column(Text)
    models: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    est_monthly_spend: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # registered | retired
    registered_by: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))  # cli | slack
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
