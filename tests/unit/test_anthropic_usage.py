"""Anthropic usage report and cost report parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tools.errors import IngestError
from tools.ingest.anthropic_usage import parse_anthropic_costs, parse_anthropic_usage
from tools.ingest.records import BillingRecord, Rejected, TokenCounts, UsageRecord

FIXTURES = Path(__file__).parent.parent / "fixtures" / "llm"


def _result(**overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "uncached_input_tokens": 100,
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "cache_read_input_tokens": 0,
        "output_tokens": 10,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": "apikey_1",
        "workspace_id": None,
        "model": "claude-sonnet-4-20250514",
        "service_tier": "standard",
        "context_window": "0-200k",
    }
    result.update(overrides)
    return result


def _page(*results: dict[str, Any], starting_at: Any = "2025-08-01T00:00:00Z") -> dict[str, Any]:
    return {
        "data": [{"starting_at": starting_at, "ending_at": "2025-08-02T00:00:00Z", "results": list(results)}],
        "has_more": False,
        "next_page": None,
    }


def _write(tmp_path: Path, content: Any, name: str = "report.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def _records(path: Path) -> list[UsageRecord]:
    items = list(parse_anthropic_usage(path))
    assert all(isinstance(item, UsageRecord) for item in items), items
    return [item for item in items if isinstance(item, UsageRecord)]


def test_anthropic_usage_exclusive_token_kinds_with_1h_cache_writes() -> None:
    first = _records(FIXTURES / "anthropic_usage_page.json")[0]

    assert first.tokens == TokenCounts(
        input_uncached=1500, cache_read=200, cache_write=1500, cache_write_1h=1000, output=500
    )
    assert first.tokens.total == 1500 + 200 + 1500 + 500
    assert first.provider == "anthropic"
    assert first.source_format == "anthropic-usage"
    assert first.operation == "chat"
    assert first.model == "claude-sonnet-4-20250514"
    assert first.start == datetime(2025, 8, 1, tzinfo=UTC)
    assert first.end == datetime(2025, 8, 2, tzinfo=UTC)
    assert first.batch is False
    assert first.service_tier == "standard"
    assert first.attributes == {
        "api_key_id": "apikey_01Rj2N8SVvo6BePZj99NhmiT",
        "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
        "context_window": "0-200k",
        "web_search_requests": "10",
    }
    assert first.location is not None and first.location.key == "data[0].results[0]"


def test_anthropic_usage_has_no_request_count() -> None:
    records = _records(FIXTURES / "anthropic_usage_page.json")

    assert [record.requests for record in records] == [0, 0]


def test_anthropic_usage_request_count_used_when_present(tmp_path: Path) -> None:
    records = _records(_write(tmp_path, _page(_result(num_model_requests=7), _result(requests=3))))

    assert [record.requests for record in records] == [7, 3]


def test_anthropic_usage_batch_service_tier_sets_batch() -> None:
    second = _records(FIXTURES / "anthropic_usage_page.json")[1]

    assert second.batch is True
    assert second.tokens == TokenCounts(input_uncached=100, output=50)
    assert second.attributes == {}


def test_anthropic_usage_reads_jsonl_and_list_of_pages(tmp_path: Path) -> None:
    jsonl = _write(
        tmp_path, json.dumps(_page(_result())) + "\n" + json.dumps(_page(_result())) + "\n", "p.jsonl"
    )
    as_list = _write(
        tmp_path, [_page(_result()), _page(_result(model="claude-3-5-haiku-20241022"))], "p.json"
    )

    from_jsonl = _records(jsonl)
    from_list = _records(as_list)

    assert [r.location.line for r in from_jsonl if r.location] == [1, 2]
    assert [r.location.key for r in from_list if r.location] == [
        "[0].data[0].results[0]",
        "[1].data[0].results[0]",
    ]
    assert from_list[1].model == "claude-3-5-haiku-20241022"


def test_anthropic_usage_record_key_includes_grouping(tmp_path: Path) -> None:
    records = _records(_write(tmp_path, _page(_result(), _result(api_key_id="apikey_2"))))

    assert records[0].record_key != records[1].record_key
    assert records[0].record_key.startswith("2025-08-01T00:00:00+00:00|apikey_1")


def test_anthropic_usage_rejects_negative_cache_creation(tmp_path: Path) -> None:
    bad = _result(cache_creation={"ephemeral_1h_input_tokens": -1, "ephemeral_5m_input_tokens": 0})

    items = list(parse_anthropic_usage(_write(tmp_path, _page(_result(), bad))))

    assert isinstance(items[0], UsageRecord)
    assert isinstance(items[1], Rejected)
    assert items[1].location.key == "data[0].results[1].cache_creation.ephemeral_1h_input_tokens"
    assert items[1].location.line == 1
    assert "negative" in items[1].reason


def test_anthropic_usage_rejects_missing_uncached_input(tmp_path: Path) -> None:
    result = _result()
    del result["uncached_input_tokens"]

    items = list(parse_anthropic_usage(_write(tmp_path, _page(result))))

    assert isinstance(items[0], Rejected)
    assert items[0].location.key == "data[0].results[0].uncached_input_tokens"


def test_anthropic_usage_rejects_unparsable_starting_at(tmp_path: Path) -> None:
    items = list(parse_anthropic_usage(_write(tmp_path, _page(_result(), starting_at="01/08/2025"))))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].location.key == "data[0].starting_at"


def test_anthropic_usage_wrong_shape_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as info:
        list(parse_anthropic_usage(_write(tmp_path, {"data": [{"starting_at": "2025-08-01T00:00:00Z"}]})))

    assert info.value.location.key == "data[0]"
    assert "results" in info.value.problem


def test_anthropic_costs_amount_in_cents_divided_exactly() -> None:
    items = list(parse_anthropic_costs(FIXTURES / "anthropic_cost_page.json"))

    records = [item for item in items if isinstance(item, BillingRecord)]
    assert len(records) == 2
    assert records[0].amount == Decimal("1.2345")
    assert records[1].amount == Decimal("0.000001")
    assert [record.currency for record in records] == ["USD", "USD"]
    assert records[0].model == "claude-sonnet-4-20250514"
    assert records[0].line_item == "Claude Sonnet 4 Usage - Input Tokens"
    assert records[0].attributes == {
        "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
        "cost_type": "tokens",
        "token_type": "uncached_input_tokens",
        "service_tier": "standard",
        "context_window": "0-200k",
    }
    assert records[1].model is None
    assert records[0].provider == "anthropic"
    assert records[0].source_format == "anthropic-costs"
    assert records[0].start == datetime(2025, 8, 1, tzinfo=UTC)
    assert records[0].record_key != records[1].record_key


def test_anthropic_costs_rejects_bad_amount(tmp_path: Path) -> None:
    page = _page({"currency": "USD", "amount": "twelve", "description": "x"}, {"currency": "USD"})

    items = list(parse_anthropic_costs(_write(tmp_path, page)))

    assert [type(item) for item in items] == [Rejected, Rejected]
    assert isinstance(items[0], Rejected) and isinstance(items[1], Rejected)
    assert items[0].location.key == "data[0].results[0].amount"
    assert items[1].location.key == "data[0].results[1].amount"
    assert "no amount" in items[1].reason
