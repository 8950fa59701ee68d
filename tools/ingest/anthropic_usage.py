"""Parsers for Anthropic's Admin API reports: the messages usage report and the cost report.

Input files hold what ``GET /v1/organizations/usage_report/messages`` and
``GET /v1/organizations/cost_report`` return: one page ``{"data": [bucket, ...], "has_more": ...,
"next_page": ...}``, a JSON list of pages, or JSON Lines with one page per line. A bucket is
``{"starting_at": "2025-08-01T00:00:00Z", "ending_at": ..., "results": [...]}``.

Token semantics (see ``tools.ingest.tokens``): the report's kinds are exclusive. ``uncached_input_tokens``
excludes ``cache_read_input_tokens`` and the ``cache_creation`` 5m / 1h writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.errors import Location
from tools.ingest.jsonfile import (
    Bucket,
    RowError,
    as_result,
    get_count,
    get_str,
    iter_bucket_records,
    join_key,
    parse_decimal,
)
from tools.ingest.records import ANTHROPIC, BillingRecord, BillingStream, UsageRecord, UsageStream
from tools.ingest.timeparse import parse_timestamp
from tools.ingest.tokens import from_anthropic_usage

USAGE_FORMAT = "anthropic-usage"
COSTS_FORMAT = "anthropic-costs"

_USAGE_EXPECTED = "Anthropic usage report pages (GET /v1/organizations/usage_report/messages)"
_COSTS_EXPECTED = "Anthropic cost report pages (GET /v1/organizations/cost_report)"
_USAGE_GROUPING = ("api_key_id", "workspace_id", "model", "service_tier", "context_window", "inference_geo")
_COST_GROUPING = (
    "workspace_id",
    "description",
    "cost_type",
    "model",
    "token_type",
    "service_tier",
    "context_window",
    "inference_geo",
)


def parse_anthropic_usage(path: Path) -> UsageStream:
    """Yield one ``UsageRecord`` per usage-report result (provider ``anthropic``), or ``Rejected``.

    Request counts: Anthropic's usage report has no request count, so ``requests`` is 0 unless a result
    carries ``num_model_requests`` or ``requests`` (kept for exports that add one). Unit metrics per
    request are therefore unavailable from this source alone.

    ``service_tier`` ``"batch"`` sets ``batch=True``. ``api_key_id``, ``workspace_id``, ``context_window``
    and ``inference_geo`` become attributes when not null (a null workspace is the default workspace);
    a non-zero ``server_tool_use.web_search_requests`` is kept as the attribute ``web_search_requests``
    (``TokenCounts`` has no kind for it, it is not priced here).
    """
    yield from iter_bucket_records(
        path,
        _USAGE_EXPECTED,
        ("starting_at", "ending_at"),
        parse_timestamp,
        "an ISO-8601 timestamp",
        _usage_record,
    )


def parse_anthropic_costs(path: Path) -> BillingStream:
    """Yield one ``BillingRecord`` per cost-report result, or ``Rejected`` for an unreadable one.

    ``amount`` is a decimal string in the currency's lowest unit (cents): ``"123.45"`` USD is $1.2345,
    converted exactly with ``Decimal`` (a decimal shift, no float). ``line_item`` is the ``description``;
    ``workspace_id``, ``cost_type``, ``token_type``, ``service_tier``, ``context_window`` and
    ``inference_geo`` become attributes when not null.
    """
    yield from iter_bucket_records(
        path,
        _COSTS_EXPECTED,
        ("starting_at", "ending_at"),
        parse_timestamp,
        "an ISO-8601 timestamp",
        _cost_record,
    )


def _usage_record(
    path: Path, bucket: Bucket, key: str, value: Any, start: datetime, end: datetime | None
) -> UsageRecord:
    result = as_result(value, key)
    cache_creation: Mapping[str, Any] = {}
    creation_key = join_key(key, "cache_creation")
    raw_creation = result.get("cache_creation")
    if raw_creation is not None:
        if not isinstance(raw_creation, Mapping):
            raise RowError(creation_key, "cache_creation is not an object", "a JSON object")
        cache_creation = raw_creation
    tokens = from_anthropic_usage(
        get_count(result, "uncached_input_tokens", key, required=True),
        get_count(result, "output_tokens", key, required=True),
        cache_read_input_tokens=get_count(result, "cache_read_input_tokens", key),
        cache_creation_5m_tokens=get_count(cache_creation, "ephemeral_5m_input_tokens", creation_key),
        cache_creation_1h_tokens=get_count(cache_creation, "ephemeral_1h_input_tokens", creation_key),
    )
    requests = 0
    for name in ("num_model_requests", "requests"):
        if result.get(name) is not None:
            requests = get_count(result, name, key)
            break
    attributes = {
        name: text
        for name in ("api_key_id", "workspace_id", "context_window", "inference_geo")
        if (text := get_str(result, name))
    }
    server_tool_use = result.get("server_tool_use")
    if isinstance(server_tool_use, Mapping) and (
        searches := get_count(server_tool_use, "web_search_requests", join_key(key, "server_tool_use"))
    ):
        attributes["web_search_requests"] = str(searches)
    service_tier = get_str(result, "service_tier")
    grouping = "|".join(get_str(result, name) or "" for name in _USAGE_GROUPING)
    return UsageRecord(
        record_key=f"{start.isoformat()}|{grouping}",
        source_format=USAGE_FORMAT,
        start=start,
        end=end,
        provider=ANTHROPIC,
        model=get_str(result, "model"),
        tokens=tokens,
        requests=requests,
        operation="chat",
        batch=service_tier == "batch",
        service_tier=service_tier,
        attributes=attributes,
        location=Location(path, line=bucket.line, key=key),
    )


def _cost_record(
    path: Path, bucket: Bucket, key: str, value: Any, start: datetime, end: datetime | None
) -> BillingRecord:
    result = as_result(value, key)
    raw_amount = result.get("amount")
    amount_key = join_key(key, "amount")
    if raw_amount is None:
        raise RowError(amount_key, "cost result has no amount", "a decimal string in cents, e.g. '123.45'")
    try:
        cents = parse_decimal(raw_amount)
    except ValueError as exc:
        raise RowError(amount_key, str(exc), "a decimal string in cents, e.g. '123.45'") from exc
    if end is None:
        raise RowError(join_key(bucket.key, "ending_at"), "bucket has no ending_at", "an ISO-8601 timestamp")
    currency = (get_str(result, "currency") or "USD").strip().upper()
    attributes = {
        name: text
        for name in (
            "workspace_id",
            "cost_type",
            "token_type",
            "service_tier",
            "context_window",
            "inference_geo",
        )
        if (text := get_str(result, name))
    }
    grouping = "|".join(get_str(result, name) or "" for name in _COST_GROUPING)
    return BillingRecord(
        record_key=f"{start.isoformat()}|{grouping}",
        source_format=COSTS_FORMAT,
        start=start,
        end=end,
        provider=ANTHROPIC,
        amount=cents.scaleb(-2),
        currency=currency,
        line_item=get_str(result, "description"),
        model=get_str(result, "model"),
        attributes=attributes,
        location=Location(path, line=bucket.line, key=key),
    )
