"""The demo organisation: deterministic, realistic input files (see tools/demo_data.py)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tools.demo_data import (
    ANTHROPIC_AGENT_KEY,
    DEMO_AS_OF,
    DEMO_END,
    DEMO_START,
    FOCUS_COLUMNS,
    IDLE_ENDPOINT_FROM,
    IDLE_ENDPOINT_NAME,
    QUERY_REWRITE_SPIKE_DAY,
    TRAINING_CLUSTER_B_START,
    DemoFiles,
    generate_demo_files,
)

TEAMS = {"search", "support", "platform", "ml-research", "growth", "data"}
AWS_DT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
AZURE_DT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

# public list prices, USD per 1M tokens: input, cached input, output (independent of the module's table)
OPENAI_PRICES = {
    "gpt-4o-2024-08-06": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4o-mini-2024-07-18": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "text-embedding-3-small": (Decimal("0.02"), Decimal("0.02"), Decimal("0")),
}

FocusFile = tuple[Path, list[str], list[dict[str, str]]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return generate_demo_files(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def focus(demo: DemoFiles) -> dict[str, list[FocusFile]]:
    out: dict[str, list[FocusFile]] = {}
    for source, paths in demo.focus.items():
        for path in paths:
            if path.suffix == ".gz":
                text = gzip.decompress(path.read_bytes()).decode("utf-8")
            else:
                text = path.read_text(encoding="utf-8")
            reader = csv.DictReader(text.splitlines())
            rows = list(reader)
            out.setdefault(source, []).append((path, list(reader.fieldnames or []), rows))
    return out


@pytest.fixture(scope="module")
def spans(demo: DemoFiles) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(resource attributes, span) pairs."""
    result: list[tuple[dict[str, str], dict[str, Any]]] = []
    for line in demo.otel_spans.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        for rs in doc["resourceSpans"]:
            resource = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                result += [(resource, span) for span in ss["spans"]]
    return result


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for a in span["attributes"]:
        value = a["value"]
        if "intValue" in value:
            assert isinstance(value["intValue"], str), "OTLP/JSON writes int64 as strings"
            values[a["key"]] = int(value["intValue"])
        elif "stringValue" in value:
            values[a["key"]] = value["stringValue"]
        else:
            values[a["key"]] = value
    return values


def _parse_dt(text: str) -> datetime:
    fmt = "%Y-%m-%dT%H:%M:%SZ" if text.endswith("Z") else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _digests(root: Path, files: DemoFiles) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files.all_files()}


def _pages_data(path: Path) -> list[dict[str, Any]]:
    pages = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(pages, list) and pages
    for page in pages[:-1]:
        assert page["has_more"] is True and page["next_page"]
        assert len(page["data"]) <= 31
    assert pages[-1]["has_more"] is False and pages[-1]["next_page"] is None
    return [bucket for page in pages for bucket in page["data"]]


# --- determinism ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_generate_demo_files_same_seed_is_byte_identical(demo: DemoFiles, tmp_path: Path) -> None:
    root = demo.openai_usage.parents[1]
    again = generate_demo_files(tmp_path / "again")
    first, second = _digests(root, demo), _digests(tmp_path / "again", again)
    assert len(first) == 17
    assert first == second


@pytest.mark.slow
def test_generate_demo_files_other_seed_differs(demo: DemoFiles, tmp_path: Path) -> None:
    root = demo.openai_usage.parents[1]
    other = generate_demo_files(tmp_path / "other", seed=7)
    first, second = _digests(root, demo), _digests(tmp_path / "other", other)
    assert first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert len(differing) >= 15, differing


def test_generate_demo_files_layout(demo: DemoFiles) -> None:
    assert sorted(demo.focus) == ["aws-payer", "azure-ea", "gcp-billing"]
    for source, paths in demo.focus.items():
        assert len(paths) == 4, source  # June .. September 2024
        suffix = ".csv.gz" if source == "aws-payer" else ".csv"
        assert all(p.name.endswith(suffix) and p.stat().st_size > 0 for p in paths)
    assert (date(2024, 6, 1), date(2024, 9, 21), date(2024, 9, 21)) == (DEMO_START, DEMO_END, DEMO_AS_OF)


