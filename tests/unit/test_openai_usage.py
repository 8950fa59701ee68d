"""OpenAI organization usage and costs API parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tools.errors import IngestError
from tools.ingest.openai_usage import model_from_line_item, parse_openai_costs, parse_openai_usage
from tools.ingest.records import BillingRecord, Rejected, TokenCounts, UsageRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llm"


def _result(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": 100,
        "output_tokens": 10,
        "input_cached_tokens": 0,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": 1,
        "project_id": "proj_a",
        "user_id": None,
        "api_key_id": None,
        "model": "gpt-4o",
        "batch": False,
        "service_tier": "default",
    }
    result.update(overrides)
    return result


def _page(*results: dict[str, Any], start: Any = 1754006400) -> dict[str, Any]:
    return {
        "object": "page",
        "data": [{"object": "bucket", "start_time": start, "end_time": 1754092800, "results": list(results)}],
        "has_more": False,
        "next_page": None,
    }


def _write(tmp_path: Path, content: Any, name: str = "usage.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def _usage(path: Path) -> list[UsageRecord]:
    items = list(parse_openai_usage(path))
    assert all(isinstance(item, UsageRecord) for item in items), items
    return [item for item in items if isinstance(item, UsageRecord)]


def _rejected(items: list[Any]) -> list[Rejected]:
    return [item for item in items if isinstance(item, Rejected)]


def test_openai_usage_parses_page_with_cached_tokens_inside_input() -> None:
    records = _usage(FIXTURES / "openai_usage_page.json")

    assert len(records) == 3
    first = records[0]
    assert first.provider == "openai"
    assert first.source_format == "openai-usage"
    assert first.operation == "chat"
    assert first.model == "gpt-4o-2024-08-06"
    assert first.tokens == TokenCounts(input_uncached=800, cache_read=200, output=500)
    assert first.requests == 10
    assert first.start == datetime(2025, 8, 1, tzinfo=UTC)
    assert first.end == datetime(2025, 8, 2, tzinfo=UTC)
    assert first.batch is False
    assert first.service_tier == "default"
    assert first.attributes == {"project_id": "proj_abc", "api_key_id": "key_123"}
    assert first.location is not None
    assert first.location.key == "data[0].results[0]"


def test_openai_usage_batch_flag_and_user_attribute() -> None:
    second = _usage(FIXTURES / "openai_usage_page.json")[1]

    assert second.batch is True
    assert second.service_tier is None
    assert second.attributes == {"project_id": "proj_abc", "user_id": "user_9"}
    assert second.tokens.total_input == 4000


def test_openai_usage_ungrouped_result_keeps_model_none() -> None:
    third = _usage(FIXTURES / "openai_usage_page.json")[2]

    assert third.model is None
    assert third.attributes == {}
    assert third.batch is False
    assert third.start == datetime(2025, 8, 2, tzinfo=UTC)


def test_openai_usage_record_keys_are_unique_per_grouping() -> None:
    records = _usage(FIXTURES / "openai_usage_page.json")

    keys = [record.record_key for record in records]
    assert len(set(keys)) == 3
    assert "proj_abc" in keys[0] and "key_123" in keys[0] and "gpt-4o-2024-08-06" in keys[0]


def test_openai_usage_reads_jsonl_pages_with_line_numbers() -> None:
    records = _usage(FIXTURES / "openai_usage_pages.jsonl")

    assert [record.attributes["project_id"] for record in records] == ["proj_a", "proj_b"]
    assert [record.location.line for record in records if record.location] == [1, 3]
    assert records[0].tokens == TokenCounts(input_uncached=60, cache_read=40, output=10)


def test_openai_usage_reads_list_of_pages(tmp_path: Path) -> None:
    path = _write(tmp_path, [_page(_result()), _page(_result(project_id="proj_b"))])

    records = _usage(path)

    assert len(records) == 2
    second_location = records[1].location
    assert second_location is not None
    assert second_location.key == "[1].data[0].results[0]"
    line = second_location.line
    assert line is not None and line > 1
    assert path.read_text().splitlines()[line - 1].strip() == "{"  # the line where the second page starts


def test_openai_usage_same_result_has_same_key_in_page_and_jsonl(tmp_path: Path) -> None:
    page = _page(_result())
    as_page = _usage(_write(tmp_path, page, "a.json"))
    as_jsonl = _usage(_write(tmp_path, json.dumps(page) + "\n", "b.jsonl"))

    assert as_page[0].record_key == as_jsonl[0].record_key


def test_openai_usage_embeddings_result_is_embeddings_operation(tmp_path: Path) -> None:
    result = {
        "object": "organization.usage.embeddings.result",
        "input_tokens": 64,
        "num_model_requests": 2,
        "model": "text-embedding-3-small",
    }
    records = _usage(_write(tmp_path, _page(result)))

    assert records[0].operation == "embeddings"
    assert records[0].tokens == TokenCounts(input_uncached=64)


def test_openai_usage_audio_tokens_kept_as_attributes(tmp_path: Path) -> None:
    records = _usage(_write(tmp_path, _page(_result(input_audio_tokens=30, output_audio_tokens=5))))

    assert records[0].attributes["input_audio_tokens"] == "30"
    assert records[0].attributes["output_audio_tokens"] == "5"
    assert records[0].tokens.total == 110


def test_openai_usage_rejects_cached_above_input(tmp_path: Path) -> None:
    path = _write(tmp_path, _page(_result(input_cached_tokens=101), _result(project_id="proj_ok")))

    items = list(parse_openai_usage(path))

    rejected = _rejected(items)
    assert len(rejected) == 1
    assert rejected[0].location.key == "data[0].results[0]"
    assert rejected[0].location.line == 1
    assert "exceed" in rejected[0].reason
    assert isinstance(items[1], UsageRecord)
    assert items[1].attributes["project_id"] == "proj_ok"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("output_tokens", -5, "negative"),
        ("output_tokens", 1.5, "non-negative integer"),
        ("output_tokens", "many", "non-negative integer"),
        ("input_tokens", None, "null"),
    ],
)
def test_openai_usage_rejects_bad_token_count(tmp_path: Path, field: str, value: Any, reason: str) -> None:
    path = _write(tmp_path, _page(_result(), _result(**{field: value})))

    rejected = _rejected(list(parse_openai_usage(path)))

    assert len(rejected) == 1
    assert rejected[0].location.key == f"data[0].results[1].{field}"
    assert reason in rejected[0].reason
    assert rejected[0].expected == "a non-negative integer"


def test_openai_usage_rejects_missing_input_tokens(tmp_path: Path) -> None:
    result = _result()
    del result["input_tokens"]

    rejected = _rejected(list(parse_openai_usage(_write(tmp_path, _page(result)))))

    assert rejected[0].location.key == "data[0].results[0].input_tokens"
    assert "missing" in rejected[0].reason


def test_openai_usage_rejects_unparsable_bucket_start(tmp_path: Path) -> None:
    rejected = _rejected(list(parse_openai_usage(_write(tmp_path, _page(_result(), start="yesterday")))))

    assert len(rejected) == 1
    assert rejected[0].location.key == "data[0].start_time"


def test_openai_usage_rejected_row_in_jsonl_has_line_number(tmp_path: Path) -> None:
    lines = [json.dumps(_page(_result())), json.dumps(_page(_result(output_tokens=-1)))]
    path = _write(tmp_path, "\n".join(lines) + "\n", "pages.jsonl")

    rejected = _rejected(list(parse_openai_usage(path)))

    assert rejected[0].location.line == 2
    assert rejected[0].location.key == "data[0].results[0].output_tokens"


def test_openai_usage_not_json_raises_ingest_error(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "object": "page",\n  oops\n}\n')

    with pytest.raises(IngestError) as info:
        list(parse_openai_usage(path))

    assert info.value.location.line == 3
    assert "not valid JSON" in info.value.problem


def test_openai_usage_bad_jsonl_line_raises_with_line(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(_page(_result())) + "\nnot json\n", "pages.jsonl")

    with pytest.raises(IngestError) as info:
        list(parse_openai_usage(path))

    assert info.value.location.line == 2


def test_openai_usage_wrong_top_level_shape_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as info:
        list(parse_openai_usage(_write(tmp_path, {"results": []})))

    assert "'data'" in info.value.problem
    assert info.value.expected is not None and "page" in info.value.expected


def test_openai_usage_empty_file_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="empty"):
        list(parse_openai_usage(_write(tmp_path, "\n\n")))


def test_openai_costs_amounts_are_exact_decimals() -> None:
    items = list(parse_openai_costs(FIXTURES / "openai_costs_page.json"))

    records = [item for item in items if isinstance(item, BillingRecord)]
    assert len(records) == 3
    assert [record.amount for record in records] == [Decimal("0.06"), Decimal("1.234567891234"), Decimal("3")]
    assert all(isinstance(record.amount, Decimal) for record in records)
    assert {record.currency for record in records} == {"USD"}
    assert [record.model for record in records] == ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", None]
    assert records[0].line_item == "gpt-4o-2024-08-06, input"
    assert records[0].attributes == {"project_id": "proj_abc", "organization_id": "org-1"}
    assert records[0].start == datetime(2025, 8, 1, tzinfo=UTC)
    assert records[0].end == datetime(2025, 8, 2, tzinfo=UTC)
    assert records[0].provider == "openai"
    assert records[0].source_format == "openai-costs"
    assert len({record.record_key for record in records}) == 3


def test_openai_costs_rejects_missing_amount_value(tmp_path: Path) -> None:
    page = _page(
        {"object": "organization.costs.result", "amount": {"currency": "usd"}, "line_item": "x, input"}
    )

    items = list(parse_openai_costs(_write(tmp_path, page)))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].location.key == "data[0].results[0].amount.value"


def test_openai_costs_rejects_non_numeric_amount(tmp_path: Path) -> None:
    page = _page({"amount": {"value": "12,3", "currency": "usd"}, "line_item": "x, input"})

    items = list(parse_openai_costs(_write(tmp_path, page)))

    assert isinstance(items[0], Rejected)
    assert items[0].location.key == "data[0].results[0].amount.value"


@pytest.mark.parametrize(
    ("line_item", "model"),
    [
        ("gpt-4o-2024-08-06, input", "gpt-4o-2024-08-06"),
        ("gpt-4o-mini-2024-07-18, cached input", "gpt-4o-mini-2024-07-18"),
        ("o1, output, batch", "o1"),
        ("Assistants Code Interpreter", None),
        (None, None),
        ("", None),
    ],
)
def test_openai_costs_model_from_line_item(line_item: str | None, model: str | None) -> None:
    assert model_from_line_item(line_item) == model
