"""The allocated spend relation: billing truth, allocated to teams/features by usage, never added to it.

Billing facts (FOCUS exports, provider cost APIs) are the only source of spend. LLM usage facts describe
who used what, often twice (a provider's usage API *and* the application's spans *and* a gateway's logs
can all describe the same calls), so they are combined without ever being added:

1. **Coverage source.** For each LLM provider and billing period one usage source is the *coverage*
   source: the provider's own usage API (``openai-usage``, ``anthropic-usage``) if present, else gateway
   logs (``litellm``), else spans (``otel``); ties go to the source with more tokens. On a day the
   coverage source has no records for that provider, that day's records of every source stand in.
2. **Bill -> coverage groups.** A billing row of an LLM provider (Bedrock, Azure OpenAI, OpenAI,
   Anthropic, Vertex generative AI) is split across the coverage source's usage groups of the same
   provider and day — of the same model when the bill names one — by their priced share (tokens, then
   requests, when nothing is priced). The split keeps the bill's account, service and region and takes
   team / project / environment / feature from the usage (the bill's own tags fill gaps).
3. **Refinement by detail sources.** Every record group of the other sources (e.g. spans carrying a
   feature and a task) is matched to the one coverage group it belongs to: same provider and day,
   compatible model, and no conflicting team / project / environment. It takes the share of its coverage
   group's cost that its priced usage represents (at most all of it); the rest stays with the coverage
   group. So spans refine the attribution of the usage API's numbers; they never add to them.
4. **Estimates.** A provider with no bill in a billing period is reported from its coverage source at the
   computed price, marked ``is_estimate`` and labelled as an estimate everywhere.

Every split is rounded to 1e-10 and its rounding remainder goes to one row, so a split row always sums
back to the amount it split exactly. Usage on a day the provider's bill does not cover, while that period
is billed, adds nothing: ``finops reconcile`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import duckdb

from tools.store.lake import sql_string
from tools.store.schema import DIMENSION_COLUMNS

DIMS = [name for name, _ in DIMENSION_COLUMNS]
#: dimensions on which a detail record must not contradict its coverage group
CONSISTENCY_DIMS = ("team", "project", "environment")
METRICS = ("billed_cost", "effective_cost", "list_cost")
SOURCE_PRIORITY = """CASE source_format WHEN 'openai-usage' THEN 0 WHEN 'anthropic-usage' THEN 0
    WHEN 'litellm' THEN 1 WHEN 'otel' THEN 2 ELSE 3 END"""

_D = ", ".join(DIMS)
_COMMON = [
    "day",
    "billing_period",
    "source",
    "provider",
    "llm_provider",
    "billing_account",
    "sub_account",
    "service",
    "service_category",
    "service_subcategory",
    "region",
    "resource",
    "resource_name",
    "resource_type",
    "sku",
    "charge_category",
    "charge_frequency",
    "currency",
]


def _weight(alias: str, totals: str) -> str:
    return (
        f"CASE WHEN {totals}.wc > 0 THEN CAST({alias}.w_cost AS DOUBLE) / CAST({totals}.wc AS DOUBLE) "
        f"WHEN {totals}.wt > 0 THEN {alias}.w_tokens / {totals}.wt "
        f"WHEN {totals}.wr > 0 THEN {alias}.w_requests / {totals}.wr "
        f"ELSE 1.0 / {totals}.n END"
    )


def _model_compatible(a: str, b: str) -> str:
    return (
        f"({a}.model IS NULL OR {b}.model IS NULL OR starts_with({a}.model, {b}.model) "
        f"OR starts_with({b}.model, {a}.model))"
    )


def _exact_split(parts: str, key: str, order: str) -> str:
    """Columns that split each metric of ``src`` by ``frac``; the first row per ``key`` takes the remainder."""
    return ", ".join(
        f"CAST(CASE WHEN row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1 "
        f"THEN {parts}.{m} - coalesce(sum(round({parts}.{m} * CAST(frac AS DECIMAL(38,18)), 10)) "
        f"OVER (PARTITION BY {key}) - round({parts}.{m} * CAST(frac AS DECIMAL(38,18)), 10), 0) "
        f"ELSE round({parts}.{m} * CAST(frac AS DECIMAL(38,18)), 10) END AS DECIMAL(38,10)) AS {m}"
        for m in METRICS
    )


SPEND_SQL = f"""
CREATE OR REPLACE TEMP TABLE usage_groups AS
SELECT provider, day, billing_period, source_format, model, {_D}, any_value(account) AS account,
       sum(coalesce(cost, 0)) AS w_cost, sum(total_tokens) AS w_tokens, sum(requests) AS w_requests,
       row_number() OVER () AS gid
