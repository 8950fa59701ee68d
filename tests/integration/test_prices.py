"""Model price change tracking (tools/prices.py): snapshots, changes recorded once, their impact on a month.

A small purpose-built lake holds August 2024 usage of gpt-4o-mini (OpenAI, on demand and batch; the same
calls seen again by OpenTelemetry spans, which must not be counted twice) and of claude-3-5-sonnet. A price
change is simulated the two ways it happens: a finops.yaml override (a negotiated price) and a newer
genai-prices snapshot (an injected price lookup). Impacts are checked against figures worked out by hand
from the records below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import typer
import yaml
from typer.testing import CliRunner

from agent.cli_context import Context
from agent.jobs_base import JobContext
from agent.report_cli import register
from agent.report_jobs import price_check
from agent.slack.client import make_client
from config.model import FinOpsConfig, PriceOverride, Pricing
from config.settings import EXAMPLE_CONFIG, Settings
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.usage_builder import ingest
from tools.costs import open_costs
from tools.ingest.records import TokenCounts, UsageRecord
from tools.ingest.service import Ingestor
from tools.prices import (
    KINDS,
    OVERRIDE_SOURCE,
    ModelPrices,
    PriceLookup,
    check_prices,
    list_price_changes,
    list_price_snapshots,
    price_change_impact,
)
from tools.report import monthly_report
from tools.store.db import Database
from tools.store.lake import Lake

MINI = "gpt-4o-mini-2024-07-18"
SONNET = "claude-3-5-sonnet-20241022"
M = 1_000_000
#: OpenAI's list price of gpt-4o-mini, USD per 1M tokens (genai-prices' snapshot)
MINI_LIST = {
    "input": Decimal("0.15"),
    "cache_read": Decimal("0.075"),
    "cache_write": Decimal("0.15"),
    "output": Decimal("0.6"),
}
MINI_NEGOTIATED = {
    "input": Decimal("0.10"),
    "cache_read": Decimal("0.05"),
    "cache_write": Decimal("0.10"),
    "output": Decimal("0.50"),
}
#: August's gpt-4o-mini tokens through OpenAI's usage API, per kind: (on demand, batch)
AUGUST_MINI = {
    "input": (40 * M, 20 * M),
    "cache_read": (8 * M, 0),
    "cache_write": (0, 0),
    "output": (10 * M, 4 * M),
}
DAY1 = datetime(2024, 9, 21, 6, tzinfo=UTC)
DAY2 = datetime(2024, 9, 22, 6, tzinfo=UTC)


def _record(
    key: str,
    source: str,
    day: str,
    model: str,
    provider: str = "openai",
    *,
    input: int = 0,
    cache_read: int = 0,
    output: int = 0,
    reasoning: int = 0,
    batch: bool = False,
) -> UsageRecord:
    return UsageRecord(
        record_key=key,
        source_format=source,
        start=datetime.fromisoformat(day).replace(tzinfo=UTC),
        provider=provider,
        model=model,
        tokens=TokenCounts(input_uncached=input, cache_read=cache_read, output=output, reasoning=reasoning),
        requests=1000,
        batch=batch,
        attributes={"team": "support", "feature": "support-chat"},
    )


@pytest.fixture
def usage_lake(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> Lake:
    """August and July usage of gpt-4o-mini (usage API, plus spans of the same calls) and claude-3-5-sonnet."""
    api = [
        _record(
            "a1",
            "openai-usage",
            "2024-08-05",
            MINI,
            input=30 * M,
            cache_read=8 * M,
            output=6 * M,
            reasoning=M,
        ),
        _record("a2", "openai-usage", "2024-08-20", MINI, input=10 * M, output=3 * M),
        _record("a3", "openai-usage", "2024-08-21", MINI, input=20 * M, output=4 * M, batch=True),
        _record("a4", "openai-usage", "2024-07-15", MINI, input=99 * M, output=9 * M),  # not August
    ]
    spans = [  # the same August calls as seen by OpenTelemetry: never added to the usage API's
        _record("s1", "otel", "2024-08-05", MINI, input=29 * M, cache_read=8 * M, output=6 * M),
        _record("s2", "otel", "2024-08-07", SONNET, provider="anthropic", input=2 * M, output=M),
    ]
    ingest(ingestor, tmp_path, api, source="openai-usage", kind="openai-usage")
    ingest(ingestor, tmp_path, spans, source="otel", kind="otel")
    return lake


@pytest.fixture
def costs(usage_lake: Lake, config: FinOpsConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_costs(usage_lake, config)
    yield con
    con.close()


def negotiated(config: FinOpsConfig) -> FinOpsConfig:
    """The config with a negotiated gpt-4o-mini price (covers its dated versions)."""
    override = PriceOverride(
        model="gpt-4o-mini",
        input_per_mtok=MINI_NEGOTIATED["input"],
        output_per_mtok=MINI_NEGOTIATED["output"],
        cache_read_per_mtok=MINI_NEGOTIATED["cache_read"],
        cache_write_per_mtok=MINI_NEGOTIATED["cache_write"],
    )
    pricing = Pricing(
        batch_discount=config.pricing.batch_discount, overrides=[*config.pricing.overrides, override]
    )
    return config.model_copy(update={"pricing": pricing})


def expected_impact(kind: str) -> Decimal:
    """August's usage-API tokens of gpt-4o-mini at the negotiated minus the list price (batch at half)."""
    on_demand, batch = AUGUST_MINI[kind]
    step = MINI_NEGOTIATED[kind] - MINI_LIST[kind]
    return (on_demand * step + batch * step * Decimal("0.5")) / M


