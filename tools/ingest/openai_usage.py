"""Parsers for OpenAI's organization admin APIs: the completions usage API and the costs API.

Input files hold what ``GET /v1/organization/usage/completions`` (or ``.../embeddings``) and
``GET /v1/organization/costs`` return: one page ``{"object": "page", "data": [bucket, ...], "has_more":
..., "next_page": ...}``, a JSON list of such pages, or JSON Lines with one page per line. A bucket is
``{"object": "bucket", "start_time": <unix s>, "end_time": <unix s>, "results": [...]}``.

Token semantics (see ``tools.ingest.tokens``): ``input_tokens`` includes ``input_cached_tokens`` and
``input_cache_write_tokens``; audio tokens are counted apart from ``input_tokens``/``output_tokens`` and
``TokenCounts`` has no audio kind, so non-zero audio counts are kept as the attributes
``input_audio_tokens`` / ``output_audio_tokens`` (they are not priced).
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
from tools.ingest.records import OPENAI, BillingRecord, BillingStream, UsageRecord, UsageStream
from tools.ingest.timeparse import from_unix_seconds
from tools.ingest.tokens import from_openai_usage

USAGE_FORMAT = "openai-usage"
COSTS_FORMAT = "openai-costs"

_USAGE_EXPECTED = "OpenAI usage API pages (GET /v1/organization/usage/completions)"
_COSTS_EXPECTED = "OpenAI costs API pages (GET /v1/organization/costs)"
_OPERATIONS = {
    None: "chat",
    "organization.usage.completions.result": "chat",
    "organization.usage.embeddings.result": "embeddings",
}
_GROUPING_FIELDS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")


def parse_openai_usage(path: Path) -> UsageStream:
    """Yield one ``UsageRecord`` per usage result (provider ``openai``) or ``Rejected`` for a bad one.

    ``requests`` is ``num_model_requests``; ``batch`` the result's batch flag; ``project_id``, ``user_id``
    and ``api_key_id`` become attributes when not null. A result without a model (usage not grouped by
    model) keeps ``model=None``. The record key is the bucket start plus every grouping field, so
    re-ingesting an overlapping export replaces, never duplicates.
    """
    yield from iter_bucket_records(
        path, _USAGE_EXPECTED, ("start_time", "end_time"), from_unix_seconds, "unix seconds", _usage_record
    )


def parse_openai_costs(path: Path) -> BillingStream:
    """Yield one ``BillingRecord`` per costs result, or ``Rejected`` for an unreadable one.

    ``amount.value`` may be a JSON number or a string; it becomes a ``Decimal`` from its text, never via
    float arithmetic. The currency is upper-cased (default USD). ``model`` is the text of ``line_item``
    before the first ``", "`` (``"gpt-4o-2024-08-06, input"`` -> ``gpt-4o-2024-08-06``); a line item
    without that separator (e.g. a tool or storage charge) or no line item gives ``model=None``.
    """
    yield from iter_bucket_records(
        path, _COSTS_EXPECTED, ("start_time", "end_time"), from_unix_seconds, "unix seconds", _cost_record
    )


def model_from_line_item(line_item: str | None) -> str | None:
    """``"gpt-4o-2024-08-06, input"`` -> ``"gpt-4o-2024-08-06"``; None without a ``", "`` separator."""
    if not line_item or ", " not in line_item:
        return None
    model = line_item.split(", ", 1)[0].strip()
    return model or None


def _usage_record(
    path: Path, bucket: Bucket, key: str, value: Any, start: datetime, end: datetime | None
) -> UsageRecord:
    result = as_result(value, key)
    object_type = get_str(result, "object")
    if object_type not in _OPERATIONS:
        raise RowError(
            join_key(key, "object"),
            f"unsupported usage result type {object_type!r}",
            " or ".join(str(k) for k in _OPERATIONS if k),
        )
    operation = _OPERATIONS[object_type]
    input_tokens = get_count(result, "input_tokens", key, required=True)
    output_tokens = get_count(result, "output_tokens", key, required=operation == "chat")
    cached = get_count(result, "input_cached_tokens", key)
    cache_write = get_count(result, "input_cache_write_tokens", key)
    reasoning = 0
    details = result.get("output_tokens_details")
    if isinstance(details, Mapping):
        reasoning = get_count(details, "reasoning_tokens", join_key(key, "output_tokens_details"))
    try:
        tokens = from_openai_usage(
            input_tokens,
            output_tokens,
            input_cached_tokens=cached,
            input_cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
        )
    except ValueError as exc:
        raise RowError(key, str(exc), "cached tokens counted inside input_tokens") from exc
    requests = get_count(result, "num_model_requests", key)
    attributes = {
        name: text for name in ("project_id", "user_id", "api_key_id") if (text := get_str(result, name))
    }
    for name in ("input_audio_tokens", "output_audio_tokens"):
        if audio := get_count(result, name, key):
            attributes[name] = str(audio)
    batch_value = result.get("batch")
    if batch_value is not None and not isinstance(batch_value, bool):
        raise RowError(join_key(key, "batch"), f"batch is {batch_value!r}", "true, false or null")
    grouping = "|".join(get_str(result, name) or "" for name in _GROUPING_FIELDS)
    return UsageRecord(
        record_key=f"{start.isoformat()}|{operation}|{grouping}",
        source_format=USAGE_FORMAT,
        start=start,
        end=end,
        provider=OPENAI,
        model=get_str(result, "model"),
        tokens=tokens,
        requests=requests,
        operation=operation,
        batch=bool(batch_value),
        service_tier=get_str(result, "service_tier"),
        attributes=attributes,
        location=Location(path, line=bucket.line, key=key),
    )


def _cost_record(
    path: Path, bucket: Bucket, key: str, value: Any, start: datetime, end: datetime | None
) -> BillingRecord:
    result = as_result(value, key)
    amount_obj = result.get("amount")
    amount_key = join_key(key, "amount")
    if not isinstance(amount_obj, Mapping):
        raise RowError(amount_key, "cost result has no amount object", '{"value": ..., "currency": "usd"}')
    raw_value = amount_obj.get("value")
    if raw_value is None:
        raise RowError(join_key(amount_key, "value"), "amount has no value", "a decimal number")
    try:
        amount = parse_decimal(raw_value)
    except ValueError as exc:
        raise RowError(join_key(amount_key, "value"), str(exc), "a decimal number") from exc
    currency = (get_str(amount_obj, "currency") or "USD").strip().upper()
    if end is None:
        raise RowError(join_key(bucket.key, "end_time"), "bucket has no end_time", "unix seconds")
    line_item = get_str(result, "line_item")
    project_id = get_str(result, "project_id")
    attributes = {
        name: text
        for name in ("project_id", "project_name", "organization_id")
        if (text := get_str(result, name))
    }
    return BillingRecord(
        record_key=f"{start.isoformat()}|{project_id or ''}|{line_item or ''}",
        source_format=COSTS_FORMAT,
        start=start,
        end=end,
        provider=OPENAI,
        amount=amount,
        currency=currency,
        line_item=line_item,
        model=model_from_line_item(line_item),
        attributes=attributes,
        location=Location(path, line=bucket.line, key=key),
    )
