"""Parser for OpenTelemetry GenAI spans in OTLP/JSON.

Input: ``{"resourceSpans": [{"resource": {"attributes": [...]}, "scopeSpans": [{"spans": [...]}]}]}``
(an ``ExportTraceServiceRequest``), a JSON list of such documents, or JSON Lines with one document per
line as the OpenTelemetry collector's file exporter writes them.

Token semantics (see ``tools.ingest.tokens``): ``gen_ai.usage.input_tokens`` includes the cache read
and cache creation tokens, ``gen_ai.usage.output_tokens`` includes the reasoning tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.errors import IngestError, Location
from tools.ingest.jsonfile import (
    RowError,
    iter_json_documents,
    join_key,
    label_text,
    parse_count,
    parse_decimal,
)
from tools.ingest.records import (
    ANTHROPIC,
    AWS_BEDROCK,
    AZURE_OPENAI,
    GCP_VERTEX_AI,
    OPENAI,
    Rejected,
    TokenCounts,
    UsageRecord,
    UsageStream,
)
from tools.ingest.timeparse import from_unix_nanos
from tools.ingest.tokens import from_otel_usage

SOURCE_FORMAT = "otel"
UNKNOWN_PROVIDER = "unknown"

_EXPECTED = "OTLP/JSON trace documents"
_EXPECTED_SHAPE = '{"resourceSpans": [{"resource": {...}, "scopeSpans": [{"spans": [...]}]}]}'

#: provider names seen in spans and gateway logs -> canonical ids (OTel ``gen_ai.provider.name`` values)
_PROVIDER_ALIASES = {
    "openai": OPENAI,
    "anthropic": ANTHROPIC,
    "azure.ai.openai": AZURE_OPENAI,
    "az.ai.openai": AZURE_OPENAI,
    "azure_openai": AZURE_OPENAI,
    "azure-openai": AZURE_OPENAI,
    "azure": AZURE_OPENAI,
    "aws.bedrock": AWS_BEDROCK,
    "aws_bedrock": AWS_BEDROCK,
    "bedrock": AWS_BEDROCK,
    "bedrock_converse": AWS_BEDROCK,
    "gcp.vertex_ai": GCP_VERTEX_AI,
    "vertex_ai": GCP_VERTEX_AI,
    "vertexai": GCP_VERTEX_AI,
    "vertex_ai_beta": GCP_VERTEX_AI,
}

#: operations whose spans aggregate or wrap model calls rather than being one
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool"})

_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
_CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens")
_REASONING = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
_SERVICE_TIER = ("gen_ai.openai.response.service_tier", "openai.response.service_tier")
_ERROR_CODES = {2, "2", "STATUS_CODE_ERROR", "ERROR"}


def canonical_provider(name: str) -> str:
    """Map a provider name from a span or a gateway log to the canonical id; unknown names lower-cased."""
    lowered = name.strip().lower()
    return _PROVIDER_ALIASES.get(lowered, lowered)


@dataclass(frozen=True)
class _Attr:
    value: Any
    key: str  # JSON path of the attribute entry


def parse_otel_spans(path: Path, *, include_agent_spans: bool = False) -> UsageStream:
    """Yield one ``UsageRecord`` per GenAI span (``requests=1``), or ``Rejected`` for an unreadable one.

    A span is usage when it has a ``gen_ai.usage.*`` attribute or ``gen_ai.operation.name``; other spans
    are skipped silently. Spans of agent and tool operations (``invoke_agent``, ``create_agent``,
    ``execute_tool``) are skipped too unless ``include_agent_spans``: instrumentations put on an agent
    span the sum of its child model calls' tokens, so counting both would double the usage.

    Model: ``gen_ai.response.model`` else ``gen_ai.request.model``. Provider: ``gen_ai.provider.name``
    else the older ``gen_ai.system``, mapped by ``canonical_provider`` (``"unknown"`` when neither is
    set). Tokens: the current ``gen_ai.usage.*`` names and the older ``prompt_tokens`` /
    ``completion_tokens``. ``gen_ai.usage.cost`` becomes ``reported_cost``. ``task_id``: the explicit
    ``finops.task_id`` attribute, else ``gen_ai.conversation.id``. ``task_status`` is ``failed`` when the
    span status is ERROR, else ``completed``. Every resource and span attribute is kept as a string
    attribute (span attributes win over resource attributes of the same name).
    """
    for doc in iter_json_documents(path, _EXPECTED):
        for resource_attrs, span_key, span in _iter_spans(path, doc.line, doc.key, doc.value):
            try:
                record = _span_record(path, doc.line, resource_attrs, span_key, span, include_agent_spans)
            except RowError as err:
                yield Rejected(Location(path, line=doc.line, key=err.key), err.reason, err.expected)
                continue
            if record is not None:
                yield record


_MAX_THRESHOLD = 1 << 56


def adjusted_count(trace_state: Any) -> int:
    """How many spans a sampled span stands for, from OpenTelemetry's ``ot=th:<threshold>`` in tracestate.

    The rejection threshold ``th`` is up to 14 hex digits (trailing zeros dropped); the sampling
    probability is ``(2^56 - th) / 2^56`` and the adjusted count its inverse. No or unreadable ``th``: 1.
    """
    if not isinstance(trace_state, str) or "ot=" not in trace_state:
        return 1
    for member in trace_state.split(","):
        key, _, value = member.strip().partition("=")
        if key != "ot":
            continue
        for field in value.split(";"):
            name, _, hex_value = field.partition(":")
            if name == "th" and 0 < len(hex_value) <= 14:
                try:
                    threshold = int(hex_value.ljust(14, "0"), 16)
                except ValueError:
                    return 1
                if threshold >= _MAX_THRESHOLD:
                    return 1
                return max(1, round(_MAX_THRESHOLD / (_MAX_THRESHOLD - threshold)))
    return 1


def _shape_error(path: Path, line: int, key: str, problem: str) -> IngestError:
    return IngestError(Location(path, line=line, key=key or None), problem, _EXPECTED_SHAPE)


def _iter_spans(
    path: Path, line: int, prefix: str, document: Any
) -> Iterator[tuple[tuple[str, Any], str, Any]]:
    """Yield ((resource attributes key, resource attribute entries), span key, span) per span."""
    if not isinstance(document, Mapping) or not isinstance(document.get("resourceSpans"), list):
        raise _shape_error(path, line, prefix, "not an OTLP/JSON trace document: no 'resourceSpans' list")
    for r_index, resource_spans in enumerate(document["resourceSpans"]):
        resource_key = join_key(join_key(prefix, "resourceSpans"), r_index)
        if not isinstance(resource_spans, Mapping):
            raise _shape_error(path, line, resource_key, "resourceSpans entry is not an object")
        resource = resource_spans.get("resource") or {}
        resource_attrs = resource.get("attributes") if isinstance(resource, Mapping) else None
        scope_field = "scopeSpans" if "scopeSpans" in resource_spans else "instrumentationLibrarySpans"
        scopes = resource_spans.get(scope_field) or []
        if not isinstance(scopes, list):
            raise _shape_error(
                path, line, join_key(resource_key, scope_field), f"{scope_field} is not a list"
            )
        for s_index, scope in enumerate(scopes):
            scope_key = join_key(join_key(resource_key, scope_field), s_index)
            spans = scope.get("spans") if isinstance(scope, Mapping) else None
            if spans is None:
                spans = []
            if not isinstance(spans, list):
                raise _shape_error(path, line, join_key(scope_key, "spans"), "spans is not a list")
            for index, span in enumerate(spans):
                yield (
                    (join_key(resource_key, "resource.attributes"), resource_attrs),
                    join_key(join_key(scope_key, "spans"), index),
                    span,
                )


def _any_value(value: Any, key: str) -> Any:
    """OTLP AnyValue -> Python value (int for intValue, Decimal for doubleValue, list, dict, ...)."""
    if not isinstance(value, Mapping):
        raise RowError(key, "attribute value is not an OTLP AnyValue object", '{"stringValue": ...}')
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        raw = value["intValue"]
        try:
            return int(raw) if not isinstance(raw, bool) else raw
        except (TypeError, ValueError):
            return raw
    if "doubleValue" in value:
        raw = value["doubleValue"]
        if isinstance(raw, int | Decimal) and not isinstance(raw, bool):
            return Decimal(raw)
        return raw
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") or []
        return [_any_value(item, join_key(key, index)) for index, item in enumerate(items)]
    if "kvlistValue" in value:
        entries = (value["kvlistValue"] or {}).get("values") or []
        return {
            str(entry.get("key")): _any_value(entry.get("value") or {}, join_key(key, index))
            for index, entry in enumerate(entries)
            if isinstance(entry, Mapping)
        }
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _read_attributes(entries: Any, key: str) -> dict[str, _Attr]:
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise RowError(key, "attributes is not a list", 'a list of {"key": ..., "value": {...}}')
    result: dict[str, _Attr] = {}
    for index, entry in enumerate(entries):
        entry_key = join_key(key, index)
        if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
            raise RowError(entry_key, "attribute entry has no key", '{"key": ..., "value": {...}}')
        result[entry["key"]] = _Attr(
            _any_value(entry.get("value") or {}, join_key(entry_key, "value")), entry_key
        )
    return result


def _first(attrs: Mapping[str, _Attr], names: tuple[str, ...]) -> tuple[str, _Attr] | None:
    for name in names:
        attr = attrs.get(name)
        if attr is not None and attr.value is not None:
            return name, attr
    return None


def _count(attrs: Mapping[str, _Attr], names: tuple[str, ...]) -> int:
    found = _first(attrs, names)
    if found is None:
        return 0
    name, attr = found
    try:
        return parse_count(attr.value)
    except ValueError as exc:
        raise RowError(attr.key, f"{name}: {exc}", "a non-negative integer token count") from exc


def _text(attrs: Mapping[str, _Attr], *names: str) -> str | None:
    found = _first(attrs, names)
    return label_text(found[1].value) if found else None


def _span_record(
    path: Path,
    line: int,
    resource: tuple[str, Any],
    span_key: str,
    span: Any,
    include_agent_spans: bool,
) -> UsageRecord | None:
    if not isinstance(span, Mapping):
        raise RowError(span_key, "span is not a JSON object", "an OTLP span object")
    span_attrs = _read_attributes(span.get("attributes"), join_key(span_key, "attributes"))
    operation = _text(span_attrs, "gen_ai.operation.name")
    if operation is None and not any(name.startswith("gen_ai.usage.") for name in span_attrs):
        return None
    if operation in AGENT_OPERATIONS and not include_agent_spans:
        return None
    resource_key, resource_entries = resource
    attrs = {**_read_attributes(resource_entries, resource_key), **span_attrs}

    ids = {}
    for name in ("traceId", "spanId"):
        value = span.get(name)
        if not isinstance(value, str) or not value:
            raise RowError(join_key(span_key, name), f"span has no {name}", "a hex id")
        ids[name] = value
    try:
        start = from_unix_nanos(span.get("startTimeUnixNano"))
    except ValueError as exc:
        raise RowError(
            join_key(span_key, "startTimeUnixNano"), f"startTimeUnixNano: {exc}", "unix nanoseconds"
        ) from exc
    end = None
    if span.get("endTimeUnixNano") not in (None, "", "0", 0):
        try:
            end = from_unix_nanos(span.get("endTimeUnixNano"))
        except ValueError as exc:
            raise RowError(
                join_key(span_key, "endTimeUnixNano"), f"endTimeUnixNano: {exc}", "unix nanoseconds"
            ) from exc

    try:
        tokens = from_otel_usage(
            _count(span_attrs, _INPUT),
            _count(span_attrs, _OUTPUT),
            cache_read_input_tokens=_count(span_attrs, _CACHE_READ),
            cache_creation_input_tokens=_count(span_attrs, _CACHE_WRITE),
            reasoning_output_tokens=_count(span_attrs, _REASONING),
        )
    except ValueError as exc:
        raise RowError(
            join_key(span_key, "attributes"), str(exc), "cached tokens inside input tokens"
        ) from exc

    reported_cost = None
    cost = span_attrs.get("gen_ai.usage.cost")
    if cost is not None and cost.value is not None:
        try:
            reported_cost = parse_decimal(cost.value)
        except ValueError as exc:
            raise RowError(cost.key, f"gen_ai.usage.cost: {exc}", "a decimal amount") from exc
        if reported_cost < 0:
            raise RowError(cost.key, f"gen_ai.usage.cost is negative ({reported_cost})", "a cost >= 0")

    weight = adjusted_count(span.get("traceState"))
    if weight != 1:
        tokens = TokenCounts(*(getattr(tokens, f.name) * weight for f in fields(TokenCounts)))
        reported_cost = reported_cost * weight if reported_cost is not None else None

    provider_name = _text(attrs, "gen_ai.provider.name", "gen_ai.system")
    status = span.get("status")
    failed = isinstance(status, Mapping) and status.get("code") in _ERROR_CODES
    return UsageRecord(
        record_key=f"{ids['traceId']}:{ids['spanId']}",
        source_format=SOURCE_FORMAT,
        start=start,
        end=end,
        provider=canonical_provider(provider_name) if provider_name else UNKNOWN_PROVIDER,
        model=_text(span_attrs, "gen_ai.response.model", "gen_ai.request.model"),
        tokens=tokens,
        requests=weight,
        adjusted_count=weight,
        operation=operation,
        service_tier=_text(span_attrs, *_SERVICE_TIER),
        reported_cost=reported_cost,
        task_id=_text(attrs, "finops.task_id", "gen_ai.conversation.id"),
        task_status="failed" if failed else "completed",
        attributes={
            name: text for name, attr in attrs.items() if (text := label_text(attr.value)) is not None
        },
        location=Location(path, line=line, key=span_key),
    )