FROM usage_facts
GROUP BY provider, day, billing_period, source_format, model, {_D};

CREATE OR REPLACE TEMP TABLE coverage AS
SELECT provider, billing_period, source_format FROM (
    SELECT provider, billing_period, source_format,
           row_number() OVER (PARTITION BY provider, billing_period
                              ORDER BY {SOURCE_PRIORITY}, sum(w_tokens) DESC, source_format) AS rn
    FROM usage_groups GROUP BY provider, billing_period, source_format
) WHERE rn = 1;

CREATE OR REPLACE TEMP TABLE covered_days AS
SELECT DISTINCT g.provider, g.day FROM usage_groups g
JOIN coverage c ON c.provider = g.provider AND c.billing_period = g.billing_period
               AND c.source_format = g.source_format;

CREATE OR REPLACE TEMP TABLE covering_groups AS
SELECT g.* FROM usage_groups g
JOIN coverage c ON c.provider = g.provider AND c.billing_period = g.billing_period
WHERE g.source_format = c.source_format
   OR NOT EXISTS (SELECT 1 FROM covered_days d WHERE d.provider = g.provider AND d.day = g.day);

-- a detail record of a model the coverage source did not see that day (no compatible group at all) is usage
-- of its own, not a refinement: it joins the primary groups instead of being dropped
CREATE OR REPLACE TEMP TABLE primary_groups AS
SELECT * FROM covering_groups
UNION ALL
SELECT d.* FROM usage_groups d
WHERE d.gid NOT IN (SELECT gid FROM covering_groups)
  AND NOT EXISTS (SELECT 1 FROM covering_groups p
                  WHERE p.provider = d.provider AND p.day = d.day AND {_model_compatible("p", "d")});

CREATE OR REPLACE TEMP TABLE detail_parent AS
SELECT d_gid, p_gid FROM (
    SELECT d.gid AS d_gid, p.gid AS p_gid,
           row_number() OVER (PARTITION BY d.gid ORDER BY
               {" + ".join(f"CAST(p.{x} IS NOT NULL AND p.{x} = d.{x} AS INTEGER)" for x in CONSISTENCY_DIMS)}
               + CAST(p.model = d.model AS INTEGER) DESC, p.w_cost DESC, p.gid) AS rn
    FROM usage_groups d
    JOIN primary_groups p ON p.provider = d.provider AND p.day = d.day AND {_model_compatible("p", "d")}
         AND {" AND ".join(f"(p.{x} IS NULL OR d.{x} IS NULL OR p.{x} = d.{x})" for x in CONSISTENCY_DIMS)}
    WHERE d.gid NOT IN (SELECT gid FROM primary_groups)
) WHERE rn = 1;

CREATE OR REPLACE TEMP TABLE refined AS
WITH kids AS (
    SELECT dp.p_gid, d.*, sum(d.w_cost) OVER (PARTITION BY dp.p_gid) AS kids_cost,
           sum(d.w_tokens) OVER (PARTITION BY dp.p_gid) AS kids_tokens
    FROM detail_parent dp JOIN usage_groups d ON d.gid = dp.d_gid
)
SELECT k.p_gid, k.gid AS rid, p.provider, p.day, p.billing_period, coalesce(k.model, p.model) AS model,
       {
    ", ".join(f"coalesce(k.{x}, p.{x}) AS {x}" for x in DIMS)
}, k.w_tokens AS tokens, k.w_requests AS requests,
       CASE WHEN p.w_cost > 0 AND k.kids_cost > 0
                THEN CAST(k.w_cost AS DOUBLE) / CAST(greatest(p.w_cost, k.kids_cost) AS DOUBLE)
            WHEN greatest(p.w_tokens, k.kids_tokens) > 0 THEN k.w_tokens / greatest(p.w_tokens, k.kids_tokens)
            ELSE 0 END AS frac,
       false AS remainder
FROM kids k JOIN primary_groups p ON p.gid = k.p_gid
UNION ALL
SELECT p.gid, p.gid, p.provider, p.day, p.billing_period, p.model, {", ".join(f"p.{x}" for x in DIMS)},
       greatest(p.w_tokens - coalesce(kt.tokens, 0), 0), greatest(p.w_requests - coalesce(kt.requests, 0), 0),
       NULL, true
FROM primary_groups p
LEFT JOIN (SELECT p_gid, sum(w_tokens) AS tokens, sum(w_requests) AS requests FROM kids GROUP BY p_gid) kt
       ON kt.p_gid = p.gid;

CREATE OR REPLACE TEMP TABLE billing_rows AS
SELECT *, row_number() OVER () AS bid FROM cost_facts WHERE llm_provider IS NOT NULL;

