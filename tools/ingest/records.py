"""Normalised records produced by the LLM usage and cost parsers, before allocation and storage.

Parsers are pure: they read one file and yield ``UsageRecord``/``BillingRecord`` objects, or
``Rejected`` for an input row that cannot be read. The ingestion service decides whether a rejected
row aborts the file (default) or is written to a rejects file (``--skip-bad-rows``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tools.errors import Location

#: Canonical provider ids: OpenTelemetry ``gen_ai.provider.name`` well-known values.
OPENAI = "openai"
ANTHROPIC = "anthropic"
AWS_BEDROCK = "aws.bedrock"
AZURE_OPENAI = "azure.ai.openai"
GCP_VERTEX_AI = "gcp.vertex_ai"

TaskStatus = Literal["completed", "failed"]


@dataclass(frozen=True)
class TokenCounts:
    """The five normalised token kinds. They never overlap, so their sum is the total token count.

    ``input_uncached`` excludes cache reads and cache writes; ``output`` excludes ``reasoning``.
    ``cache_write_1h`` is the part of ``cache_write`` written with a one-hour TTL (priced higher).
    """

    input_uncached: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    cache_write_1h: int = 0

    def __post_init__(self) -> None:
        for name in ("input_uncached", "cache_read", "cache_write", "output", "reasoning", "cache_write_1h"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cache_write_1h > self.cache_write:
            raise ValueError("cache_write_1h is part of cache_write and cannot exceed it")

    @property
    def total_input(self) -> int:
        return self.input_uncached + self.cache_read + self.cache_write

    @property
    def total_output(self) -> int:
        return self.output + self.reasoning

    @property
    def total(self) -> int:
        return self.total_input + self.total_output


@dataclass(frozen=True)
class UsageRecord:
    """One LLM usage observation (an API usage bucket, a span, a gateway log line)."""

    record_key: str  # natural key within its source format; re-ingesting the same key replaces it
    source_format: str  # openai-usage | anthropic-usage | otel | litellm
    start: datetime  # timezone-aware UTC
    provider: str  # canonical provider id, see constants above
    model: str | None
    tokens: TokenCounts
    requests: int = 1
    end: datetime | None = None
    operation: str | None = None  # chat, embeddings, text_completion, ...
    batch: bool = False
    service_tier: str | None = None
    reported_cost: Decimal | None = None  # a cost the source itself states (LiteLLM spend, gen_ai.usage.cost)
    currency: str = "USD"
    task_id: str | None = None
    task_status: TaskStatus | None = None
    #: how many real requests this record stands for (OTel probability sampling); tokens, requests and
    #: reported cost are already multiplied by it
    adjusted_count: int = 1
    #: raw labels the taxonomy resolves into team/project/feature/...: tags, span attributes,
    #: project_id, api_key_id, user, workspace_id ... (string values only)
    attributes: Mapping[str, str] = field(default_factory=dict)
    location: Location | None = None


@dataclass(frozen=True)
class BillingRecord:
    """One charged amount from a provider's billing API (OpenAI costs API, Anthropic cost report)."""

    record_key: str
    source_format: str  # openai-costs | anthropic-costs
    start: datetime
    end: datetime
    provider: str
    amount: Decimal
    currency: str
    line_item: str | None = None
    model: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    location: Location | None = None


@dataclass(frozen=True)
class Rejected:
    """An input row that could not be read, with the reason."""

    location: Location
    reason: str
    expected: str | None = None


UsageStream = Iterator[UsageRecord | Rejected]
BillingStream = Iterator[BillingRecord | Rejected]
