"""LiteLLM spend-log parser: CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tools.errors import IngestError
from tools.ingest.litellm import parse_litellm_spend_logs
from tools.ingest.records import Rejected, TokenCounts, UsageRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llm"

COLUMNS = [
    "request_id",
    "call_type",
    "spend",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "model",
    "custom_llm_provider",
    "request_tags",
    "metadata",
    "status",
]


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": "r1",
        "call_type": "acompletion",
        "spend": "0.01",
        "prompt_tokens": "100",
        "completion_tokens": "10",
        "startTime": "2024-09-03 10:00:00",
        "model": "gpt-4o",
        "custom_llm_provider": "openai",
        "request_tags": "[]",
        "metadata": "{}",
        "status": "success",
    }
    row.update(overrides)
    return row


def _csv(tmp_path: Path, *rows: dict[str, Any]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "spend.csv"
    path.write_text(buffer.getvalue())
    return path


def _records(path: Path) -> list[UsageRecord]:
    items = list(parse_litellm_spend_logs(path))
    assert all(isinstance(item, UsageRecord) for item in items), items
    return [item for item in items if isinstance(item, UsageRecord)]


def test_litellm_csv_row_with_cached_and_reasoning_tokens() -> None:
    first = _records(FIXTURES / "litellm_spend_logs.csv")[0]

    assert first.record_key == "chatcmpl-1"
    assert first.source_format == "litellm"
    assert first.provider == "openai"
    assert first.model == "gpt-4o-2024-08-06"
    assert first.operation == "chat"
    assert first.tokens == TokenCounts(input_uncached=200, cache_read=1000, output=200, reasoning=100)
    assert first.requests == 1
    assert first.start == datetime(2024, 9, 3, 10, 0, 0, 123000, tzinfo=UTC)
    assert first.end == datetime(2024, 9, 3, 10, 0, 1, 500000, tzinfo=UTC)
    assert first.task_id == "sess-1"
    assert first.task_status == "completed"
    assert first.location is not None and first.location.line == 2


def test_litellm_spend_is_exact_decimal() -> None:
    records = _records(FIXTURES / "litellm_spend_logs.csv")

    assert [record.reported_cost for record in records] == [
        Decimal("0.000123456789"),
        Decimal("0"),
        Decimal("0.5"),
    ]
    assert all(isinstance(record.reported_cost, Decimal) for record in records)


def test_litellm_request_tags_and_metadata_become_attributes() -> None:
    first = _records(FIXTURES / "litellm_spend_logs.csv")[0]

    assert first.attributes == {
        "feature": "search",
        "env": "prod",
        "tag.beta": "true",
        "user_api_key_team_alias": "search-team",
        "user_api_key_alias": "search-key",
        "team_id": "team-search",
        "user": "alice",
        "end_user": "cust-7",
        "model_group": "gpt-4o",
    }


def test_litellm_provider_mapping_and_embeddings_cache_hit() -> None:
    second = _records(FIXTURES / "litellm_spend_logs.csv")[1]

    assert second.provider == "azure.ai.openai"
    assert second.operation == "embeddings"
    assert second.tokens == TokenCounts(input_uncached=64)
    assert second.end is None
    assert second.task_id is None
    assert second.attributes["cache_hit"] == "true"
    assert second.start == datetime(2024, 9, 3, 10, 5, tzinfo=UTC)


def test_litellm_bedrock_cache_creation_offset_time_and_failure() -> None:
    third = _records(FIXTURES / "litellm_spend_logs.csv")[2]

    assert third.provider == "aws.bedrock"
    assert third.model == "anthropic.claude-3-5-sonnet-20240620-v1:0"  # the bedrock/ prefix removed
    assert third.tokens == TokenCounts(input_uncached=200, cache_read=300, cache_write=2000, output=100)
    assert third.start == datetime(2024, 9, 3, 8, 6, tzinfo=UTC)
    assert third.task_status == "failed"
    assert third.attributes["team"] == "support"


def test_litellm_json_list_rows() -> None:
    records = _records(FIXTURES / "litellm_spend_logs.json")

    first, second = records
    assert first.provider == "anthropic"
    assert first.reported_cost == Decimal("0.0025")
    assert first.tokens == TokenCounts(input_uncached=80, cache_read=20, output=50)
    assert first.attributes == {
        "project": "apollo",
        "tag.nightly": "true",
        "team_id": "team-x",
        "model_group": "haiku",
        "cache_hit": "true",
    }
    assert first.location is not None and first.location.key == "[0]"
    assert second.provider == "gcp.vertex_ai"
    assert second.reported_cost == Decimal("0.1")
    assert second.attributes == {"env": "dev"}  # request_tags given as JSON text
    assert second.start == datetime(2024, 9, 3, 11, 0, tzinfo=UTC)
    assert second.location is not None and second.location.line is not None
    assert first.location.line is not None and second.location.line > first.location.line


def test_litellm_jsonl_rows(tmp_path: Path) -> None:
    rows = [_row(request_id="a"), _row(request_id="b", spend=0.25)]
    path = tmp_path / "spend.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")

    records = _records(path)

    assert [record.record_key for record in records] == ["a", "b"]
    assert records[1].reported_cost == Decimal("0.25")
    assert [record.location.line for record in records if record.location] == [1, 2]


def test_litellm_rejects_cached_above_prompt_with_csv_column(tmp_path: Path) -> None:
    metadata = json.dumps({"usage_object": {"prompt_tokens_details": {"cached_tokens": 500}}})
    path = _csv(tmp_path, _row(), _row(request_id="r2", metadata=metadata))

    items = list(parse_litellm_spend_logs(path))

    assert isinstance(items[0], UsageRecord)
    assert isinstance(items[1], Rejected)
    assert items[1].location.line == 3
    assert items[1].location.column == "prompt_tokens"
    assert "exceed" in items[1].reason


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("prompt_tokens", "-3"),
        ("completion_tokens", "ten"),
        ("completion_tokens", ""),
        ("startTime", "03/09/2024 10:00"),
        ("spend", "abc"),
        ("request_tags", "[not json"),
    ],
)
def test_litellm_rejects_bad_csv_cell(tmp_path: Path, column: str, value: str) -> None:
    path = _csv(tmp_path, _row(), _row(request_id="r2", **{column: value}))

    items = list(parse_litellm_spend_logs(path))

    rejected = [item for item in items if isinstance(item, Rejected)]
    assert len(rejected) == 1
    assert rejected[0].location.line == 3
    assert rejected[0].location.column == column


def test_litellm_rejects_bad_json_field_with_key(tmp_path: Path) -> None:
    path = tmp_path / "spend.json"
    path.write_text(json.dumps([_row(), _row(request_id="r2", prompt_tokens=1.5)], indent=2))

    items = list(parse_litellm_spend_logs(path))

    assert isinstance(items[1], Rejected)
    assert items[1].location.key == "[1].prompt_tokens"
    assert items[1].location.line is not None and items[1].location.line > 2


def test_litellm_rejects_bad_nested_usage_count(tmp_path: Path) -> None:
    metadata = json.dumps({"usage_object": {"prompt_tokens_details": {"cached_tokens": "x"}}})
    path = _csv(tmp_path, _row(metadata=metadata))

    items = list(parse_litellm_spend_logs(path))

    assert isinstance(items[0], Rejected)
    assert items[0].location.column == "metadata"
    assert items[0].location.key == "usage_object.prompt_tokens_details.cached_tokens"


def test_litellm_csv_missing_columns_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("id,cost\n1,2\n")

    with pytest.raises(IngestError) as info:
        list(parse_litellm_spend_logs(path))

    assert "request_id" in info.value.problem
    assert info.value.location.line == 1


def test_litellm_json_row_not_object_raises(tmp_path: Path) -> None:
    path = tmp_path / "spend.json"
    path.write_text("[1, 2]")

    with pytest.raises(IngestError):
        list(parse_litellm_spend_logs(path))


def test_litellm_operation_from_call_type(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        _row(request_id="a", call_type="completion"),
        _row(request_id="b", call_type="aembedding"),
        _row(request_id="c", call_type="custom_call"),
    )

    assert [record.operation for record in _records(path)] == ["chat", "embeddings", "custom_call"]