CREATE OR REPLACE TEMP VIEW usage_by_model AS
SELECT provider, day, model, sum(w_cost) AS wc, sum(w_tokens) AS wt, sum(w_requests) AS wr, count(*) AS n
FROM primary_groups GROUP BY ALL;

CREATE OR REPLACE TEMP VIEW usage_by_day AS
SELECT provider, day, sum(w_cost) AS wc, sum(w_tokens) AS wt, sum(w_requests) AS wr, count(*) AS n
FROM primary_groups GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE shares AS
WITH by_model AS (
    SELECT b.bid, g.gid, {_weight("g", "t")} AS frac
    FROM billing_rows b
    JOIN usage_by_model t ON t.provider = b.llm_provider AND t.day = b.day AND t.model = b.model
    JOIN primary_groups g ON g.provider = b.llm_provider AND g.day = b.day AND g.model = b.model
), by_day AS (
    SELECT b.bid, g.gid, {_weight("g", "t")} AS frac
    FROM billing_rows b
    JOIN usage_by_day t ON t.provider = b.llm_provider AND t.day = b.day
    JOIN primary_groups g ON g.provider = b.llm_provider AND g.day = b.day
    WHERE b.bid NOT IN (SELECT bid FROM by_model)
)
SELECT * FROM by_model UNION ALL SELECT * FROM by_day;

CREATE OR REPLACE TEMP TABLE parts AS
SELECT row_number() OVER () AS part_id, * FROM (
    SELECT s.gid AS p_gid, false AS is_estimate,
           {", ".join(f"b.{c}" for c in _COMMON)}, b.model AS bill_model,
           {", ".join(f"b.{x} AS bill_{x}" for x in DIMS)},
           {_exact_split("b", "s.bid", "s.frac DESC, s.gid")}
    FROM shares s JOIN billing_rows b USING (bid)
    UNION ALL
    SELECT g.gid, true, g.day, g.billing_period, 'usage-estimate',
        CASE g.provider WHEN 'openai' THEN 'OpenAI' WHEN 'anthropic' THEN 'Anthropic'
            WHEN 'aws.bedrock' THEN 'AWS' WHEN 'azure.ai.openai' THEN 'Microsoft'
            WHEN 'gcp.vertex_ai' THEN 'Google Cloud' ELSE g.provider END,
        g.provider, NULL, g.account,
        CASE g.provider WHEN 'openai' THEN 'OpenAI API' WHEN 'anthropic' THEN 'Anthropic API'
            WHEN 'aws.bedrock' THEN 'Amazon Bedrock' WHEN 'azure.ai.openai' THEN 'Azure OpenAI'
            WHEN 'gcp.vertex_ai' THEN 'Vertex AI' ELSE g.provider END,
        'AI and Machine Learning', 'Generative AI', NULL, NULL, NULL, NULL, NULL, 'Usage', 'Usage-Based', 'USD',
        g.model, {", ".join("NULL" for _ in DIMS)},
        {", ".join("CAST(g.w_cost AS DECIMAL(38,10))" for _ in METRICS)}
    FROM primary_groups g
    WHERE g.w_cost > 0 AND NOT EXISTS (
        SELECT 1 FROM billing_rows b WHERE b.llm_provider = g.provider AND b.billing_period = g.billing_period)
);

CREATE OR REPLACE TEMP VIEW allocated AS
WITH pieces AS (
    SELECT p.*, r.rid, r.remainder, coalesce(r.frac, 0) AS frac, r.model AS usage_model,
           {", ".join(f"r.{x} AS usage_{x}" for x in DIMS)}
    FROM parts p JOIN refined r ON r.p_gid = p.p_gid
)
SELECT {", ".join(_COMMON)}, coalesce(usage_model, bill_model) AS model,
       {", ".join(f"coalesce(usage_{x}, bill_{x}) AS {x}" for x in DIMS)},
       {
    ", ".join(
        f"CAST(CASE WHEN remainder THEN {m} - coalesce(sum(CASE WHEN NOT remainder THEN "
        f"round({m} * CAST(frac AS DECIMAL(38,18)), 10) END) OVER (PARTITION BY part_id), 0) "
        f"ELSE round({m} * CAST(frac AS DECIMAL(38,18)), 10) END AS DECIMAL(38,10)) AS {m}"
        for m in METRICS
    )
},
       is_estimate, true AS allocated_by_usage
FROM pieces;

