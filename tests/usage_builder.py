"""Builds usage and provider-billing records for tests and feeds them through the real ingestion service."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.ingest.records import BillingRecord, TokenCounts, UsageRecord
from tools.ingest.service import Ingestor, IngestReport

_counter = itertools.count()


def usage(
    day: str = "2024-09-01",
    *,
    provider: str = "openai",
    model: str | None = "gpt-4o",
    input_tokens: int = 1000,
    output: int = 100,
    cache_read: int = 0,
    requests: int = 1,
    cost: str | None = None,
    task: str | None = None,
    status: str | None = None,
    key: str | None = None,
    **attributes: str,
) -> UsageRecord:
    return UsageRecord(
        record_key=key or f"r{next(_counter)}",
        source_format="test",
        start=datetime.fromisoformat(day).replace(tzinfo=UTC),
        provider=provider,
        model=model,
        tokens=TokenCounts(input_uncached=input_tokens, cache_read=cache_read, output=output),
        requests=requests,
        reported_cost=Decimal(cost) if cost is not None else None,
        task_id=task,
        task_status=status,  # type: ignore[arg-type]
        attributes=attributes,
    )


def bill(
    day: str = "2024-09-01",
    amount: str = "10",
    *,
    provider: str = "openai",
    model: str | None = None,
    key: str | None = None,
    **attributes: str,
) -> BillingRecord:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return BillingRecord(
        record_key=key or f"b{next(_counter)}",
        source_format="test-costs",
        start=start,
        end=start,
        provider=provider,
        amount=Decimal(amount),
        currency="USD",
        line_item=f"{model}, input",
        model=model,
        attributes=attributes,
    )


def ingest(
    ingestor: Ingestor, tmp_path: Path, records: Sequence[Any], source: str = "test", kind: str = "otel"
) -> IngestReport:
    """Ingest ``records`` as if parsed from a file (a file is written so the ledger has a checksum)."""
    path = tmp_path / f"{source}-{next(_counter)}.json"
    path.write_text(repr(records))
    return ingestor.ingest_records(kind, [path], source, lambda _p: iter(records))
