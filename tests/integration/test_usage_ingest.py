"""LLM usage and provider billing files through the real parsers, pricing and ingestion service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from agent.ingest_cli import ingest
from config.loader import parse_config
from config.model import FinOpsConfig
from tests.conftest import FIXTURES
from tools.costs import CostQuery, open_costs, query_costs
from tools.errors import IngestError
from tools.periods import Period
from tools.store.db import Database
from tools.store.lake import Lake

LLM = FIXTURES / "llm"
AUG_2025 = Period(date(2025, 8, 1), date(2025, 9, 1), "2025-08")


def test_openai_costs_are_the_total_and_usage_keeps_its_tokens(
    sqlite_db: Database, lake: Lake, config: FinOpsConfig
) -> None:
    ingest(sqlite_db, lake, config, "openai-costs", [LLM / "openai_costs_page.json"], "openai-costs")
    con = open_costs(lake)
    (billed,) = con.execute("SELECT sum(billed_cost) FROM cost_facts").fetchall()[0]
    ingest(sqlite_db, lake, config, "openai-usage", [LLM / "openai_usage_page.json"], "openai-usage")
    con = open_costs(lake)
    assert query_costs(con, CostQuery(AUG_2025, metric="billed")).total == billed
    tokens = con.execute("SELECT sum(total_tokens), sum(cache_read_tokens) FROM usage_facts").fetchall()[0]
    assert tokens[0] == 1000 + 500 + 4000 + 1000 + 70 + 30 and tokens[1] == 200


def test_price_override_in_config_prices_usage(sqlite_db: Database, lake: Lake, tmp_path: Path) -> None:
    config = parse_config(
        "pricing:\n  overrides:\n    - {model: gpt-4o, input_per_mtok: 1, output_per_mtok: 2,"
        " cache_read_per_mtok: 0.5}\n"
    )
    ingest(sqlite_db, lake, config, "openai-usage", [LLM / "openai_usage_page.json"], "openai-usage")
    rows = dict(
        open_costs(lake)
        .execute("SELECT model, cost FROM usage_facts WHERE model = 'gpt-4o-2024-08-06'")
        .fetchall()
    )
    # 800 uncached input at $1/M + 200 cache reads at $0.5/M + 500 output at $2/M
    assert rows["gpt-4o-2024-08-06"] == Decimal("0.0008") + Decimal("0.0001") + Decimal("0.001")
    sources = {r[0] for r in open_costs(lake).execute("SELECT price_source FROM usage_facts").fetchall()}
    assert "override" in sources


def test_every_usage_format_lands_with_resolved_dimensions(
    sqlite_db: Database, lake: Lake, config: FinOpsConfig
) -> None:
    for kind, name in [
        ("otel", "otel_spans.json"),
        ("litellm", "litellm_spend_logs.json"),
        ("anthropic-usage", "anthropic_usage_page.json"),
    ]:
        ingest(sqlite_db, lake, config, kind, [LLM / name], kind)
    con = open_costs(lake)
    formats = {r[0] for r in con.execute("SELECT DISTINCT source_format FROM usage_facts").fetchall()}
    assert formats == {"otel", "litellm", "anthropic-usage"}
    assert con.execute("SELECT count(*) FROM usage_facts WHERE total_tokens < 0").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM usage_facts WHERE workload = 'inference'").fetchall()[0][0] > 0


def test_a_file_that_is_not_json_is_refused_and_nothing_lands(
    sqlite_db: Database, lake: Lake, config: FinOpsConfig, tmp_path: Path
) -> None:
    bad = tmp_path / "usage.json"
    bad.write_text("this is not json\n")
    with pytest.raises(IngestError) as err:
        ingest(sqlite_db, lake, config, "openai-usage", [LLM / "openai_usage_page.json", bad], "openai-usage")
    assert "usage.json" in str(err.value) and "line 1" in str(err.value)
    assert lake.files("usage") == []