# --- FOCUS ------------------------------------------------------------------------------------------


def test_focus_files_have_columns_and_consistent_billing_periods(focus: dict[str, list[FocusFile]]) -> None:
    extras = {
        "aws-payer": {"x_UsageType", "x_Operation"},
        "azure-ea": {"ResourceGroupName"},
        "gcp-billing": {"x_ProjectNumber"},
    }
    for source, files in focus.items():
        for path, header, rows in files:
            assert set(FOCUS_COLUMNS) | extras[source] <= set(header), path
            assert rows, path
            periods = {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in rows}
            assert len(periods) == 1, path
            (start_text, end_text) = periods.pop()
            start, end = _parse_dt(start_text), _parse_dt(end_text)
            assert start.day == 1 and start.hour == 0 and end.day == 1 and end > start
            assert (end - start) <= timedelta(days=31)
            for r in rows:
                charge_start, charge_end = _parse_dt(r["ChargePeriodStart"]), _parse_dt(r["ChargePeriodEnd"])
                assert start <= charge_start < end, (path, r["ChargePeriodStart"])
                assert charge_start < charge_end <= end


def test_focus_real_export_quirks_present(focus: dict[str, list[FocusFile]]) -> None:
    aws = [r for _, _, rows in focus["aws-payer"] for r in rows]
    azure = [r for _, _, rows in focus["azure-ea"] for r in rows]
    gcp = [r for _, _, rows in focus["gcp-billing"] for r in rows]
    assert any(r["ChargeClass"] == "NULL" for r in aws) and not any("NULL" in r.values() for r in azure + gcp)
    assert all(AWS_DT.match(r["ChargePeriodStart"]) for r in aws + gcp)
    assert all(
        AZURE_DT.match(r["ChargePeriodStart"]) and AZURE_DT.match(r["BillingPeriodEnd"]) for r in azure
    )
    assert any(r["ChargeCategory"] == "usage" for r in azure)
    assert any(r["ChargeFrequency"] == "Usage-based" for r in azure)
    assert any(Decimal(r["BilledCost"]) < 0 for r in aws)
    categories = Counter(r["ChargeCategory"] for r in aws)
    assert categories["Tax"] >= 3 and categories["Purchase"] == 1 and categories["Credit"] == 1
    purchase = next(r for r in aws if r["ChargeCategory"] == "Purchase")
    assert purchase["ChargeFrequency"] == "One-Time" and "Savings Plan" in purchase["CommitmentDiscountType"]
    # tags: JSON objects, mostly strings, a number, a bool and a null somewhere; untagged rows too
    values = [
        v for r in aws + azure + gcp if r["Tags"] not in ("", "NULL") for v in json.loads(r["Tags"]).values()
    ]
    assert any(isinstance(v, bool) for v in values)
    assert any(isinstance(v, int) and not isinstance(v, bool) for v in values)
    assert any(v is None for v in values)
    assert sum(isinstance(v, str) for v in values) > 0.95 * len(values)
    # decimal strings with up to 10 decimals
    assert all(re.match(r"^-?\d+(\.\d{1,10})?$", r["BilledCost"]) for r in aws + azure + gcp)
    # hourly rows for GPU instances and SageMaker endpoints
    hourly = {
        r["ResourceName"]
        for r in aws
        if _parse_dt(r["ChargePeriodEnd"]) - _parse_dt(r["ChargePeriodStart"]) == timedelta(hours=1)
    }
    assert any(name.startswith("p4d-") for name in hourly) and IDLE_ENDPOINT_NAME in hourly
    environments = {
        json.loads(r["Tags"]).get("environment") for r in aws + azure + gcp if r["Tags"] not in ("", "NULL")
    }
    assert {"prod", "production", "dev", "staging"} <= environments