CREATE OR REPLACE TEMP VIEW spend_native AS
SELECT {", ".join(_COMMON)}, model, {_D}, {
    ", ".join(METRICS)
}, false AS is_estimate, false AS allocated_by_usage
FROM cost_facts WHERE llm_provider IS NULL
UNION ALL BY NAME
SELECT {", ".join(_COMMON)}, model, {_D}, {
    ", ".join(METRICS)
}, false AS is_estimate, false AS allocated_by_usage
FROM billing_rows WHERE bid NOT IN (SELECT bid FROM shares)
UNION ALL BY NAME
SELECT * FROM allocated;

CREATE OR REPLACE TEMP VIEW usage_allocated AS
SELECT provider, day, billing_period, model, {_D}, tokens, requests FROM refined;
"""


def currency_sql(target: str, rates: Mapping[str, Decimal]) -> tuple[str, str]:
    """(multiplier expression, currency expression) converting ``currency`` into ``target``.

    ``rates`` give 1 unit of a currency in USD. A currency without a rate (or any currency when the target
    has none) keeps its amounts and its code, so it is reported separately, never mixed in silently.
    """
    usd = {k.upper(): Decimal(v) for k, v in rates.items()}
    usd.setdefault("USD", Decimal(1))
    target = target.upper()
    if target not in usd:
        return "1", "currency"
    whens = [
        f"WHEN {sql_string(c)} THEN CAST({usd[c] / usd[target]:.12f} AS DECIMAL(28,12))"
        for c in sorted(usd)
        if c != target
    ]
    if not whens:
        return "1", "currency"
    known = ", ".join(sql_string(c) for c in sorted(usd))
    return (
        f"(CASE upper(currency) {' '.join(whens)} ELSE 1 END)",
        f"(CASE WHEN upper(currency) IN ({known}) THEN {sql_string(target)} ELSE currency END)",
    )


def install_spend_views(
    con: duckdb.DuckDBPyConnection,
    *,
    target_currency: str = "USD",
    rates: Mapping[str, Decimal] | None = None,
) -> None:
    """Create ``spend`` (allocated money) and ``usage_allocated`` (de-duplicated token and request counts).

    Only the LLM part of the bill and the aggregated usage are materialised (as temp tables, so their
    row ids are stable); the rest of the bill streams from Parquet. Amounts in other currencies are
    converted to ``target_currency`` with ``rates`` (see ``currency_sql``).
    """
    for statement in SPEND_SQL.split(";\n"):
        if statement.strip():
            con.execute(statement)
    factor, currency = currency_sql(target_currency, rates or {})
    converted = ", ".join(f"CAST({m} * {factor} AS DECIMAL(38,10)) AS {m}" for m in METRICS)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW spend AS SELECT * REPLACE ({converted}, {currency} AS currency) "
        "FROM spend_native"
    )


RECONCILIATION_SQL = """
WITH billed AS (
    SELECT llm_provider AS provider, billing_period, sum(effective_cost) AS billed
    FROM cost_facts WHERE llm_provider IS NOT NULL GROUP BY ALL
), used AS (
    SELECT g.provider, g.billing_period, any_value(c.source_format) AS usage_source,
           sum(g.w_cost) AS usage_estimate, sum(g.w_tokens) AS tokens
    FROM primary_groups g JOIN coverage c ON c.provider = g.provider AND c.billing_period = g.billing_period
    GROUP BY ALL
), unpriced AS (
    SELECT provider, billing_period, count(*) AS unpriced_records FROM usage_facts WHERE cost IS NULL GROUP BY ALL
), allocated AS (
    SELECT llm_provider AS provider, billing_period, sum(effective_cost) AS allocated
    FROM spend WHERE allocated_by_usage AND NOT is_estimate GROUP BY ALL
)
SELECT coalesce(b.provider, u.provider) AS provider, coalesce(b.billing_period, u.billing_period) AS billing_period,
       u.usage_source, b.billed, u.usage_estimate, coalesce(a.allocated, 0) AS allocated,
       CASE WHEN b.billed IS NOT NULL THEN b.billed - coalesce(a.allocated, 0) END AS unallocated,
       coalesce(u.tokens, 0) AS tokens, coalesce(n.unpriced_records, 0) AS unpriced_records
FROM billed b
FULL OUTER JOIN used u ON u.provider = b.provider AND u.billing_period = b.billing_period
LEFT JOIN allocated a ON a.provider = coalesce(b.provider, u.provider)
    AND a.billing_period = coalesce(b.billing_period, u.billing_period)
LEFT JOIN unpriced n ON n.provider = coalesce(b.provider, u.provider)
    AND n.billing_period = coalesce(b.billing_period, u.billing_period)
ORDER BY 2, 1
"""
RECONCILIATION_COLUMNS = (
    "provider",
    "billing_period",
    "usage_source",
    "billed",
    "usage_estimate",
    "allocated",
    "unallocated",
    "tokens",
    "unpriced_records",
)