def test_check_prices_remembers_first_then_records_an_override_change_once(
    sqlite_db: Database, costs: duckdb.DuckDBPyConnection, config: FinOpsConfig
) -> None:
    assert check_prices(sqlite_db, config, DAY1, costs=costs) == []  # a first sighting is no change
    snapshots = list_price_snapshots(sqlite_db)
    assert {(s["provider"], s["model"]) for s in snapshots} == {("openai", MINI), ("anthropic", SONNET)}
    assert len(snapshots) == 2 * len(KINDS)
    mini = {s["kind"]: s for s in snapshots if s["model"] == MINI}
    assert {k: s["price"] for k, s in mini.items()} == MINI_LIST
    assert mini["input"]["source"].startswith("genai-prices ")

    changes = check_prices(sqlite_db, negotiated(config), DAY2, costs=costs)
    assert sorted(c.kind for c in changes) == sorted(KINDS)
    for c in changes:
        assert (c.provider, c.model, c.old_price, c.new_price) == (
            "openai",
            MINI,
            MINI_LIST[c.kind],
            MINI_NEGOTIATED[c.kind],
        )
        assert (c.source, c.effective_from, c.currency) == (OVERRIDE_SOURCE, DAY2.date(), "USD")
    # idempotent: the same check again, the same day or later, records nothing more
    assert check_prices(sqlite_db, negotiated(config), DAY2, costs=costs) == []
    assert check_prices(sqlite_db, negotiated(config), datetime(2024, 9, 23, tzinfo=UTC), costs=costs) == []
    assert len(list_price_changes(sqlite_db)) == len(KINDS)
    with sqlite_db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM price_changes").scalar() == len(KINDS)
        assert connection.exec_driver_sql("SELECT count(*) FROM price_snapshots").scalar() == 2 * len(KINDS)


def test_price_change_impact_is_the_months_usage_at_the_new_minus_the_old_price(
    sqlite_db: Database, costs: duckdb.DuckDBPyConnection, config: FinOpsConfig
) -> None:
    check_prices(sqlite_db, config, DAY1, costs=costs)
    changes = {c.kind: c for c in check_prices(sqlite_db, negotiated(config), DAY2, costs=costs)}
    for kind in KINDS:
        assert price_change_impact(costs, changes[kind], "2024-08") == expected_impact(kind), kind
    # input: 40M on demand x -$0.05 + 20M batch x -$0.05 x 50% = -$2.50
    assert price_change_impact(costs, changes["input"], "2024-08") == Decimal("-2.5")
    # July's usage is another month
    assert price_change_impact(costs, changes["input"], "2024-07") == Decimal("-4.95")