def test_focus_costs_commitment_and_list(focus: dict[str, list[FocusFile]]) -> None:
    rows = [r for files in focus.values() for _, _, rs in files for r in rs]
    assert all(Decimal(r["ListCost"]) >= Decimal(r["EffectiveCost"]) for r in rows)
    committed = [r for r in rows if r["PricingCategory"] == "Committed"]
    assert committed and all(Decimal(r["EffectiveCost"]) < Decimal(r["BilledCost"]) for r in committed)
    assert {r["ServiceName"] for r in committed} == {"Amazon Elastic Compute Cloud"}
    bedrock = [r for r in rows if r["ServiceName"] == "Amazon Bedrock"]
    assert bedrock and all(r["ServiceSubcategory"] == "Generative AI" for r in bedrock)
    assert all("anthropic.claude-3-5-haiku" in r["ResourceName"] for r in bedrock)


def test_focus_tags_cover_teams_and_untagged_share(focus: dict[str, list[FocusFile]]) -> None:
    rows = [r for files in focus.values() for _, _, rs in files for r in rs]
    teams = {json.loads(r["Tags"]).get("team") for r in rows if r["Tags"] not in ("", "NULL")}
    assert len(TEAMS & teams) >= 5
    total = sum(Decimal(r["BilledCost"]) for r in rows)
    untagged = sum(
        Decimal(r["BilledCost"])
        for r in rows
        if r["Tags"] in ("", "NULL") or "team" not in json.loads(r["Tags"])
    )
    assert Decimal("0.04") <= untagged / total <= Decimal("0.09")
    # the partly tagged resource: same ResourceId with and without tags
    by_resource: dict[str, set[bool]] = defaultdict(set)
    for r in rows:
        by_resource[r["ResourceId"]].add(r["Tags"] in ("", "NULL"))
    assert any(flags == {True, False} for flags in by_resource.values())


def test_focus_days_covered_and_monthly_totals(focus: dict[str, list[FocusFile]]) -> None:
    rows = [r for files in focus.values() for _, _, rs in files for r in rs]
    days = {_parse_dt(r["ChargePeriodStart"]).date() for r in rows}
    assert len(days) >= 90 and min(days) == DEMO_START and max(days) == DEMO_END - timedelta(days=1)
    by_month: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        by_month[r["ChargePeriodStart"][:7]] += Decimal(r["BilledCost"])
    for month in ("2024-06", "2024-07", "2024-08"):
        assert Decimal(200_000) < by_month[month] < Decimal(400_000), (month, by_month[month])


def test_focus_level_shift_and_idle_endpoint(focus: dict[str, list[FocusFile]]) -> None:
    aws = [r for _, _, rows in focus["aws-payer"] for r in rows]
    p4d_hours: Counter[date] = Counter()
    endpoint_gb: dict[date, Decimal] = defaultdict(Decimal)
    endpoint_cost: dict[date, Decimal] = defaultdict(Decimal)
    for r in aws:
        day = _parse_dt(r["ChargePeriodStart"]).date()
        if r["ResourceName"].startswith("p4d-"):
            p4d_hours[day] += 1
        if r["ResourceName"] == IDLE_ENDPOINT_NAME:
            if r["PricingUnit"] == "GB":
                endpoint_gb[day] += Decimal(r["ConsumedQuantity"])
            else:
                endpoint_cost[day] += Decimal(r["BilledCost"])
    shift = TRAINING_CLUSTER_B_START.date()
    assert p4d_hours[shift + timedelta(days=1)] == 2 * p4d_hours[shift - timedelta(days=1)]
    before, after = IDLE_ENDPOINT_FROM - timedelta(days=3), IDLE_ENDPOINT_FROM + timedelta(days=3)
    assert endpoint_cost[before] == endpoint_cost[after] > 0
    assert endpoint_gb[after] < Decimal("0.01") < endpoint_gb[before]


# --- OpenAI -----------------------------------------------------------------------------------------


