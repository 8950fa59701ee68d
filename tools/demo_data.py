"""A seeded, deterministic demo organisation, written as the real input files the product ingests.

``generate_demo_files(out_dir, seed)`` writes ~112 days (2024-06-01 .. 2024-09-20; the demo's "today"
is 2024-09-21) of cloud bills and LLM usage for the organisation of ``config/finops.example.yaml``
(teams search, support, platform, ml-research, growth, data). Same seed -> byte-identical files: only
the seeded RNGs and fixed dates are used, gzip writes mtime=0, every collection is ordered.

Files (all under ``out_dir``)::

    focus/aws-payer/aws-payer-focus-YYYY-MM.csv.gz   FOCUS 1.1 export, AWS payer 999988887777
    focus/azure-ea/azure-ea-focus-YYYY-MM.csv        FOCUS 1.1 export, Azure EA ea-7001
    focus/gcp-billing/gcp-billing-focus-YYYY-MM.csv  FOCUS 1.1 export, GCP 01ABCD-234567-89EFGH
    openai/usage_completions.json   JSON array of pages of GET /v1/organization/usage/completions
    openai/costs.json               JSON array of pages of GET /v1/organization/costs
    anthropic/usage_report_messages.json   JSON array of pages of the Anthropic messages usage report
    otel/spans.jsonl                OTLP/JSON ExportTraceServiceRequest documents, one per line
    litellm/spend_logs.csv          LiteLLM_SpendLogs export

Real-export quirks included on purpose: ``NULL`` for null in the AWS files (empty strings elsewhere);
datetimes ``YYYY-MM-DDTHH:MM:SSZ`` (AWS, GCP) and ``YYYY-MM-DD HH:MM:SS`` (Azure); AWS extras
``x_UsageType``/``x_Operation``, GCP ``x_ProjectNumber``, an Azure extra without the prefix
(``ResourceGroupName``); lowercase enumeration variants in Azure (ChargeCategory ``usage`` on Blob
Storage rows, ChargeFrequency ``Usage-based`` on every Azure usage row); Tags as JSON objects with
mostly string values, a number (``cost_center: 1600`` on the data lake bucket), a bool
(``ephemeral: true`` on CI runners) and a null (``owner: null`` on the search staging nodes);
EC2 GPU (p4d.24xlarge) and SageMaker endpoint rows hourly, everything else daily; Tax, Credit
(negative) and Purchase (one-time Savings Plan) rows. Environments are written as prod / production /
Production / dev / staging to exercise the taxonomy aliases.

Billing vs usage: the same dollars arrive twice on purpose. The Azure OpenAI FOCUS charges are the bill
for the support agent's gpt-4o / gpt-4o-mini calls seen in the spans; the Amazon Bedrock FOCUS charges
equal the LiteLLM gateway's successful, non-cached Bedrock rows (same day, tokens and prices); the OpenAI
costs pages price exactly the tokens of the OpenAI usage pages (list prices, batch 50 % off, 6 decimals).
Anthropic has no cost report here: the product must estimate it from ``anthropic_usage``.

Sampling: the OTel spans are a head sample of whole traces. Each span is one request; a trace is kept
with probability 1/``SUPPORT_AGENT_SAMPLE_RATE`` (support-agent, one trace = one agent task) or
1/``SEARCH_API_SAMPLE_RATE`` (search-api, one trace = one search request). Every span carries the W3C
``traceState`` ``ot=th:<threshold>`` of OpenTelemetry consistent probability sampling, so its adjusted
count (the number of requests it stands for) is the sample rate. LiteLLM rows are not sampled: one row
is one request.

Injected events (for anomaly / waste detection):

- 2024-06-01 .. 2024-09-20: weekday > weekend for interactive workloads (LLM calls, search-api
  autoscaling group, BigQuery, CI runners), mild growth (~0.1-0.2 %/day), multiplicative noise.
- 2024-07-01: a one-time Savings Plan purchase (Purchase row, $6,000) that from then on covers one of
  platform's EKS nodes (EffectiveCost 28 % below BilledCost, PricingCategory Committed).
- 2024-07-04 00:00 .. 2024-07-05 12:00: ml-research's p4d cluster A is stopped (no hourly rows).
- 2024-07-15 onwards: SageMaker endpoint ``churn-model-v2`` (ml.g5.2xlarge, hourly rows) sits idle:
  same hosting cost every hour, its data-processed rows drop to ~0 (no invocations).
- 2024-08-01 .. 2024-08-31: support-chat tokens per request drift up linearly (x1.0 -> x1.8), and stay
  there in September (Azure OpenAI gpt-4o cost, Anthropic sonnet tokens, span input tokens).
- 2024-08-15: an AWS credit of -$2,500 (Credit row).
- 2024-08-19 09:00 onwards: ml-research starts p4d training cluster B (3 x p4d.24xlarge, hourly rows)
  beside cluster A (3 x p4d.24xlarge): a level shift of ~+$2.4k/day (~+$71k/month) for ml-research.
- 2024-09-10: a one-day ~4x spike of search's query-rewrite calls (gpt-4o-mini, proj_search01) - a
  retry loop - in the OpenAI usage and costs pages and in the search-api spans.

Untagged spend (~5-8 % of the total): the research account's notebooks, EBS volumes and scratch bucket
(never tagged; the account's usual team is ml-research), the prod NAT gateway, AWS Support, Tax, the
Savings Plan purchase and the credit, Amazon Bedrock (allocated by the LiteLLM logs), a GCP scratch VM
in the ml-research project, an Azure VM tagged only with ``owner: fay@example.com`` (data's owner), and
search's ``search-reindex-worker`` EC2 instance, whose tags are missing on some days.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

DEMO_START = date(2024, 6, 1)  # first day with data (inclusive)
DEMO_END = date(2024, 9, 21)  # exclusive: data through 2024-09-20
DEMO_AS_OF = date(2024, 9, 21)  # the demo's "today"
DEFAULT_SEED = 20240921

# --- injected events -------------------------------------------------------------------------------
QUERY_REWRITE_SPIKE_DAY = date(2024, 9, 10)
QUERY_REWRITE_SPIKE_FACTOR = 4
TRAINING_CLUSTER_B_START = datetime(2024, 8, 19, 9, tzinfo=UTC)
IDLE_ENDPOINT_FROM = date(2024, 7, 15)
IDLE_ENDPOINT_NAME = "churn-model-v2"
SUPPORT_CHAT_DRIFT_START = date(2024, 8, 1)
SUPPORT_CHAT_DRIFT_END = date(2024, 9, 1)
SUPPORT_CHAT_DRIFT_FACTOR = 1.8
SAVINGS_PLAN_START = date(2024, 7, 1)
CREDIT_DAY = date(2024, 8, 15)

# --- sampling of the OTel spans (one trace kept in N) -------------------------------------------------
SUPPORT_AGENT_SAMPLE_RATE = 64
SEARCH_API_SAMPLE_RATE = 512
_TRACE_STATE = {64: "ot=th:fc", 512: "ot=th:ff8"}  # rejection threshold = 1 - 1/N, as hex fraction

# --- identities shared with config/finops.example.yaml ---------------------------------------------
OPENAI_SEARCH_PROJECT = "proj_search01"
OPENAI_GROWTH_PROJECT = "proj_growth01"
ANTHROPIC_WORKSPACE = "wrkspc_support"
ANTHROPIC_AGENT_KEY = "apikey_01SupportAgentProd7Qx"
ANTHROPIC_EVALS_KEY = "apikey_01SupportEvals9Lm2Wd"
AWS_PAYER = "999988887777"
AWS_PROD = "111122223333"
AWS_RESEARCH = "444455556666"
AZURE_SUBSCRIPTION = "5c1e7f2a-9b3d-4e8f-a0c6-1d2e3f4a5b6c"
GCP_DATA_PROJECT = "acme-data-prod"
GCP_ML_PROJECT = "acme-ml-research"

#: FOCUS columns written by every source (provider extras follow, see ``FOCUS_EXTRA_COLUMNS``).
FOCUS_COLUMNS: tuple[str, ...] = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceSubcategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)
FOCUS_EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    "aws-payer": ("x_UsageType", "x_Operation"),
    "azure-ea": ("ResourceGroupName",),
    "gcp-billing": ("x_ProjectNumber",),
}

#: USD per 1M tokens: (input, cached input, output). Batch: 50 % off.
OPENAI_LIST_PRICES: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "gpt-4o-2024-08-06": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4o-mini-2024-07-18": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    "text-embedding-3-small": (Decimal("0.02"), Decimal("0.02"), Decimal("0")),
}
OPENAI_BATCH_DISCOUNT = Decimal("0.5")
#: Bedrock on-demand, USD per 1K tokens: (input, output).
BEDROCK_HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
BEDROCK_PRICES_PER_1K = {BEDROCK_HAIKU: (Decimal("0.0008"), Decimal("0.004"))}
LLAMA_PRICE_PER_1M = Decimal("0.20")  # config override, input and output

_TEAM_OWNER = {
    "search": "ana@example.com",
    "support": "ben@example.com",
    "platform": "chen@example.com",
    "ml-research": "dana@example.com",
    "growth": "eli@example.com",
    "data": "fay@example.com",
}
_COST_CENTER = {
    "search": "CC-1100",
    "support": "CC-1200",
    "platform": "CC-1300",
    "ml-research": "CC-1400",
    "growth": "CC-1500",
    "data": "CC-1600",
}

_Q10 = Decimal("1E-10")
_Q6 = Decimal("1E-6")
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class DemoFiles:
    """Where ``generate_demo_files`` wrote each input."""

    focus: dict[str, list[Path]]  # source name -> FOCUS files, one per billing month
    openai_usage: Path
    openai_costs: Path
    anthropic_usage: Path
    otel_spans: Path
    litellm_spend_logs: Path

    def all_files(self) -> list[Path]:
        files = [p for source in sorted(self.focus) for p in self.focus[source]]
        files += [
            self.openai_usage,
            self.openai_costs,
            self.anthropic_usage,
            self.otel_spans,
            self.litellm_spend_logs,
        ]
        return files


# ==================================================================================================
# small helpers
# ==================================================================================================


def _days() -> list[date]:
    return [DEMO_START + timedelta(days=i) for i in range((DEMO_END - DEMO_START).days)]


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _month_start(d: date) -> datetime:
    return datetime(d.year, d.month, 1, tzinfo=UTC)


def _next_month(d: date) -> datetime:
    return datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC)


def _weekday(d: date, weekend: float) -> float:
    return 1.0 if d.weekday() < 5 else weekend


def _trend(d: date, per_day: float) -> float:
    return 1.0 + per_day * (d - DEMO_START).days


def _noise(rng: random.Random, sigma: float) -> float:
    return math.exp(rng.gauss(0.0, sigma))


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@functools.cache
def _code(text: str, n: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def _dec(x: float, places: int = 4) -> Decimal:
    return Decimal(f"{x:.{places}f}")


@functools.lru_cache(maxsize=65536)
def _ts(dt: datetime, fmt: str) -> str:
    return dt.strftime(fmt)


@functools.lru_cache(maxsize=4096)
def _period(d: date, fmt: str) -> tuple[str, str]:
    return _month_start(d).strftime(fmt), _next_month(d).strftime(fmt)


def _fmt(v: Decimal) -> str:
    q = v.quantize(_Q10, rounding=ROUND_HALF_EVEN)
    if q == 0:
        return "0"
    s = f"{q:f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _tags(
    team: str, project: str, environment: str, *, owner: bool = True, **extra: object
) -> dict[str, object]:
    tags: dict[str, object] = {"team": team, "project": project, "environment": environment}
    if owner:
        tags["owner"] = _TEAM_OWNER[team]
    tags["cost_center"] = _COST_CENTER[team]
    tags.update(extra)
    return tags


def _unix(d: date) -> int:
    return int(_midnight(d).timestamp())


# ==================================================================================================
# FOCUS model
# ==================================================================================================


@dataclass(frozen=True)
class _Provider:
    source: str
    name: str
    billing_account_id: str
    billing_account_name: str
    invoice_issuer: str
    publisher: str
    null: str
    datetime_format: str
    compress: bool


_AWS = _Provider(
    "aws-payer",
    "AWS",
    AWS_PAYER,
    "Acme Corp (payer)",
    "Amazon Web Services, Inc.",
    "Amazon Web Services",
    "NULL",
    "%Y-%m-%dT%H:%M:%SZ",
    True,
)
_AZURE = _Provider(
    "azure-ea",
    "Microsoft",
    "ea-7001",
    "Acme Corp EA",
    "Microsoft",
    "Microsoft",
    "",
    "%Y-%m-%d %H:%M:%S",
    False,
)
_GCP = _Provider(
    "gcp-billing",
    "Google Cloud",
    "01ABCD-234567-89EFGH",
    "Acme Corp billing",
    "Google",
    "Google",
    "",
    "%Y-%m-%dT%H:%M:%SZ",
    False,
)


@dataclass(frozen=True)
class _Res:
    """A billable thing: a resource and one of its SKUs, with its list price per pricing unit."""

    sub_account_id: str
    sub_account_name: str
    service: str
    service_category: str
    service_subcategory: str
    resource_id: str | None
    resource_name: str | None
    resource_type: str | None
    region_id: str
    region_name: str
    sku: str  # description of the SKU; the SkuId is derived from it unless given
    pricing_unit: str
    unit_price: Decimal
    consumed_unit: str
    tags: dict[str, object] | None
    zone: str | None = None
    sku_id: str | None = None
    extras: tuple[tuple[str, str], ...] = ()
    contract_discount: Decimal = Decimal(0)
    publisher: str | None = None
    consumed_per_pricing_unit: Decimal = Decimal(1)
    category: str = "Usage"


@dataclass(frozen=True)
class _Commitment:
    id: str
    type: str
    category: str
    discount: Decimal  # share of the billed cost saved


@dataclass(slots=True)
class _Charge:
    res: _Res
    start: datetime
    end: datetime
    pricing_quantity: Decimal | None
    billed: Decimal
    effective: Decimal
    list_cost: Decimal
    contracted: Decimal
    tags: dict[str, object] | None
    category: str = "Usage"
    frequency: str = "Usage-Based"
    pricing_category: str | None = "Standard"
    commitment: _Commitment | None = None
    description: str | None = None


def _usage(
    res: _Res,
    start: datetime,
    end: datetime,
    quantity: Decimal,
    *,
    untagged: bool = False,
    commitment: _Commitment | None = None,
    frequency: str = "Usage-Based",
) -> _Charge:
    list_cost = quantity * res.unit_price
    contracted = list_cost * (1 - res.contract_discount)
    billed = contracted
    effective = billed * (1 - commitment.discount) if commitment else billed
    return _Charge(
        res,
        start,
        end,
        quantity,
        billed,
        effective,
        list_cost,
        contracted,
        None if untagged else res.tags,
        category=res.category,
        frequency=frequency,
        pricing_category="Committed" if commitment else "Standard",
        commitment=commitment,
    )


def _fee(
    res: _Res,
    start: datetime,
    end: datetime,
    amount: Decimal,
    *,
    category: str,
    frequency: str,
    effective: Decimal,
) -> _Charge:
    return _Charge(
        res,
        start,
        end,
        None,
        amount,
        effective,
        max(amount, Decimal(0)),
        amount,
        res.tags,
        category=category,
        frequency=frequency,
        pricing_category=None,
    )


def _focus_row(p: _Provider, c: _Charge, extra_columns: Sequence[str]) -> list[str]:
    null = p.null
    res = c.res

    def s(v: str | None) -> str:
        return null if v is None else v

    def n(v: Decimal | None) -> str:
        return null if v is None else _fmt(v)

    fmt = p.datetime_format
    period_start, period_end = _period(c.start.date(), fmt)
    consumed = None if c.pricing_quantity is None else c.pricing_quantity * res.consumed_per_pricing_unit
    sku_id = res.sku_id or _code(p.source + res.sku, 14)
    com = c.commitment
    values: dict[str, str] = {
        "AvailabilityZone": s(res.zone),
        "BilledCost": _fmt(c.billed),
        "BillingAccountId": p.billing_account_id,
        "BillingAccountName": p.billing_account_name,
        "BillingCurrency": "USD",
        "BillingPeriodEnd": period_end,
        "BillingPeriodStart": period_start,
        "ChargeCategory": c.category,
        "ChargeClass": null,
        "ChargeDescription": c.description or res.sku,
        "ChargeFrequency": c.frequency,
        "ChargePeriodEnd": _ts(c.end, fmt),
        "ChargePeriodStart": _ts(c.start, fmt),
        "CommitmentDiscountCategory": s(com.category if com else None),
        "CommitmentDiscountId": s(com.id if com else None),
        "CommitmentDiscountType": s(com.type if com else None),
        "ConsumedQuantity": n(consumed),
        "ConsumedUnit": s(res.consumed_unit if consumed is not None else None),
        "ContractedCost": _fmt(c.contracted),
        "EffectiveCost": _fmt(c.effective),
        "InvoiceIssuerName": p.invoice_issuer,
        "ListCost": _fmt(c.list_cost),
        "ListUnitPrice": n(res.unit_price if c.pricing_quantity is not None else None),
        "PricingCategory": s(c.pricing_category),
        "PricingQuantity": n(c.pricing_quantity),
        "PricingUnit": s(res.pricing_unit if c.pricing_quantity is not None else None),
        "ProviderName": p.name,
        "PublisherName": res.publisher or p.publisher,
        "RegionId": s(res.region_id or None),
        "RegionName": s(res.region_name or None),
        "ResourceId": s(res.resource_id),
        "ResourceName": s(res.resource_name),
        "ResourceType": s(res.resource_type),
        "ServiceCategory": res.service_category,
        "ServiceSubcategory": res.service_subcategory,
        "ServiceName": res.service,
        "SkuId": sku_id,
        "SkuPriceId": f"{sku_id}.{_code(res.sku + str(res.unit_price), 10)}",
        "SubAccountId": res.sub_account_id,
        "SubAccountName": res.sub_account_name,
        "Tags": null if c.tags is None else json.dumps(c.tags, separators=(",", ":")),
    }
    extras = dict(res.extras)
    return [values[col] for col in FOCUS_COLUMNS] + [extras.get(col, null) for col in extra_columns]


def _write_focus(out_dir: Path, p: _Provider, charges: list[_Charge]) -> list[Path]:
    extra_columns = FOCUS_EXTRA_COLUMNS[p.source]
    by_month: dict[str, list[_Charge]] = {}
    for c in sorted(charges, key=lambda c: c.start):  # stable: same-start rows keep generation order
        by_month.setdefault(c.start.strftime("%Y-%m"), []).append(c)
    folder = out_dir / "focus" / p.source
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for month in sorted(by_month):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*FOCUS_COLUMNS, *extra_columns])
        writer.writerows(_focus_row(p, c, extra_columns) for c in by_month[month])
        data = buf.getvalue().encode("utf-8")
        if p.compress:
            path = folder / f"{p.source}-focus-{month}.csv.gz"
            with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(data)
        else:
            path = folder / f"{p.source}-focus-{month}.csv"
            path.write_bytes(data)
        written.append(path)
    return written


# ==================================================================================================
# LLM usage simulation (shared by the bills, the usage APIs, the spans and the gateway logs)
# ==================================================================================================


@dataclass
class _OpenAITokens:
    """OpenAI semantics: ``input`` includes ``cached``."""

    input: int = 0
    cached: int = 0
    output: int = 0
    requests: int = 0


@dataclass
class _AnthropicTokens:
    """Anthropic semantics: ``uncached`` excludes cache reads and writes."""

    uncached: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0


@dataclass(frozen=True)
class _Step:
    provider: str  # gen_ai.provider.name
    request_model: str
    response_model: str
    feature: str
    input_mean: float  # all input tokens, cache included
    cache_read_share: float
    cache_write_share: float  # anthropic: 5m cache writes
    cache_write_1h_share: float
    output_mean: float
    drifts: bool  # follows the support-chat drift


_CHAT_ROUTER = _Step(
    "azure.ai.openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "support-chat", 900, 0.0, 0, 0, 15, False
)
_CHAT_GPT4O = _Step(
    "azure.ai.openai", "gpt-4o", "gpt-4o-2024-08-06", "support-chat", 3500, 0.45, 0, 0, 320, True
)
_CHAT_SONNET = _Step(
    "anthropic",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-sonnet-20241022",
    "support-chat",
    4200,
    0.55,
    0.08,
    0.02,
    380,
    True,
)
_SUMMARY_HAIKU = _Step(
    "anthropic",
    "claude-3-5-haiku-20241022",
    "claude-3-5-haiku-20241022",
    "ticket-summary",
    2800,
    0.2,
    0.05,
    0.0,
    260,
    False,
)
_SUMMARY_MINI = _Step(
    "azure.ai.openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "ticket-summary", 2200, 0.25, 0, 0, 220, False
)
_QUERY_REWRITE = _Step(
    "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "query-rewrite", 1400, 0.7, 0, 0, 45, False
)
_RERANK = _Step("openai", "gpt-4o", "gpt-4o-2024-08-06", "rerank", 3800, 0.3, 0, 0, 90, False)

_CHAT_STEPS_MEAN = 4.5  # steps after the router: uniform 2..7
_CHAT_GPT4O_SHARE = 0.6
_SUMMARY_MINI_MEAN = 3.0  # uniform 2..4
_ERROR_TASK_SHARE = 0.025
_SUPPORT_HOURS = (2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 10, 10, 9, 8, 7, 6, 5, 4, 3, 3, 2)
_SEARCH_HOURS = (4, 3, 2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10, 9, 9, 8, 8, 7, 6, 5, 5)


def _drift(d: date) -> float:
    if d < SUPPORT_CHAT_DRIFT_START:
        return 1.0
    if d >= SUPPORT_CHAT_DRIFT_END:
        return SUPPORT_CHAT_DRIFT_FACTOR
    span = (SUPPORT_CHAT_DRIFT_END - SUPPORT_CHAT_DRIFT_START).days
    return 1.0 + (SUPPORT_CHAT_DRIFT_FACTOR - 1.0) * (d - SUPPORT_CHAT_DRIFT_START).days / span


@dataclass(frozen=True)
class _SpanCall:
    step: _Step
    input: int  # all input, cache included (OTel semantics)
    cache_read: int
    cache_write: int
    output: int


def _draw_call(rng: random.Random, step: _Step, d: date) -> _SpanCall:
    mean = step.input_mean * (_drift(d) if step.drifts else 1.0)
    total = max(64, round(rng.gauss(mean, 0.25 * mean)))
    share = min(0.95, max(0.0, rng.gauss(step.cache_read_share, 0.06))) if step.cache_read_share else 0.0
    if step.provider == "anthropic":
        cache_read = round(total * share)
        cache_write = round(total * (step.cache_write_share + step.cache_write_1h_share))
    else:  # OpenAI-style prefix caching: whole 128-token blocks, only for prompts >= 1024 tokens
        cache_read = 0 if total < 1024 else int(total * share) // 128 * 128
        cache_write = 0
    output = max(1, round(rng.gauss(step.output_mean, 0.3 * step.output_mean)))
    return _SpanCall(step, total, cache_read, cache_write, output)


def _add_openai(agg: _OpenAITokens, rng: random.Random, step: _Step, n: float, d: date) -> None:
    if n <= 0:
        return
    mean = step.input_mean * (_drift(d) if step.drifts else 1.0)
    inp = round(n * mean * _noise(rng, 0.02))
    cached = 0
    if step.cache_read_share:
        cached = round(inp * step.cache_read_share * _noise(rng, 0.03))
    agg.input += inp
    agg.cached += min(cached, inp)
    agg.output += round(n * step.output_mean * _noise(rng, 0.03))
    agg.requests += round(n)


def _add_anthropic(agg: _AnthropicTokens, rng: random.Random, step: _Step, n: float, d: date) -> None:
    if n <= 0:
        return
    mean = step.input_mean * (_drift(d) if step.drifts else 1.0)
    total = round(n * mean * _noise(rng, 0.02))
    read = round(total * step.cache_read_share * _noise(rng, 0.03))
    w5 = round(total * step.cache_write_share * _noise(rng, 0.05))
    w1 = round(total * step.cache_write_1h_share * _noise(rng, 0.05))
    agg.uncached += total - read - w5 - w1
    agg.cache_read += read
    agg.cache_write_5m += w5
    agg.cache_write_1h += w1
    agg.output += round(n * step.output_mean * _noise(rng, 0.03))


@dataclass(frozen=True)
class _Task:
    service: str
    trace_id: str
    task_id: str | None
    start_ns: int
    calls: tuple[_SpanCall, ...]
    error: bool


@dataclass
class _LLMWorld:
    #: (day, feature, response model) -> Azure OpenAI tokens (support agent, full population)
    azure: dict[tuple[date, str, str], _OpenAITokens] = field(default_factory=dict)
    #: (day, model, api key) -> Anthropic tokens
    anthropic: dict[tuple[date, str, str], _AnthropicTokens] = field(default_factory=dict)
    #: (day, project, model, api key, batch) -> OpenAI tokens
    openai: dict[tuple[date, str, str, str, bool], _OpenAITokens] = field(default_factory=dict)
    tasks: list[_Task] = field(default_factory=list)  # sampled traces, in time order per day


def _poisson_like(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0


def _start_ns(rng: random.Random, d: date, hours: Sequence[int]) -> int:
    hour = rng.choices(range(24), weights=hours)[0]
    second = min(hour * 3600 + rng.randrange(3600), 86_000)
    return (_unix(d) + second) * 1_000_000_000 + rng.randrange(1000) * 1_000_000


def _simulate_support(world: _LLMWorld, rng: random.Random, d: date) -> None:
    base = _weekday(d, 0.45) * _trend(d, 0.0015)
    chat_tasks = 2000 * base * _noise(rng, 0.06)
    summary_tasks = 900 * base * _noise(rng, 0.06)
    steps = chat_tasks * _CHAT_STEPS_MEAN
    for feature, step, n in (
        ("support-chat", _CHAT_ROUTER, chat_tasks),
        ("support-chat", _CHAT_GPT4O, steps * _CHAT_GPT4O_SHARE),
        ("ticket-summary", _SUMMARY_MINI, summary_tasks * _SUMMARY_MINI_MEAN),
    ):
        _add_openai(
            world.azure.setdefault((d, feature, step.response_model), _OpenAITokens()), rng, step, n, d
        )
    for step, n in ((_CHAT_SONNET, steps * (1 - _CHAT_GPT4O_SHARE)), (_SUMMARY_HAIKU, summary_tasks)):
        key = (d, step.response_model, ANTHROPIC_AGENT_KEY)
        _add_anthropic(world.anthropic.setdefault(key, _AnthropicTokens()), rng, step, n, d)
    if d.weekday() == 4:  # Friday offline evaluation runs: sonnet, own key, not traced, no cache
        evals = world.anthropic.setdefault(
            (d, _CHAT_SONNET.response_model, ANTHROPIC_EVALS_KEY), _AnthropicTokens()
        )
        evals.uncached += round(6_000_000 * _noise(rng, 0.1))
        evals.output += round(900_000 * _noise(rng, 0.1))
    # the sampled traces: one trace per agent task
    sampled: list[_Task] = []
    for feature, population in (("support-chat", chat_tasks), ("ticket-summary", summary_tasks)):
        for _ in range(_poisson_like(rng, population / SUPPORT_AGENT_SAMPLE_RATE)):
            if feature == "support-chat":
                calls = [_draw_call(rng, _CHAT_ROUTER, d)]
                for _ in range(rng.randint(2, 7)):
                    step = _CHAT_GPT4O if rng.random() < _CHAT_GPT4O_SHARE else _CHAT_SONNET
                    calls.append(_draw_call(rng, step, d))
            else:
                calls = [_draw_call(rng, _SUMMARY_HAIKU, d)]
                calls += [_draw_call(rng, _SUMMARY_MINI, d) for _ in range(rng.randint(2, 4))]
            sampled.append(
                _Task(
                    "support-agent",
                    f"{rng.getrandbits(128):032x}",
                    f"task_{rng.getrandbits(48):012x}",
                    _start_ns(rng, d, _SUPPORT_HOURS),
                    tuple(calls),
                    rng.random() < _ERROR_TASK_SHARE,
                )
            )
    world.tasks += sorted(sampled, key=lambda t: t.start_ns)


def _simulate_openai(world: _LLMWorld, rng: random.Random, d: date) -> None:
    base = _weekday(d, 0.5) * _trend(d, 0.0015)
    rewrites = 30_000 * base * _noise(rng, 0.05)
    reranks = 0.2 * rewrites * _noise(rng, 0.03)
    if d == QUERY_REWRITE_SPIKE_DAY:
        rewrites *= QUERY_REWRITE_SPIKE_FACTOR
    search_key, indexer_key = "key_Srch4piProd0001", "key_SrchIndexer0002"
    for step, n in ((_QUERY_REWRITE, rewrites), (_RERANK, reranks)):
        key = (d, OPENAI_SEARCH_PROJECT, step.response_model, search_key, False)
        _add_openai(world.openai.setdefault(key, _OpenAITokens()), rng, step, n, d)
    emb = world.openai.setdefault(
        (d, OPENAI_SEARCH_PROJECT, "text-embedding-3-small", indexer_key, False), _OpenAITokens()
    )
    emb.input += round(15_000_000 * _trend(d, 0.001) * _noise(rng, 0.08))
    emb.requests += emb.input // 1800
    # growth: a nightly batch job and the app's interactive calls, both gpt-4o-mini
    growth = _trend(d, 0.002)
    batch = world.openai.setdefault(
        (d, OPENAI_GROWTH_PROJECT, "gpt-4o-mini-2024-07-18", "key_GrwthBatch0003", True), _OpenAITokens()
    )
    batch.input += round(1_400_000_000 * growth * _noise(rng, 0.1))
    batch.output += round(batch.input * 0.13 * _noise(rng, 0.04))
    batch.requests += batch.input // 3000
    app = world.openai.setdefault(
        (d, OPENAI_GROWTH_PROJECT, "gpt-4o-mini-2024-07-18", "key_GrwthApp00004", False), _OpenAITokens()
    )
    app_in = round(90_000_000 * growth * _weekday(d, 0.4) * _noise(rng, 0.06))
    app.input += app_in
    app.cached += round(app_in * 0.3 * _noise(rng, 0.03))
    app.output += round(app_in * 0.15 * _noise(rng, 0.04))
    app.requests += app_in // 1500
    # sampled search-api traces: a query rewrite, then sometimes a rerank
    sampled: list[_Task] = []
    rerank_share = reranks / rewrites
    for _ in range(_poisson_like(rng, rewrites / SEARCH_API_SAMPLE_RATE)):
        calls = [_draw_call(rng, _QUERY_REWRITE, d)]
        if rng.random() < rerank_share:
            calls.append(_draw_call(rng, _RERANK, d))
        sampled.append(
            _Task(
                "search-api",
                f"{rng.getrandbits(128):032x}",
                None,
                _start_ns(rng, d, _SEARCH_HOURS),
                tuple(calls),
                rng.random() < 0.004,
            )
        )
    world.tasks += sorted(sampled, key=lambda t: t.start_ns)


def _simulate_llm(seed: int) -> _LLMWorld:
    world = _LLMWorld()
    support_rng = random.Random(f"{seed}:support")
    search_rng = random.Random(f"{seed}:openai")
    for d in _days():
        _simulate_support(world, support_rng, d)
        _simulate_openai(world, search_rng, d)
    world.tasks.sort(
        key=lambda t: (t.start_ns // 86_400_000_000_000, t.service != "support-agent", t.start_ns)
    )
    return world


# ==================================================================================================
# LiteLLM gateway logs (growth's ad-copy on Bedrock, a llama dev experiment)
# ==================================================================================================

LITELLM_COLUMNS = (
    "request_id",
    "call_type",
    "spend",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "startTime",
    "endTime",
    "model",
    "model_group",
    "custom_llm_provider",
    "user",
    "team_id",
    "end_user",
    "request_tags",
    "metadata",
    "session_id",
    "cache_hit",
    "status",
)
_GROWTH_TEAM_ID = "7d0c5e1a-3b2f-4c8d-9e6a-1f2b3c4d5e6f"
_LLAMA_START, _LLAMA_END = date(2024, 8, 5), date(2024, 9, 7)


@dataclass(frozen=True)
class _GatewayCall:
    day: date
    row: list[str]
    bedrock_prompt: int  # billed Bedrock tokens (0 unless a successful, non-cached Bedrock call)
    bedrock_completion: int


def _litellm_time(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{ns // 1_000_000 % 1000:03d}"


def _simulate_litellm(seed: int) -> list[_GatewayCall]:
    rng = random.Random(f"{seed}:litellm")
    calls: list[_GatewayCall] = []
    for d in _days():
        day_calls: list[tuple[int, _GatewayCall]] = []
        campaign = f"{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        n_copy = _poisson_like(rng, 34 * _weekday(d, 0.25) * _trend(d, 0.002))
        n_llama = _poisson_like(rng, 14 * _weekday(d, 0.1)) if _LLAMA_START <= d < _LLAMA_END else 0
        for i in range(n_copy + n_llama):
            llama = i >= n_copy
            start = _start_ns(rng, d, _SEARCH_HOURS)
            prompt = max(200, round(rng.gauss(6000, 1500)))
            completion = max(20, round(rng.gauss(900, 250)))
            roll = rng.random()
            status = "failure" if roll < 0.015 else "success"
            cache_hit = status == "success" and not llama and roll > 0.985
            if status == "failure":
                prompt = completion = 0
            duration_ms = 0 if cache_hit else round(completion * rng.uniform(8, 14)) + 300
            if llama:
                spend = Decimal(prompt + completion) * LLAMA_PRICE_PER_1M / _MILLION
                model, group, provider, env, key_alias = (
                    "llama-3.1-8b-instruct",
                    "llama-3.1-8b",
                    "openai",
                    "dev",
                    "growth-adcopy-dev",
                )
            else:
                p_in, p_out = BEDROCK_PRICES_PER_1K[BEDROCK_HAIKU]
                spend = (Decimal(prompt) * p_in + Decimal(completion) * p_out) / 1000
                model, group, provider, env, key_alias = (
                    BEDROCK_HAIKU,
                    "claude-haiku",
                    "bedrock",
                    "prod",
                    "growth-adcopy-prod",
                )
            if cache_hit:
                spend = Decimal(0)
            metadata: dict[str, object] = {
                "user_api_key_alias": key_alias,
                "user_api_key_team_id": _GROWTH_TEAM_ID,
                "user_api_key_team_alias": "growth",
                "requester_ip_address": "",
            }
            if status == "failure":
                metadata["error_information"] = {"error_code": "429", "error_class": "RateLimitError"}
            row = [
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "acompletion",
                _fmt(spend) if spend else "0.0",
                str(prompt),
                str(completion),
                str(prompt + completion),
                _litellm_time(start),
                _litellm_time(start + duration_ms * 1_000_000),
                model,
                group,
                provider,
                "adcopy-service",
                _GROWTH_TEAM_ID,
                f"cust_{rng.randrange(1000, 9999)}" if not llama else "",
                json.dumps(["team:growth", "feature:ad-copy", f"environment:{env}"]),
                json.dumps(metadata),
                campaign,
                "True" if cache_hit else "False",
                status,
            ]
            billed = provider == "bedrock" and status == "success" and not cache_hit
            day_calls.append(
                (start, _GatewayCall(d, row, prompt if billed else 0, completion if billed else 0))
            )
        calls += [c for _, c in sorted(day_calls, key=lambda x: x[0])]
    return calls


def _write_litellm(path: Path, calls: list[_GatewayCall]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LITELLM_COLUMNS)
    writer.writerows(c.row for c in calls)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode("utf-8"))


# ==================================================================================================
# AWS
# ==================================================================================================

_USE1 = ("us-east-1", "US East (N. Virginia)")
_ACCOUNT_NAMES = {AWS_PROD: "acme-prod", AWS_RESEARCH: "acme-research"}


def _ec2(account: str, name: str, itype: str, price: str, tags: dict[str, object] | None, zone: str) -> _Res:
    return _Res(
        account,
        _ACCOUNT_NAMES[account],
        "Amazon Elastic Compute Cloud",
        "Compute",
        "Virtual Machines",
        "i-0" + _hex("ec2:" + name, 16),
        name,
        "Instance",
        *_USE1,
        f"${price} per On Demand Linux {itype} Instance Hour",
        "Hours",
        Decimal(price),
        "Hours",
        tags,
        zone=zone,
        extras=(("x_UsageType", f"BoxUsage:{itype}"), ("x_Operation", "RunInstances")),
    )


def _s3(account: str, bucket: str, tags: dict[str, object] | None) -> _Res:
    return _Res(
        account,
        _ACCOUNT_NAMES[account],
        "Amazon Simple Storage Service",
        "Storage",
        "Object Storage",
        f"arn:aws:s3:::{bucket}",
        bucket,
        "Bucket",
        *_USE1,
        "$0.023 per GB - first 50 TB / month of storage used",
        "GB-Mo",
        Decimal("0.023"),
        "GB-Mo",
        tags,
        extras=(("x_UsageType", "TimedStorage-ByteHrs"), ("x_Operation", "StandardStorage")),
    )


def _sagemaker_endpoint(name: str, tags: dict[str, object]) -> tuple[_Res, _Res]:
    rid = f"arn:aws:sagemaker:us-east-1:{AWS_RESEARCH}:endpoint/{name}"
    common: dict[str, Any] = {"tags": tags}
    hosting = _Res(
        AWS_RESEARCH,
        "acme-research",
        "Amazon SageMaker",
        "AI and Machine Learning",
        "Machine Learning",
        rid,
        name,
        "Endpoint",
        *_USE1,
        "$1.515 per Hosting ml.g5.2xlarge hour in US East (N. Virginia)",
        "Hours",
        Decimal("1.515"),
        "Hours",
        extras=(("x_UsageType", "Host:ml.g5.2xlarge"), ("x_Operation", "RunInstance")),
        **common,
    )
    data = _Res(
        AWS_RESEARCH,
        "acme-research",
        "Amazon SageMaker",
        "AI and Machine Learning",
        "Machine Learning",
        rid,
        name,
        "Endpoint",
        *_USE1,
        "$0.016 per GB data processed in for Hosting",
        "GB",
        Decimal("0.016"),
        "GB",
        extras=(("x_UsageType", "Host:Data-Bytes-In"), ("x_Operation", "RunInstance")),
        **common,
    )
    return hosting, data


def _aws_charges(seed: int, gateway: list[_GatewayCall]) -> list[_Charge]:
    rng = random.Random(f"{seed}:aws")
    out: list[_Charge] = []
    days = _days()
    hours24 = Decimal(24)
    sp = _Commitment(
        f"arn:aws:savingsplans::{AWS_PAYER}:savingsplan/{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "Compute Savings Plan",
        "Spend",
        Decimal("0.28"),
    )

    platform_eks = _tags("platform", "k8s-platform", "production")
    platform_obs = _tags("platform", "observability", "prod")
    platform_ci = _tags("platform", "ci", "dev", ephemeral=True)
    search_prod = _tags("search", "semantic-search", "prod")
    search_staging = _tags("search", "semantic-search", "staging", owner=False)
    search_staging["owner"] = None
    growth_web = _tags("growth", "marketing-gen", "prod")
    ml_infer = _tags("ml-research", "model-serving", "prod", workload="inference", feature="product-ranking")
    ml_train = _tags("ml-research", "llm-pretrain", "dev", workload="training")

    # --- EC2, daily rows ---------------------------------------------------------------------------

    def daily_fleet(
        account: str,
        prefix: str,
        itype: str,
        price: str,
        tags: dict[str, object] | None,
        count: int,
        zone_letters: str = "abcd",
        added: Sequence[tuple[date, int]] = (),
        hours: float = 24.0,
        weekday_only_from: int | None = None,
        committed: int = 0,
        untagged: bool = False,
    ) -> None:
        total = count + sum(n for _, n in added)
        for i in range(total):
            res = _ec2(
                account,
                f"{prefix}-{i + 1:02d}",
                itype,
                price,
                tags,
                "us-east-1" + zone_letters[i % len(zone_letters)],
            )
            first = DEMO_START
            j = count
            for since, n in added:
                if i >= j:
                    first = since
                j += n
            for d in days:
                if d < first:
                    continue
                if weekday_only_from is not None and i >= weekday_only_from and d.weekday() >= 5:
                    continue
                h = hours
                if hours < 24:
                    h = min(24.0, hours * _weekday(d, 0.2) * _noise(rng, 0.1))
                com = sp if (i < committed and d >= SAVINGS_PLAN_START) else None
                out.append(
                    _usage(
                        res,
                        _midnight(d),
                        _midnight(d) + _DAY,
                        hours24 if h >= 24 else _dec(h, 3),
                        untagged=untagged,
                        commitment=com,
                    )
                )

    daily_fleet(
        AWS_PROD,
        "eks-platform-node",
        "m6i.4xlarge",
        "0.768",
        platform_eks,
        24,
        added=[(date(2024, 7, 8), 2), (date(2024, 8, 26), 2)],
        committed=1,
    )
    daily_fleet(AWS_PROD, "eks-platform-mem", "r6i.4xlarge", "1.008", platform_eks, 14)
    daily_fleet(AWS_PROD, "observability", "m6i.8xlarge", "1.536", platform_obs, 10)
    daily_fleet(AWS_PROD, "ci-runner", "c6i.8xlarge", "1.36", platform_ci, 10, hours=14.0)
    daily_fleet(
        AWS_PROD, "search-data", "r6i.8xlarge", "2.016", search_prod, 16, added=[(date(2024, 7, 22), 2)]
    )
    daily_fleet(AWS_PROD, "search-index", "i4i.8xlarge", "2.746", search_prod, 8)
    daily_fleet(AWS_PROD, "search-staging", "r6i.2xlarge", "0.504", search_staging, 3)
    daily_fleet(AWS_PROD, "search-api", "c6i.2xlarge", "0.34", search_prod, 10, weekday_only_from=6)
    daily_fleet(AWS_PROD, "growth-web", "c6i.xlarge", "0.17", growth_web, 4)
    daily_fleet(AWS_PROD, "ml-inference", "g5.xlarge", "1.006", ml_infer, 3)
    daily_fleet(AWS_RESEARCH, "ml-train-g5", "g5.12xlarge", "5.672", ml_train, 2)
    daily_fleet(AWS_RESEARCH, "research-notebook", "g5.2xlarge", "1.212", None, 6, untagged=True)

    # search's reindex worker: tags present on only some days
    reindex = _ec2(AWS_PROD, "search-reindex-worker", "c6i.8xlarge", "1.36", search_prod, "us-east-1b")
    for d in days:
        untag = d < date(2024, 6, 20) or rng.random() < 0.4
        out.append(_usage(reindex, _midnight(d), _midnight(d) + _DAY, hours24, untagged=untag))

    # --- EC2 p4d training clusters, hourly rows -----------------------------------------------------
    p4d_tags_a = dict(ml_train, cluster="llm-pretrain-a")
    p4d_tags_b = dict(ml_train, cluster="llm-pretrain-b")
    stop_a = (datetime(2024, 7, 4, tzinfo=UTC), datetime(2024, 7, 5, 12, tzinfo=UTC))
    end = _midnight(DEMO_END)
    clusters = (
        ("p4d-pretrain-a", 3, p4d_tags_a, _midnight(DEMO_START)),
        ("p4d-pretrain-b", 3, p4d_tags_b, TRAINING_CLUSTER_B_START),
    )
    for prefix, count, tags, first in clusters:
        for i in range(count):
            res = _ec2(AWS_RESEARCH, f"{prefix}-{i + 1}", "p4d.24xlarge", "32.7726", tags, "us-east-1b")
            t = first
            while t < end:
                if not (prefix.endswith("-a") and stop_a[0] <= t < stop_a[1]):
                    out.append(_usage(res, t, t + _HOUR, Decimal(1)))
                t += _HOUR

    # --- SageMaker: endpoints (hourly hosting + daily data processed) and training jobs -----------------
    ranker = _sagemaker_endpoint("product-ranker", ml_infer)
    churn = _sagemaker_endpoint(
        IDLE_ENDPOINT_NAME, _tags("ml-research", "churn-model", "staging", workload="inference")
    )
    for hosting, data_in in (ranker, churn):
        t = _midnight(DEMO_START)
        while t < end:
            out.append(_usage(hosting, t, t + _HOUR, Decimal(1)))
            t += _HOUR
        for d in days:
            idle = hosting.resource_name == IDLE_ENDPOINT_NAME and d >= IDLE_ENDPOINT_FROM
            if idle:
                gb = _dec(0.0002 * _noise(rng, 0.2), 7)
            elif hosting is ranker[0]:
                gb = _dec(40 * _weekday(d, 0.6) * _noise(rng, 0.1), 4)
            else:
                gb = _dec(6 * _weekday(d, 0.6) * _noise(rng, 0.15), 4)
            out.append(_usage(data_in, _midnight(d), _midnight(d) + _DAY, gb))
    train_tags = _tags("ml-research", "fine-tuning", "dev", workload="training")
    for d in days:
        if d.weekday() >= 5:
            continue
        for _ in range(rng.randint(0, 3)):
            job = f"ft-{d:%Y%m%d}-{rng.getrandbits(24):06x}"
            res = _Res(
                AWS_RESEARCH,
                "acme-research",
                "Amazon SageMaker",
                "AI and Machine Learning",
                "Machine Learning",
                f"arn:aws:sagemaker:us-east-1:{AWS_RESEARCH}:training-job/{job}",
                job,
                "TrainingJob",
                *_USE1,
                "$7.09 per Training ml.g5.12xlarge hour in US East (N. Virginia)",
                "Hours",
                Decimal("7.09"),
                "Hours",
                train_tags,
                extras=(("x_UsageType", "Train:ml.g5.12xlarge"), ("x_Operation", "RunInstance")),
            )
            out.append(_usage(res, _midnight(d), _midnight(d) + _DAY, _dec(rng.uniform(2, 9), 3)))

    # --- Bedrock: the bill for the LiteLLM gateway's Bedrock calls ------------------------------------
    bedrock_day: dict[date, list[int]] = {}
    for call in gateway:
        if call.bedrock_prompt or call.bedrock_completion:
            acc = bedrock_day.setdefault(call.day, [0, 0])
            acc[0] += call.bedrock_prompt
            acc[1] += call.bedrock_completion
    p_in, p_out = BEDROCK_PRICES_PER_1K[BEDROCK_HAIKU]
    for kind, price, usage_type in (
        ("input", p_in, "USE1-Claude3.5Haiku-input-tokens"),
        ("output", p_out, "USE1-Claude3.5Haiku-output-tokens"),
    ):
        res = _Res(
            AWS_PROD,
            "acme-prod",
            "Amazon Bedrock",
            "AI and Machine Learning",
            "Generative AI",
            f"arn:aws:bedrock:us-east-1::foundation-model/{BEDROCK_HAIKU}",
            BEDROCK_HAIKU,
            "Foundation Model",
            *_USE1,
            f"Claude 3.5 Haiku {kind} tokens (per 1K)",
            "1K tokens",
            price,
            "Tokens",
            None,
            sku_id=f"{BEDROCK_HAIKU}:{kind}-tokens",
            extras=(("x_UsageType", usage_type), ("x_Operation", "InvokeModelInference")),
            publisher="Anthropic",
            consumed_per_pricing_unit=Decimal(1000),
        )
        for d in sorted(bedrock_day):
            tokens = bedrock_day[d][0 if kind == "input" else 1]
            out.append(_usage(res, _midnight(d), _midnight(d) + _DAY, Decimal(tokens) / 1000))

    # --- S3, RDS, networking, EBS: daily rows ----------------------------------------------------------
    data_lake_tags = _tags("data", "data-lake", "production")
    data_lake_tags["cost_center"] = 1600  # a number, as some tag pipelines write it
    buckets: tuple[tuple[str, str, dict[str, object] | None, float, float], ...] = (
        (AWS_PROD, "acme-platform-logs", platform_obs, 250_000, 0.002),
        (AWS_PROD, "acme-search-index-snapshots", search_prod, 45_000, 0.001),
        (AWS_PROD, "acme-data-lake", data_lake_tags, 280_000, 0.002),
        (AWS_PROD, "acme-growth-assets", growth_web, 9_000, 0.001),
        (AWS_RESEARCH, "acme-research-scratch", None, 60_000, 0.003),
    )
    for account, bucket, bucket_tags, bucket_gb, growth in buckets:
        res = _s3(account, bucket, bucket_tags)
        for d in days:
            days_in_month = (_next_month(d) - _month_start(d)).days
            size = bucket_gb * _trend(d, growth) * _noise(rng, 0.005)
            out.append(
                _usage(
                    res,
                    _midnight(d),
                    _midnight(d) + _DAY,
                    _dec(size / days_in_month, 6),
                    untagged=bucket_tags is None,
                )
            )
    databases = (
        ("acme-prod-pg", "db.r6g.8xlarge", "6.976", platform_eks, "Multi-AZ"),
        ("acme-prod-pg-replica", "db.r6g.8xlarge", "3.488", platform_eks, "Single-AZ"),
        ("growth-crm", "db.r6g.large", "0.225", growth_web, "Single-AZ"),
        ("search-metadata", "db.r6g.xlarge", "0.872", search_prod, "Multi-AZ"),
    )
    for name, db_class, db_price, db_tags, deployment in databases:
        res = _Res(
            AWS_PROD,
            "acme-prod",
            "Amazon Relational Database Service",
            "Databases",
            "Relational Databases",
            f"arn:aws:rds:us-east-1:{AWS_PROD}:db:{name}",
            name,
            "DBInstance",
            *_USE1,
            f"${db_price} per RDS {db_class} {deployment} instance hour (or partial hour) running PostgreSQL",
            "Hours",
            Decimal(db_price),
            "Hours",
            db_tags,
            zone="us-east-1a",
            extras=(
                (
                    "x_UsageType",
                    f"{'Multi-AZUsage' if deployment == 'Multi-AZ' else 'InstanceUsage'}:{db_class}",
                ),
                ("x_Operation", "CreateDBInstance:0014"),
            ),
        )
        for d in days:
            out.append(_usage(res, _midnight(d), _midnight(d) + _DAY, hours24))
    nat = _Res(
        AWS_PROD,
        "acme-prod",
        "Amazon Virtual Private Cloud",
        "Networking",
        "Network Infrastructure",
        f"arn:aws:ec2:us-east-1:{AWS_PROD}:natgateway/nat-0{_hex('nat', 16)}",
        "nat-prod-1a",
        "NatGateway",
        *_USE1,
        "$0.045 per GB Data Processed by NAT Gateways",
        "GB",
        Decimal("0.045"),
        "GB",
        None,
        extras=(("x_UsageType", "NatGateway-Bytes"), ("x_Operation", "NatGateway")),
    )
    research_ebs = _Res(
        AWS_RESEARCH,
        "acme-research",
        "Amazon Elastic Compute Cloud",
        "Storage",
        "Block Storage",
        f"arn:aws:ec2:us-east-1:{AWS_RESEARCH}:volume/vol-0{_hex('ebs-research', 16)}",
        None,
        "Volume",
        *_USE1,
        "$0.08 per GB-month of General Purpose (gp3) provisioned storage",
        "GB-Mo",
        Decimal("0.08"),
        "GB-Mo",
        None,
        extras=(("x_UsageType", "EBS:VolumeUsage.gp3"), ("x_Operation", "CreateVolume-Gp3")),
    )
    for d in days:
        days_in_month = (_next_month(d) - _month_start(d)).days
        nat_gb = 900 * _weekday(d, 0.5) * _trend(d, 0.002) * _noise(rng, 0.08)
        out.append(_usage(nat, _midnight(d), _midnight(d) + _DAY, _dec(nat_gb, 3), untagged=True))
        out.append(
            _usage(
                research_ebs,
                _midnight(d),
                _midnight(d) + _DAY,
                _dec(16_000 / days_in_month, 6),
                untagged=True,
            )
        )

    # --- monthly and one-time charges ------------------------------------------------------------------
    support = _Res(
        AWS_PAYER, "acme-payer", "AWS Support (Business)", "Management and Governance", "Support",
        None, None, None, "", "", "AWS Support (Business)", "", Decimal(0), "", None,
        extras=(("x_UsageType", "Dollar"),),
    )  # fmt: skip
    tax = _Res(
        AWS_PROD, "acme-prod", "Tax", "Other", "Other (Other)", None, None, None, "", "",
        "Tax for billing period", "", Decimal(0), "", None, category="Tax",
        extras=(("x_UsageType", "Tax"),),
    )  # fmt: skip
    usage_by_month: dict[date, Decimal] = {}
    for c in out:
        m = _month_start(c.start.date()).date()
        usage_by_month[m] = usage_by_month.get(m, Decimal(0)) + c.billed
    for month in sorted(usage_by_month):
        if _next_month(month) > _midnight(DEMO_END):  # the open month has no support fee or tax yet
            continue
        period = (_month_start(month), _next_month(month))
        fee = (usage_by_month[month] * Decimal("0.02")).quantize(Decimal("0.01"))
        out.append(_fee(support, *period, fee, category="Usage", frequency="Recurring", effective=fee))
        tax_amount = (usage_by_month[month] * Decimal("0.004")).quantize(Decimal("0.01"))
        out.append(
            _fee(tax, *period, tax_amount, category="Tax", frequency="Recurring", effective=tax_amount)
        )
    purchase = _Res(
        AWS_PAYER, "acme-payer", "Savings Plans for AWS Compute usage", "Compute", "Other (Compute)",
        sp.id, "compute-sp-1yr-all-upfront", "Savings Plan", "", "", "1 year All Upfront Compute Savings Plan",
        "", Decimal(0), "", None, extras=(("x_UsageType", "ComputeSP:1yrAllUpfront"),),
    )  # fmt: skip
    buy = _fee(
        purchase,
        _midnight(SAVINGS_PLAN_START),
        _midnight(SAVINGS_PLAN_START) + _DAY,
        Decimal("6000.00"),
        category="Purchase",
        frequency="One-Time",
        effective=Decimal(0),
    )
    buy.commitment = sp
    out.append(buy)
    credit = _Res(
        AWS_PROD, "acme-prod", "Amazon Elastic Compute Cloud", "Compute", "Virtual Machines", None, None, None,
        "", "", "AWS Activate credit", "", Decimal(0), "", None, category="Credit",
        extras=(("x_UsageType", "Credit"),),
    )  # fmt: skip
    out.append(
        _fee(
            credit,
            _midnight(CREDIT_DAY),
            _midnight(CREDIT_DAY) + _DAY,
            Decimal("-2500.00"),
            category="Credit",
            frequency="One-Time",
            effective=Decimal("-2500.00"),
        )
    )
    return out


# ==================================================================================================
# Azure
# ==================================================================================================

_EASTUS = ("eastus", "East US")
_AZURE_EA_DISCOUNT = Decimal("0.08")
_AZURE_OPENAI_PER_1K: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "gpt-4o-2024-08-06": (Decimal("0.0025"), Decimal("0.00125"), Decimal("0.01")),
    "gpt-4o-mini-2024-07-18": (Decimal("0.00015"), Decimal("0.000075"), Decimal("0.0006")),
}


def _azure_id(rg: str, provider: str, name: str) -> str:
    return f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/{rg}/providers/{provider}/{name}"


def _azure_vm(name: str, rg: str, size: str, price: str, tags: dict[str, object] | None) -> _Res:
    return _Res(
        AZURE_SUBSCRIPTION,
        "acme-prod-sub",
        "Virtual Machines",
        "Compute",
        "Virtual Machines",
        _azure_id(rg, "Microsoft.Compute/virtualMachines", name),
        name,
        "Virtual machine",
        *_EASTUS,
        f"{size.replace('Standard_', '')} - Linux",
        "1 Hour",
        Decimal(price),
        "Hours",
        tags,
        extras=(("ResourceGroupName", rg),),
        contract_discount=_AZURE_EA_DISCOUNT,
    )


def _azure_charges(seed: int, world: _LLMWorld) -> list[_Charge]:
    rng = random.Random(f"{seed}:azure")
    out: list[_Charge] = []
    days = _days()
    fleets: tuple[tuple[str, str, str, str, dict[str, object], int], ...] = (
        ("vm-build", "rg-platform-build", "Standard_D8s_v5", "0.384", _tags("platform", "ci", "dev"), 8),
        ("vm-helpdesk", "rg-support-helpdesk", "Standard_D8s_v5", "0.384", _tags("support", "helpdesk", "Production"), 10),
        ("vm-legacy-reports", "rg-legacy", "Standard_D16s_v5", "0.768", {"owner": "fay@example.com"}, 1),
    )  # fmt: skip
    for prefix, rg, size, price, tags, count in fleets:
        for i in range(count):
            name = prefix if count == 1 else f"{prefix}-{i + 1:02d}"
            res = _azure_vm(name, rg, size, price, tags)
            for d in days:
                out.append(
                    _usage(res, _midnight(d), _midnight(d) + _DAY, Decimal(24), frequency="Usage-based")
                )
    # Azure OpenAI: one account per feature, one deployment per model, meters per token kind
    accounts = {
        "support-chat": "oai-support-chat",
        "ticket-summary": "oai-ticket-summary",
    }
    meters: dict[tuple[str, str, str], _Res] = {}
    for (d, feature, model), tok in sorted(world.azure.items()):
        account = accounts[feature]
        prices = _AZURE_OPENAI_PER_1K[model]
        short = "gpt-4o-mini-0718" if "mini" in model else "gpt-4o-0806"
        for kind, token_price, tokens in (
            ("input", prices[0], tok.input - tok.cached),
            ("cached-input", prices[1], tok.cached),
            ("output", prices[2], tok.output),
        ):
            if tokens <= 0:
                continue
            key = (account, model, kind)
            if key not in meters:
                label = {"input": "Inp", "cached-input": "cached Inp", "output": "Outp"}[kind]
                meters[key] = _Res(
                    AZURE_SUBSCRIPTION,
                    "acme-prod-sub",
                    "Azure OpenAI",
                    "AI and Machine Learning",
                    "Generative AI",
                    _azure_id("rg-support-ai", "Microsoft.CognitiveServices/accounts", account),
                    account,
                    "Cognitive Services account",
                    *_EASTUS,
                    f"{short} {label} glbl Tokens",
                    "1K",
                    token_price,
                    "Tokens",
                    _tags("support", "support-bot", "Production", feature=feature),
                    sku_id=f"{model}-{kind}-global",
                    extras=(("ResourceGroupName", "rg-support-ai"),),
                    consumed_per_pricing_unit=Decimal(1000),
                )
            out.append(
                _usage(
                    meters[key],
                    _midnight(d),
                    _midnight(d) + _DAY,
                    Decimal(tokens) / 1000,
                    frequency="Usage-based",
                )
            )
    # Blob storage, with the lowercase ChargeCategory some exports write
    for account, rg, tags, gb in (
        ("stsupportattach", "rg-support-helpdesk", _tags("support", "helpdesk", "Production"), 100_000),
        ("stplatformbackup", "rg-platform-build", _tags("platform", "backup", "prod"), 120_000),
    ):
        res = _Res(
            AZURE_SUBSCRIPTION,
            "acme-prod-sub",
            "Azure Blob Storage",
            "Storage",
            "Object Storage",
            _azure_id(rg, "Microsoft.Storage/storageAccounts", account),
            account,
            "Storage account",
            *_EASTUS,
            "Hot LRS Data Stored",
            "1 GB/Month",
            Decimal("0.0184"),
            "GB/Month",
            tags,
            extras=(("ResourceGroupName", rg),),
            contract_discount=_AZURE_EA_DISCOUNT,
            category="usage",
        )
        for d in days:
            days_in_month = (_next_month(d) - _month_start(d)).days
            blob_size = gb * _trend(d, 0.002) * _noise(rng, 0.004) / days_in_month
            out.append(
                _usage(res, _midnight(d), _midnight(d) + _DAY, _dec(blob_size, 6), frequency="Usage-based")
            )
    return out


# ==================================================================================================
# Google Cloud
# ==================================================================================================

_PROJECT_NUMBERS = {GCP_DATA_PROJECT: "483920174512", GCP_ML_PROJECT: "918273645501"}


def _gcp_res(
    project: str,
    service: str,
    category: str,
    subcategory: str,
    resource_id: str | None,
    name: str | None,
    rtype: str | None,
    region: tuple[str, str],
    sku: str,
    unit: str,
    price: str,
    tags: dict[str, object] | None,
    zone: str | None = None,
) -> _Res:
    return _Res(
        project,
        project,
        service,
        category,
        subcategory,
        resource_id,
        name,
        rtype,
        *region,
        sku,
        unit,
        Decimal(price),
        unit,
        tags,
        zone=zone,
        extras=(("x_ProjectNumber", _PROJECT_NUMBERS[project]),),
    )


def _gcp_charges(seed: int) -> list[_Charge]:
    rng = random.Random(f"{seed}:gcp")
    out: list[_Charge] = []
    days = _days()
    central = ("us-central1", "Iowa")
    us = ("us", "United States")
    warehouse = _tags("data", "warehouse", "production")
    bi = _tags("data", "bi-dashboards", "prod")
    analysis = [
        _gcp_res(GCP_DATA_PROJECT, "BigQuery", "Analytics", "Data Processing", None, None, None, us,
                 "Analysis", "tebibyte", "6.25", tags)
        for tags in (warehouse, bi)
    ]  # fmt: skip
    storage = _gcp_res(GCP_DATA_PROJECT, "BigQuery", "Analytics", "Data Processing", None, None, None, us,
                       "Active Logical Storage", "gibibyte month", "0.02", warehouse)  # fmt: skip
    workers = [
        _gcp_res(GCP_DATA_PROJECT, "Compute Engine", "Compute", "Virtual Machines",
                 f"//compute.googleapis.com/projects/{GCP_DATA_PROJECT}/zones/us-central1-a/instances/etl-worker-{i}",
                 f"etl-worker-{i}", "Instance", central, "N2 Instance Core and Ram running in Americas",
                 "hour", "0.7769", warehouse, zone="us-central1-a")
        for i in range(1, 11)
    ]  # fmt: skip
    scratch_id = (
        f"//compute.googleapis.com/projects/{GCP_ML_PROJECT}/zones/us-central1-b/instances/nb-scratch-01"
    )
    scratch = [
        _gcp_res(GCP_ML_PROJECT, "Compute Engine", "Compute", "Virtual Machines", scratch_id, "nb-scratch-01",
                 "Instance", central, sku, "hour", price, None, zone="us-central1-b")
        for sku, price in (("N1 Predefined Instance Core running in Americas", "0.38"),
                           ("Nvidia Tesla T4 GPU running in Americas", "0.35"))
    ]  # fmt: skip
    ml_tags = _tags("ml-research", "experiments", "dev", workload="training")
    gemini_tags = _tags("ml-research", "experiments", "dev", feature="eval-harness")
    serving_tags = _tags("ml-research", "model-serving", "staging", workload="inference")
    endpoint_id = f"projects/{_PROJECT_NUMBERS[GCP_ML_PROJECT]}/locations/us-central1/endpoints/5841239907"
    vertex_serving = _gcp_res(GCP_ML_PROJECT, "Vertex AI", "AI and Machine Learning", "AI Platforms", endpoint_id,
                              "embedder-staging", "Endpoint", central, "Online prediction n1-standard-4 + T4",
                              "hour", "0.8095", serving_tags)  # fmt: skip
    gemini = [
        _gcp_res(GCP_ML_PROJECT, "Vertex AI", "AI and Machine Learning", "Generative AI",
                 f"projects/{GCP_ML_PROJECT}/locations/us-central1/publishers/google/models/gemini-1.5-pro-002",
                 "gemini-1.5-pro-002", "Model", central, f"Gemini 1.5 Pro {kind} Tokens", "count", price,
                 gemini_tags)
        for kind, price in (("Input", "0.00000125"), ("Output", "0.000005"))
    ]  # fmt: skip
    for d in days:
        span = (_midnight(d), _midnight(d) + _DAY)
        wk = _weekday(d, 0.3)
        for res, tib in zip(analysis, (90.0, 30.0), strict=True):
            out.append(_usage(res, *span, _dec(tib * wk * _trend(d, 0.0015) * _noise(rng, 0.12), 6)))
        days_in_month = (_next_month(d) - _month_start(d)).days
        out.append(_usage(storage, *span, _dec(160_000 * _trend(d, 0.002) / days_in_month, 6)))
        for res in workers:
            out.append(_usage(res, *span, Decimal(24)))
        for res in scratch:
            out.append(_usage(res, *span, Decimal(24), untagged=True))
        out.append(_usage(vertex_serving, *span, Decimal(24)))
        if d.weekday() < 5:
            for j in range(rng.randint(0, 3)):
                job = f"{rng.getrandbits(60)}"
                res = _gcp_res(GCP_ML_PROJECT, "Vertex AI", "AI and Machine Learning", "AI Platforms",
                               f"projects/{_PROJECT_NUMBERS[GCP_ML_PROJECT]}/locations/us-central1/customJobs/{job}",
                               f"exp-{d:%m%d}-{j}", "CustomJob", central,
                               "Custom Training: a2-highgpu-8g (8 x A100) running in Americas", "hour", "29.3878",
                               ml_tags)  # fmt: skip
                out.append(_usage(res, *span, _dec(rng.uniform(1, 8), 3)))
            toks_in = round(12_000_000 * _noise(rng, 0.3))
            for res, tokens in zip(gemini, (toks_in, toks_in // 8), strict=True):
                out.append(_usage(res, *span, Decimal(tokens)))
    return out


# ==================================================================================================
# OpenAI and Anthropic usage/cost pages
# ==================================================================================================


def _pages(
    buckets: list[dict[str, Any]], kind: str, openai: bool, per_page: int = 30
) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    chunks = [buckets[i : i + per_page] for i in range(0, len(buckets), per_page)]
    for i, chunk in enumerate(chunks):
        more = i + 1 < len(chunks)
        cursor = f"page_{_hex(f'{kind}:{i + 1}', 24)}" if more else None
        page: dict[str, Any] = {"object": "page", "data": chunk} if openai else {"data": chunk}
        page["has_more"] = more
        page["next_page"] = cursor
        pages.append(page)
    return pages


def _amount(tokens: int, price_per_m: Decimal, batch: bool) -> Decimal:
    price = price_per_m * (1 - OPENAI_BATCH_DISCOUNT) if batch else price_per_m
    return (Decimal(tokens) * price / _MILLION).quantize(_Q6, rounding=ROUND_HALF_EVEN)


def openai_line_items(
    model: str, batch: bool, tokens_in: int, cached: int, output: int
) -> list[tuple[str, Decimal]]:
    """The costs-API line items (name, amount) for one usage result, at list price (see module docs)."""
    p_in, p_cached, p_out = OPENAI_LIST_PRICES[model]
    prefix = "batch " if batch else ""
    items = [(f"{model}, {prefix}input", _amount(tokens_in - cached, p_in, batch))]
    if cached:
        items.append((f"{model}, {prefix}cached input", _amount(cached, p_cached, batch)))
    if output:
        items.append((f"{model}, {prefix}output", _amount(output, p_out, batch)))
    return items


def _openai_documents(world: _LLMWorld) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_day: dict[date, list[tuple[tuple[str, str, str, bool], _OpenAITokens]]] = {}
    for (d, project, model, key, batch), tok in sorted(world.openai.items()):
        by_day.setdefault(d, []).append(((project, model, key, batch), tok))
    usage_buckets: list[dict[str, Any]] = []
    cost_buckets: list[dict[str, Any]] = []
    for d in _days():
        results: list[dict[str, Any]] = []
        costs: dict[tuple[str, str], Decimal] = {}
        for (project, model, key, batch), tok in by_day.get(d, []):
            if model.startswith("text-embedding"):
                results.append(
                    {
                        "object": "organization.usage.embeddings.result",
                        "input_tokens": tok.input,
                        "num_model_requests": tok.requests,
                        "project_id": project,
                        "user_id": None,
                        "api_key_id": key,
                        "model": model,
                    }
                )
            else:
                results.append(
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": tok.input,
                        "output_tokens": tok.output,
                        "num_model_requests": tok.requests,
                        "project_id": project,
                        "user_id": None,
                        "api_key_id": key,
                        "model": model,
                        "batch": batch,
                        "service_tier": "default",
                        "input_cached_tokens": tok.cached,
                        "input_audio_tokens": 0,
                        "output_audio_tokens": 0,
                    }
                )
            for item, amount in openai_line_items(model, batch, tok.input, tok.cached, tok.output):
                costs[(project, item)] = costs.get((project, item), Decimal(0)) + amount
        start = _unix(d)
        usage_buckets.append(
            {"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": results}
        )
        cost_results = [
            {
                "object": "organization.costs.result",
                "amount": {"value": float(amount), "currency": "usd"},
                "line_item": item,
                "project_id": project,
            }
            for (project, item), amount in sorted(costs.items())
        ]
        cost_buckets.append(
            {"object": "bucket", "start_time": start, "end_time": start + 86_400, "results": cost_results}
        )
    return _pages(usage_buckets, "openai-usage", True), _pages(cost_buckets, "openai-costs", True)


def _anthropic_documents(world: _LLMWorld) -> list[dict[str, Any]]:
    by_day: dict[date, list[tuple[tuple[str, str], _AnthropicTokens]]] = {}
    for (d, model, key), tok in sorted(world.anthropic.items()):
        by_day.setdefault(d, []).append(((model, key), tok))
    buckets: list[dict[str, Any]] = []
    for d in _days():
        results = [
            {
                "uncached_input_tokens": tok.uncached,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": tok.cache_write_1h,
                    "ephemeral_5m_input_tokens": tok.cache_write_5m,
                },
                "cache_read_input_tokens": tok.cache_read,
                "output_tokens": tok.output,
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": key,
                "workspace_id": ANTHROPIC_WORKSPACE,
                "model": model,
                "service_tier": "standard",
                "context_window": "0-200k",
            }
            for (model, key), tok in by_day.get(d, [])
        ]
        buckets.append(
            {
                "starting_at": f"{d:%Y-%m-%d}T00:00:00Z",
                "ending_at": f"{d + _DAY:%Y-%m-%d}T00:00:00Z",
                "results": results,
            }
        )
    return _pages(buckets, "anthropic-usage", False)


def _write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((json.dumps(doc, indent=1) + "\n").encode("utf-8"))


# ==================================================================================================
# OTel spans
# ==================================================================================================

_RESOURCES: dict[str, list[tuple[str, str]]] = {
    "support-agent": [
        ("service.name", "support-agent"),
        ("service.version", "2.3.1"),
        ("deployment.environment.name", "production"),
        ("finops.team", "support"),
        ("finops.project", "support-bot"),
    ],
    "search-api": [
        ("service.name", "search-api"),
        ("service.version", "5.12.0"),
        ("deployment.environment.name", "production"),
        ("finops.team", "search"),
        ("finops.project", "semantic-search"),
    ],
}
_SCOPES = {
    "anthropic": ("opentelemetry.instrumentation.anthropic", "0.33.9"),
    "azure.ai.openai": ("opentelemetry.instrumentation.openai_v2", "2.0b0"),
    "openai": ("opentelemetry.instrumentation.openai_v2", "2.0b0"),
}
_SERVER = {
    "anthropic": "api.anthropic.com",
    "azure.ai.openai": "acme-support.openai.azure.com",
    "openai": "api.openai.com",
}


def _attr(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _spans_of(task: _Task, rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    t = task.start_ns
    rate = SUPPORT_AGENT_SAMPLE_RATE if task.service == "support-agent" else SEARCH_API_SAMPLE_RATE
    for i, call in enumerate(task.calls):
        step = call.step
        duration_ms = round(call.output * rng.uniform(9, 18) + call.input * rng.uniform(0.04, 0.09)) + 120
        end = t + duration_ms * 1_000_000
        attrs = [
            _attr("gen_ai.operation.name", "chat"),
            _attr("gen_ai.provider.name", step.provider),
            _attr("gen_ai.request.model", step.request_model),
            _attr("gen_ai.response.model", step.response_model),
            _attr("server.address", _SERVER[step.provider]),
            _attr("gen_ai.usage.input_tokens", call.input),
            _attr("gen_ai.usage.output_tokens", call.output),
        ]
        if call.cache_read:
            attrs.append(_attr("gen_ai.usage.cache_read.input_tokens", call.cache_read))
        if call.cache_write:
            attrs.append(_attr("gen_ai.usage.cache_creation.input_tokens", call.cache_write))
        attrs.append(_attr("finops.feature", step.feature))
        if task.task_id:
            attrs.append(_attr("gen_ai.conversation.id", task.task_id))
        failed = task.error and i == len(task.calls) - 1
        if failed:
            attrs.append(_attr("error.type", "timeout"))
        else:
            attrs.append(
                {
                    "key": "gen_ai.response.finish_reasons",
                    "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}},
                }
            )
        span: dict[str, Any] = {
            "traceId": task.trace_id,
            "spanId": f"{rng.getrandbits(64):016x}",
            "traceState": _TRACE_STATE[rate],
            "name": f"chat {step.request_model}",
            "kind": 3,
            "startTimeUnixNano": str(t),
            "endTimeUnixNano": str(end),
            "attributes": attrs,
            "status": {"code": 2, "message": "Request timed out."} if failed else {},
        }
        yield step.provider, span
        t = end + rng.randrange(30, 400) * 1_000_000


def _write_spans(path: Path, world: _LLMWorld, seed: int, batch_size: int = 512) -> int:
    rng = random.Random(f"{seed}:spans")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    count = 0
    # one export batch = one service's spans of one day, at most ``batch_size`` spans
    groups: dict[tuple[int, str], list[tuple[str, dict[str, Any]]]] = {}
    for task in world.tasks:
        day = task.start_ns // 86_400_000_000_000
        groups.setdefault((day, task.service), []).extend(_spans_of(task, rng))
    for (_, service), spans in groups.items():
        for i in range(0, len(spans), batch_size):
            chunk = spans[i : i + batch_size]
            by_scope: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for provider, span in chunk:
                by_scope.setdefault(_SCOPES[provider], []).append(span)
            doc = {
                "resourceSpans": [
                    {
                        "resource": {"attributes": [_attr(k, v) for k, v in _RESOURCES[service]]},
                        "scopeSpans": [
                            {"scope": {"name": name, "version": version}, "spans": scope_spans}
                            for (name, version), scope_spans in by_scope.items()
                        ],
                    }
                ]
            }
            lines.append(json.dumps(doc, separators=(",", ":")))
            count += len(chunk)
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return count


# ==================================================================================================
# entry point
# ==================================================================================================


def generate_demo_files(out_dir: Path, seed: int = DEFAULT_SEED) -> DemoFiles:
    """Write the demo organisation's input files under ``out_dir`` (created, files overwritten)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _simulate_llm(seed)
    gateway = _simulate_litellm(seed)
    focus = {
        _AWS.source: _write_focus(out_dir, _AWS, _aws_charges(seed, gateway)),
        _AZURE.source: _write_focus(out_dir, _AZURE, _azure_charges(seed, world)),
        _GCP.source: _write_focus(out_dir, _GCP, _gcp_charges(seed)),
    }
    usage_pages, cost_pages = _openai_documents(world)
    files = DemoFiles(
        focus=focus,
        openai_usage=out_dir / "openai" / "usage_completions.json",
        openai_costs=out_dir / "openai" / "costs.json",
        anthropic_usage=out_dir / "anthropic" / "usage_report_messages.json",
        otel_spans=out_dir / "otel" / "spans.jsonl",
        litellm_spend_logs=out_dir / "litellm" / "spend_logs.csv",
    )
    _write_json(files.openai_usage, usage_pages)
    _write_json(files.openai_costs, cost_pages)
    _write_json(files.anthropic_usage, _anthropic_documents(world))
    _write_spans(files.otel_spans, world, seed)
    _write_litellm(files.litellm_spend_logs, gateway)
    return files


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tools.demo_data OUT_DIR [SEED]
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".finops/demo")
    result = generate_demo_files(target, int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_SEED)
    for file in result.all_files():
        print(f"{file.stat().st_size:>12,}  {file}")