def test_check_prices_with_an_injected_lookup_notices_a_newer_snapshot(
    sqlite_db: Database, config: FinOpsConfig
) -> None:
    sonnet = ("anthropic", SONNET)
    old = {
        "input": Decimal(3),
        "cache_read": Decimal("0.3"),
        "cache_write": Decimal("3.75"),
        "output": Decimal(15),
    }
    new = {**old, "output": Decimal(12)}

    def snapshot(prices: dict[str, Decimal], version: str) -> PriceLookup:
        def lookup(provider: str, model: str, day: date) -> ModelPrices | None:
            return ModelPrices(prices, f"genai-prices {version}") if (provider, model) == sonnet else None

        return lookup

    assert check_prices(sqlite_db, config, DAY1, models=[sonnet], lookup=snapshot(old, "0.2.5")) == []
    # no models given: the remembered ones are checked again
    (change,) = check_prices(sqlite_db, config, DAY2, lookup=snapshot(new, "0.3.0"))
    assert (change.model, change.kind, change.old_price, change.new_price) == (
        SONNET,
        "output",
        Decimal(15),
        Decimal(12),
    )
    assert change.source == "genai-prices 0.3.0" and change.delta == Decimal(-3)
    assert check_prices(sqlite_db, config, DAY2, lookup=snapshot(new, "0.3.0")) == []
    # changed and changed back on the same day: no change left
    assert check_prices(sqlite_db, config, DAY2, lookup=snapshot(old, "0.3.0")) == []
    assert list_price_changes(sqlite_db) == []


def test_monthly_report_shows_the_price_changes_that_affect_the_months_usage(
    sqlite_db: Database, costs: duckdb.DuckDBPyConnection, config: FinOpsConfig
) -> None:
    check_prices(sqlite_db, config, DAY1, costs=costs)
    check_prices(sqlite_db, negotiated(config), DAY2, costs=costs)
    report = monthly_report(sqlite_db, costs, negotiated(config), "2024-08", as_of=DAY2.date())
    section = report.price_changes
    shown = {r.change.kind: r.impact for r in section.rows}
    # cache writes were not used in August: that change does not affect the month
    assert shown == {k: expected_impact(k) for k in ("input", "cache_read", "output")}
    assert section.without_usage == 1
    assert section.total_impact == sum(shown.values()) == Decimal("-3.90")
    assert [r.change.kind for r in section.rows] == ["input", "output", "cache_read"]  # largest first
    assert (section.changes_from, section.changes_to) == (date(2024, 8, 1), DAY2.date())
    assert {r.tokens for r in section.rows if r.change.kind == "output"} == {14 * M}


def test_price_check_job_posts_a_note_only_when_last_months_spend_moves(
    sqlite_db: Database, usage_lake: Lake, config: FinOpsConfig
) -> None:
    with FakeSlack() as fake:
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=fake.base_url)

        def run(cfg: FinOpsConfig, now: datetime, slack: bool = True) -> dict[str, object]:
            client = make_client(settings) if slack else None
            return price_check(
                JobContext(sqlite_db, usage_lake, cfg, settings, now, f"{now:%Y-%m-%d}", client)
            )

        first = run(config, DAY1)
        assert first["changes"] == 0 and first["posted"] is False and fake.calls("chat.postMessage") == []
        second = run(negotiated(config), DAY2)
        assert second["changes"] == len(KINDS) and second["posted"] is True and second["month"] == "2024-08"
        assert second["impact"] == {f"openai/{MINI}": "-3.90"}
        post = fake.last("chat.postMessage")
        assert post.params["channel"] == "#finops"
        assert MINI in json.dumps(post.params["blocks"]) and "-$3.90" in post.params["text"]
        assert run(negotiated(config), DAY2)["changes"] == 0
        assert len(fake.calls("chat.postMessage")) == 1  # recorded once, told once
        # back to the list price: a change again; without Slack it is recorded, not posted, and said so
        third = run(config, datetime(2024, 9, 23, tzinfo=UTC), slack=False)
        assert third["changes"] == len(KINDS) and third["posted"] is False and "note" in third
        assert len(fake.calls("chat.postMessage")) == 1