def test_openai_usage_and_costs_describe_the_same_usage(demo: DemoFiles) -> None:
    usage = _pages_data(demo.openai_usage)
    costs = _pages_data(demo.openai_costs)
    assert [b["start_time"] for b in usage] == [b["start_time"] for b in costs]
    assert len(usage) >= 90 and all(b["end_time"] - b["start_time"] == 86_400 for b in usage)
    expected: dict[tuple[int, str, str], Decimal] = defaultdict(Decimal)
    for bucket in usage:
        for r in bucket["results"]:
            model, batch = r["model"], bool(r.get("batch"))
            cached = r.get("input_cached_tokens", 0)
            assert r["input_tokens"] >= cached  # OpenAI counts cached tokens inside input_tokens
            factor = Decimal("0.5") if batch else Decimal(1)
            p_in, p_cached, p_out = (p * factor / 1_000_000 for p in OPENAI_PRICES[model])
            prefix = "batch " if batch else ""
            key = (bucket["start_time"], r["project_id"])
            expected[(*key, f"{model}, {prefix}input")] += (
                Decimal(r["input_tokens"] - cached) * p_in
            ).quantize(Decimal("1E-6"))
            if cached:
                expected[(*key, f"{model}, {prefix}cached input")] += (Decimal(cached) * p_cached).quantize(
                    Decimal("1E-6")
                )
            if r.get("output_tokens"):
                expected[(*key, f"{model}, {prefix}output")] += (
                    Decimal(r["output_tokens"]) * p_out
                ).quantize(Decimal("1E-6"))
    actual: dict[tuple[int, str, str], Decimal] = {}
    for bucket in costs:
        for r in bucket["results"]:
            assert r["amount"]["currency"] == "usd"
            actual[(bucket["start_time"], r["project_id"], r["line_item"])] = Decimal(
                str(r["amount"]["value"])
            )
    assert actual == dict(expected)
    assert {k[1] for k in actual} == {"proj_search01", "proj_growth01"}
    batch_results = [r for b in usage for r in b["results"] if r.get("batch")]
    assert batch_results and all(r["project_id"] == "proj_growth01" for r in batch_results)


def test_openai_query_rewrite_spike(demo: DemoFiles) -> None:
    usage = _pages_data(demo.openai_usage)
    daily: dict[date, int] = {}
    for bucket in usage:
        day = datetime.fromtimestamp(bucket["start_time"], tz=UTC).date()
        daily[day] = sum(
            r["num_model_requests"]
            for r in bucket["results"]
            if r["project_id"] == "proj_search01" and r["model"] == "gpt-4o-mini-2024-07-18"
        )
    spike = daily[QUERY_REWRITE_SPIKE_DAY]
    same_weekday = daily[QUERY_REWRITE_SPIKE_DAY - timedelta(days=7)]
    assert 3 < spike / same_weekday < 5


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_uncached_input_excludes_cache(
    demo: DemoFiles, spans: list[tuple[dict[str, str], dict[str, Any]]]
) -> None:
    buckets = _pages_data(demo.anthropic_usage)
    assert len(buckets) >= 90
    usage_total = usage_read = 0
    for bucket in buckets:
        assert bucket["starting_at"].endswith("T00:00:00Z") and bucket["ending_at"].endswith("T00:00:00Z")
        for r in bucket["results"]:
            assert r["workspace_id"] == "wrkspc_support" and r["service_tier"] == "standard"
            writes = (
                r["cache_creation"]["ephemeral_5m_input_tokens"]
                + r["cache_creation"]["ephemeral_1h_input_tokens"]
            )
            if r["model"] == "claude-3-5-sonnet-20241022" and r["api_key_id"] == ANTHROPIC_AGENT_KEY:
                usage_total += r["uncached_input_tokens"] + r["cache_read_input_tokens"] + writes
                usage_read += r["cache_read_input_tokens"]
    span_total = span_read = 0
    for _, span in spans:
        a = _attrs(span)
        if (
            a["gen_ai.provider.name"] == "anthropic"
            and a["gen_ai.response.model"] == "claude-3-5-sonnet-20241022"
        ):
            # OTel: input_tokens include cache reads and writes
            assert a["gen_ai.usage.input_tokens"] >= a.get("gen_ai.usage.cache_read.input_tokens", 0) + a.get(
                "gen_ai.usage.cache_creation.input_tokens", 0
            )
            span_total += a["gen_ai.usage.input_tokens"]
            span_read += a.get("gen_ai.usage.cache_read.input_tokens", 0)
    # the cache-read share of all input agrees only if uncached_input_tokens excludes the cache
    assert usage_read > 0 and span_read > 0
    assert abs(usage_read / usage_total - span_read / span_total) < 0.05


