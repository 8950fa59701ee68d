"""OTLP/JSON GenAI span parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tools.errors import IngestError
from tools.ingest.otel import canonical_provider, parse_otel_spans
from tools.ingest.records import Rejected, TokenCounts, UsageRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llm"


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str = "00000000000000a1", **attributes: Any) -> dict[str, Any]:
    return {
        "traceId": "0123456789abcdef0123456789abcdef",
        "spanId": span_id,
        "name": "chat",
        "startTimeUnixNano": "1754042400000000000",
        "endTimeUnixNano": "1754042401000000000",
        "attributes": [_attr(key.replace("__", "."), value) for key, value in attributes.items()],
        "status": {},
    }


def _doc(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_attr("service.name", "svc")]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def _write(tmp_path: Path, content: Any, name: str = "spans.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def _records(path: Path, **kwargs: Any) -> list[UsageRecord]:
    items = list(parse_otel_spans(path, **kwargs))
    assert all(isinstance(item, UsageRecord) for item in items), items
    return [item for item in items if isinstance(item, UsageRecord)]


def test_otel_spans_current_semconv_span() -> None:
    first = _records(FIXTURES / "otel_spans.json")[0]

    assert first.record_key == "5b8efff798038103d269b633813fc60c:eee19b7ec3c1b174"
    assert first.source_format == "otel"
    assert first.provider == "openai"
    assert first.model == "gpt-4o-2024-08-06"  # response model wins over request model
    assert first.operation == "chat"
    # intValue given as a string and as an int; cache read inside input, reasoning inside output
    assert first.tokens == TokenCounts(input_uncached=600, cache_read=400, output=150, reasoning=50)
    assert first.requests == 1
    assert first.start == datetime(2025, 8, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert first.end == datetime(2025, 8, 1, 10, 0, 1, 500000, tzinfo=UTC)
    assert first.task_id == "conv-1"
    assert first.task_status == "completed"
    assert first.reported_cost is None
    assert first.location is not None
    assert first.location.key == "resourceSpans[0].scopeSpans[0].spans[0]"


def test_otel_spans_attributes_keep_resource_and_span_attributes_as_strings() -> None:
    first = _records(FIXTURES / "otel_spans.json")[0]

    assert first.attributes["service.name"] == "search-api"
    assert first.attributes["deployment.environment"] == "prod"
    assert first.attributes["finops.feature"] == "search"  # the span attribute wins over the resource one
    assert first.attributes["gen_ai.usage.input_tokens"] == "1000"
    assert first.attributes["gen_ai.response.finish_reasons"] == '["stop"]'


def test_otel_spans_legacy_system_and_prompt_completion_tokens_with_error_status() -> None:
    second = _records(FIXTURES / "otel_spans.json")[1]

    assert second.provider == "azure.ai.openai"
    assert second.model == "gpt-4o-mini"
    assert second.operation is None
    assert second.tokens == TokenCounts(input_uncached=120, output=30)
    assert second.task_status == "failed"
    assert second.task_id is None


def test_otel_spans_non_genai_and_agent_spans_skipped() -> None:
    records = _records(FIXTURES / "otel_spans.json")

    span_ids = [record.record_key.split(":")[1] for record in records]
    assert span_ids == ["eee19b7ec3c1b174", "aaa19b7ec3c1b175", "b7ad6b7169203331"]


def test_otel_spans_agent_spans_included_on_request() -> None:
    records = _records(FIXTURES / "otel_spans.json", include_agent_spans=True)

    agent = [record for record in records if record.operation == "invoke_agent"]
    assert len(agent) == 1
    assert agent[0].tokens.total == 1350


def test_otel_spans_reported_cost_task_id_and_status_code_string() -> None:
    third = _records(FIXTURES / "otel_spans.json")[2]

    assert third.provider == "aws.bedrock"
    assert third.reported_cost == Decimal("0.0123")
    assert third.tokens == TokenCounts(input_uncached=500, cache_write=1500, output=100)
    assert third.task_id == "task-42"  # the explicit finops.task_id wins over gen_ai.conversation.id
    assert third.task_status == "failed"
    assert third.attributes["app.retry"] == "true"
    assert third.start == datetime(2025, 8, 1, 11, 0, tzinfo=UTC)


def test_otel_spans_collector_jsonl_output() -> None:
    records = _records(FIXTURES / "otel_collector.jsonl")

    assert [record.provider for record in records] == ["anthropic", "gcp.vertex_ai"]
    assert [record.operation for record in records] == ["chat", "embeddings"]
    assert [record.location.line for record in records if record.location] == [1, 2]
    assert records[1].tokens == TokenCounts(input_uncached=42)
    assert records[0].attributes["service.name"] == "chat-api"


def test_otel_spans_list_of_documents(tmp_path: Path) -> None:
    path = _write(tmp_path, [_doc(_span(gen_ai__operation__name="chat")), _doc(_span("00000000000000b2"))])

    records = _records(path)

    assert len(records) == 1  # the second span has neither usage nor an operation name
    assert records[0].provider == "unknown"
    assert records[0].location is not None
    assert records[0].location.key == "[0].resourceSpans[0].scopeSpans[0].spans[0]"


def test_otel_spans_rejects_cache_read_above_input(tmp_path: Path) -> None:
    bad = _span(
        "00000000000000b2",
        gen_ai__usage__input_tokens=10,
        gen_ai__usage__cache_read__input_tokens=20,
    )
    path = _write(tmp_path, _doc(_span(gen_ai__usage__input_tokens=5), bad))

    items = list(parse_otel_spans(path))

    assert isinstance(items[0], UsageRecord)
    assert isinstance(items[1], Rejected)
    assert items[1].location.key == "resourceSpans[0].scopeSpans[0].spans[1].attributes"
    assert "exceed" in items[1].reason


def test_otel_spans_rejects_non_integer_token_attribute(tmp_path: Path) -> None:
    path = _write(tmp_path, _doc(_span(gen_ai__operation__name="chat", gen_ai__usage__input_tokens="lots")))

    items = list(parse_otel_spans(path))

    assert isinstance(items[0], Rejected)
    assert items[0].location.key == "resourceSpans[0].scopeSpans[0].spans[0].attributes[1]"
    assert "gen_ai.usage.input_tokens" in items[0].reason


def test_otel_spans_rejects_bad_start_time_in_jsonl(tmp_path: Path) -> None:
    good = json.dumps(_doc(_span(gen_ai__usage__input_tokens=1)))
    span = _span(gen_ai__usage__input_tokens=1)
    span["startTimeUnixNano"] = "2025-08-01"
    path = _write(tmp_path, good + "\n" + json.dumps(_doc(span)) + "\n", "spans.jsonl")

    items = list(parse_otel_spans(path))

    assert isinstance(items[1], Rejected)
    assert items[1].location.line == 2
    assert items[1].location.key == "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano"


def test_otel_spans_wrong_document_shape_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as info:
        list(parse_otel_spans(_write(tmp_path, {"spans": []})))

    assert "resourceSpans" in info.value.problem


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("az.ai.openai", "azure.ai.openai"),
        ("azure_openai", "azure.ai.openai"),
        ("aws_bedrock", "aws.bedrock"),
        ("aws.bedrock", "aws.bedrock"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gcp.vertex_ai", "gcp.vertex_ai"),
        ("OpenAI", "openai"),
        ("Mistral_AI", "mistral_ai"),
    ],
)
def test_otel_canonical_provider_maps_aliases(name: str, canonical: str) -> None:
    assert canonical_provider(name) == canonical


def test_otel_adjusted_count_from_the_sampling_threshold() -> None:
    from tools.ingest.otel import adjusted_count

    assert adjusted_count("ot=th:fc") == 64  # p = 1/64
    assert adjusted_count("ot=th:ff8") == 512
    assert adjusted_count("ot=th:8;rv:abcdef12345678") == 2
    assert adjusted_count("vendor=x,ot=th:0") == 1
    assert adjusted_count(None) == 1 and adjusted_count("ot=th:zz") == 1


def test_otel_sampled_span_stands_for_its_adjusted_count(tmp_path: Path) -> None:
    import json

    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": []},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "a1",
                                "spanId": "b1",
                                "traceState": "ot=th:fc",
                                "startTimeUnixNano": "1725148800000000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                    {
                                        "key": "gen_ai.usage.cache_read.input_tokens",
                                        "value": {"intValue": "40"},
                                    },
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    path = tmp_path / "sampled.json"
    path.write_text(json.dumps(doc))
    (record,) = list(parse_otel_spans(path))
    assert isinstance(record, UsageRecord)
    assert (record.requests, record.adjusted_count) == (64, 64)
    assert (record.tokens.input_uncached, record.tokens.cache_read, record.tokens.output) == (3840, 2560, 640)