def test_price_check_job_stays_quiet_under_a_dollar(
    sqlite_db: Database, usage_lake: Lake, config: FinOpsConfig
) -> None:
    sonnet_cheaper = config.model_copy(
        update={
            "pricing": Pricing(
                overrides=[
                    *config.pricing.overrides,
                    PriceOverride(
                        model="claude-3-5-sonnet", input_per_mtok=Decimal("2.9"), output_per_mtok=Decimal(15)
                    ),
                ]
            )
        }
    )
    with FakeSlack() as fake:
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=fake.base_url)
        for cfg, now in ((config, DAY1), (sonnet_cheaper, DAY2)):
            out = price_check(
                JobContext(sqlite_db, usage_lake, cfg, settings, now, "x", make_client(settings))
            )
        # 2M input tokens x -$0.10 = -$0.20 in August: recorded, not worth a message
        assert out["changes"] >= 1 and out["posted"] is False
        assert out["impact"] == {f"anthropic/{SONNET}": "-0.20"}
        assert fake.calls("chat.postMessage") == []


def test_cli_prices_check_and_changes(
    sqlite_db: Database, usage_lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(usage_lake.root))
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    raw["pricing"]["overrides"].append(
        {"model": "gpt-4o-mini", "input_per_mtok": 0.10, "output_per_mtok": 0.50}
    )
    negotiated_yaml = tmp_path / "negotiated.yaml"
    negotiated_yaml.write_text(yaml.safe_dump(raw))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    url = str(sqlite_db.engine.url)

    def invoke(config: Path | None, as_of: date, *args: str) -> str:
        result = runner.invoke(app, list(args), obj=Context(url, config, as_of))
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    first = json.loads(invoke(None, date(2024, 9, 21), "prices", "check", "--format", "json"))
    assert first == {"impact_month": "2024-08", "changes": []}
    second = json.loads(invoke(negotiated_yaml, date(2024, 9, 22), "prices", "check", "--format", "json"))
    # an override without cache prices prices cache tokens at its input price (as ingestion does)
    assert {c["kind"]: Decimal(str(c["new_price"])) for c in second["changes"]} == {
        "input": Decimal("0.1"),
        "cache_read": Decimal("0.1"),
        "cache_write": Decimal("0.1"),
        "output": Decimal("0.5"),
    }
    by_kind = {c["kind"]: Decimal(str(c["impact"])) for c in second["changes"]}
    assert by_kind["input"] == Decimal("-2.5") and by_kind["cache_read"] == Decimal("0.2")  # 8M x +$0.025
    listed = json.loads(invoke(negotiated_yaml, date(2024, 9, 22), "prices", "changes", "--format", "json"))
    assert {c["kind"] for c in listed["changes"]} == set(KINDS)
    assert all(c["impact_month"] == "2024-08" for c in listed["changes"])
    table = invoke(negotiated_yaml, date(2024, 9, 22), "prices", "changes", "--model", MINI)
    assert "Recorded price changes" in table and "config override" in table


def test_a_price_note_that_could_not_be_posted_is_posted_by_the_next_run(
    sqlite_db: Database, usage_lake: Lake, config: FinOpsConfig
) -> None:
    """The change is recorded before the post: a failed post (or Slack not configured yet) must not lose the
    note — the next run posts every change not yet announced, once."""
    with FakeSlack() as fake:
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=fake.base_url)

        def run(cfg: FinOpsConfig, now: datetime) -> dict[str, object]:
            return price_check(
                JobContext(sqlite_db, usage_lake, cfg, settings, now, "x", make_client(settings))
            )

        run(config, DAY1)
        fake.fail_next("chat.postMessage", error="channel_not_found")
        with pytest.raises(Exception, match="channel_not_found"):
            run(negotiated(config), DAY2)
        retry = run(negotiated(config), DAY2)
        assert retry["changes"] == 0 and retry["posted"] is True
        assert "-$3.90" in fake.last("chat.postMessage").params["text"]
        again = run(negotiated(config), DAY2)
        assert again["posted"] is False
        assert (
            len([c for c in fake.calls("chat.postMessage") if c.status == 200 and c.response.get("ok")]) == 1
        )