# --- OTel spans -------------------------------------------------------------------------------------


def test_otel_spans_parse_and_describe_agent_tasks(
    demo: DemoFiles, spans: list[tuple[dict[str, str], dict[str, Any]]]
) -> None:
    assert 20_000 <= len(spans) <= 40_000
    services = Counter(resource["service.name"] for resource, _ in spans)
    assert set(services) == {"support-agent", "search-api"}
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    providers: set[str] = set()
    features: set[str] = set()
    days: set[date] = set()
    for resource, span in spans:
        assert re.match(r"^[0-9a-f]{32}$", span["traceId"]) and re.match(r"^[0-9a-f]{16}$", span["spanId"])
        assert int(span["endTimeUnixNano"]) > int(span["startTimeUnixNano"])
        a = _attrs(span)
        assert a["gen_ai.operation.name"] == "chat"
        providers.add(a["gen_ai.provider.name"])
        features.add(a["finops.feature"])
        days.add(datetime.fromtimestamp(int(span["startTimeUnixNano"]) // 10**9, tz=UTC).date())
        if resource["service.name"] == "support-agent":
            assert (
                resource["finops.team"] == "support"
                and resource["deployment.environment.name"] == "production"
            )
            tasks[a["gen_ai.conversation.id"]].append(span)
    assert providers == {"azure.ai.openai", "anthropic", "openai"}
    assert features == {"support-chat", "ticket-summary", "query-rewrite", "rerank"}
    assert len(days) >= 90
    sizes = Counter(len(task) for task in tasks.values())
    assert min(sizes) >= 3 and max(sizes) <= 8
    failed = [t for t in tasks.values() if any(s["status"].get("code") == 2 for s in t)]
    assert 0 < len(failed) < 0.1 * len(tasks)


# --- LiteLLM ----------------------------------------------------------------------------------------


def test_litellm_logs_match_the_bedrock_bill(demo: DemoFiles, focus: dict[str, list[FocusFile]]) -> None:
    with demo.litellm_spend_logs.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert 1000 <= len(rows) <= 10_000
    assert {r["status"] for r in rows} == {"success", "failure"}
    assert {r["custom_llm_provider"] for r in rows} == {"bedrock", "openai"}
    gateway: dict[tuple[date, str], int] = defaultdict(int)
    for r in rows:
        tags = json.loads(r["request_tags"])
        assert "team:growth" in tags and json.loads(r["metadata"])["user_api_key_team_alias"] == "growth"
        Decimal(r["spend"])
        if r["custom_llm_provider"] == "bedrock" and r["status"] == "success" and r["cache_hit"] == "False":
            day = datetime.strptime(r["startTime"], "%Y-%m-%d %H:%M:%S.%f").date()
            gateway[(day, "input")] += int(r["prompt_tokens"])
            gateway[(day, "output")] += int(r["completion_tokens"])
        if r["model"] == "llama-3.1-8b-instruct":
            assert "environment:dev" in tags
    billed: dict[tuple[date, str], int] = defaultdict(int)
    for _, _, focus_rows in focus["aws-payer"]:
        for r in focus_rows:
            if r["ServiceName"] == "Amazon Bedrock":
                kind = "input" if "input" in r["SkuId"] else "output"
                billed[(_parse_dt(r["ChargePeriodStart"]).date(), kind)] += int(
                    Decimal(r["ConsumedQuantity"])
                )
    assert billed == dict(gateway)
