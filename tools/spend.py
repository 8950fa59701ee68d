"""The allocated spend relation: billing truth, allocated to teams/features by usage, never added to it.

* Spend totals come from billing facts only (FOCUS exports, provider cost APIs).
* A billing row of an LLM provider (Bedrock, Azure OpenAI, OpenAI, Anthropic, Vertex generative AI) on a
  day with usage facts of the same provider is split across that usage, by each usage group's priced
  share (tokens, then requests, when no price is known) — matched on the model when the billing row
  names one, else on provider and day. The split keeps the billing row's account, service and region and
  takes team / project / feature / environment from the usage (the billing row's own tags fill gaps).
  Shares are rounded to 1e-10 and the rounding remainder goes to the largest share, so a split row
  sums back to its billed amount exactly.
* Usage of a provider that has no billing facts in that billing period is reported at its computed
  price as an *estimate* (``is_estimate``), labelled as such in every output.
* Usage on a day its provider's billing does not cover (while the period is billed) adds nothing:
  the reconciliation view shows it.
"""

from __future__ import annotations

import duckdb

from tools.store.schema import DIMENSION_COLUMNS

DIMS = [name for name, _ in DIMENSION_COLUMNS]
_METRICS = ("billed_cost", "effective_cost", "list_cost")

#: usage aggregated to the allocation grain (no task ids: unit costs per task divide by task counts)
_USAGE_GROUPS = f"""
SELECT provider, day, billing_period, model, {", ".join(DIMS)}, any_value(account) AS account,
       sum(coalesce(cost, 0)) AS w_cost, sum(total_tokens) AS w_tokens, sum(requests) AS w_requests,
       row_number() OVER () AS gid
FROM usage_facts
GROUP BY provider, day, billing_period, model, {", ".join(DIMS)}
"""

_BILLING = "SELECT *, row_number() OVER () AS bid FROM cost_facts WHERE llm_provider IS NOT NULL"


def _weight(alias: str, totals: str) -> str:
    return (
        f"CASE WHEN {totals}.wc > 0 THEN CAST({alias}.w_cost AS DOUBLE) / CAST({totals}.wc AS DOUBLE) "
        f"WHEN {totals}.wt > 0 THEN {alias}.w_tokens / {totals}.wt "
        f"WHEN {totals}.wr > 0 THEN {alias}.w_requests / {totals}.wr "
        f"ELSE 1.0 / {totals}.n END"
    )


def _dim_select(usage: str, billing: str) -> str:
    return ", ".join(f"coalesce({usage}.{d}, {billing}.{d}) AS {d}" for d in DIMS)


_COMMON = (
    "day, billing_period, source, provider, llm_provider, billing_account, sub_account, service, "
    "service_category, service_subcategory, region, resource, resource_name, resource_type, sku, "
    "charge_category, charge_frequency, currency"
)

SPEND_SQL = f"""
CREATE OR REPLACE TEMP TABLE usage_groups AS {_USAGE_GROUPS};
CREATE OR REPLACE TEMP TABLE billing_rows AS {_BILLING};
CREATE OR REPLACE TEMP VIEW usage_by_model AS
    SELECT provider, day, model, sum(w_cost) AS wc, sum(w_tokens) AS wt, sum(w_requests) AS wr, count(*) AS n
    FROM usage_groups GROUP BY ALL;
CREATE OR REPLACE TEMP VIEW usage_by_day AS
    SELECT provider, day, sum(w_cost) AS wc, sum(w_tokens) AS wt, sum(w_requests) AS wr, count(*) AS n
    FROM usage_groups GROUP BY ALL;
CREATE OR REPLACE TEMP VIEW shares AS
WITH by_model AS (
    SELECT b.bid, g.gid, {_weight("g", "t")} AS frac
    FROM billing_rows b
    JOIN usage_by_model t ON t.provider = b.llm_provider AND t.day = b.day AND t.model = b.model
    JOIN usage_groups g ON g.provider = b.llm_provider AND g.day = b.day AND g.model = b.model
), by_day AS (
    SELECT b.bid, g.gid, {_weight("g", "t")} AS frac
    FROM billing_rows b
    JOIN usage_by_day t ON t.provider = b.llm_provider AND t.day = b.day
    JOIN usage_groups g ON g.provider = b.llm_provider AND g.day = b.day
    WHERE b.llm_provider IS NOT NULL AND b.bid NOT IN (SELECT bid FROM by_model)
), all_shares AS (SELECT * FROM by_model UNION ALL SELECT * FROM by_day)
SELECT bid, gid, frac, row_number() OVER (PARTITION BY bid ORDER BY frac DESC, gid) AS rn FROM all_shares;
CREATE OR REPLACE TEMP VIEW allocated AS
WITH parts AS (
    SELECT s.bid, s.gid, s.rn,
        {
    ", ".join(
        f"CASE WHEN s.rn > 1 THEN round(b.{m} * CAST(s.frac AS DECIMAL(38,18)), 10) END AS {m}_part"
        for m in _METRICS
    )
}
    FROM shares s JOIN billing_rows b USING (bid)
)
SELECT {", ".join(f"b.{c.strip()}" for c in _COMMON.split(","))},
    coalesce(g.model, b.model) AS model, {_dim_select("g", "b")},
    {
    ", ".join(
        f"CAST(CASE WHEN p.rn = 1 THEN b.{m} - coalesce(sum(p.{m}_part) OVER (PARTITION BY p.bid), 0) "
        f"ELSE p.{m}_part END AS DECIMAL(38,10)) AS {m}"
        for m in _METRICS
    )
},
    false AS is_estimate, true AS allocated_by_usage
FROM parts p JOIN billing_rows b USING (bid) JOIN usage_groups g USING (gid);
CREATE OR REPLACE TEMP VIEW billed_llm_periods AS
    SELECT DISTINCT llm_provider AS provider, billing_period FROM cost_facts WHERE llm_provider IS NOT NULL;
CREATE OR REPLACE TEMP VIEW spend AS
SELECT {_COMMON}, model, {", ".join(DIMS)}, {", ".join(_METRICS)}, false AS is_estimate,
       false AS allocated_by_usage
FROM cost_facts WHERE llm_provider IS NULL
UNION ALL BY NAME
SELECT {_COMMON}, model, {", ".join(DIMS)}, {", ".join(_METRICS)}, false AS is_estimate,
       false AS allocated_by_usage
FROM billing_rows WHERE bid NOT IN (SELECT bid FROM shares)
UNION ALL BY NAME
SELECT * FROM allocated
UNION ALL BY NAME
SELECT g.day, g.billing_period, 'usage-estimate' AS source,
    CASE g.provider WHEN 'openai' THEN 'OpenAI' WHEN 'anthropic' THEN 'Anthropic'
        WHEN 'aws.bedrock' THEN 'AWS' WHEN 'azure.ai.openai' THEN 'Microsoft'
        WHEN 'gcp.vertex_ai' THEN 'Google Cloud' ELSE g.provider END AS provider,
    g.provider AS llm_provider, NULL AS billing_account, g.account AS sub_account,
    CASE g.provider WHEN 'openai' THEN 'OpenAI API' WHEN 'anthropic' THEN 'Anthropic API'
        WHEN 'aws.bedrock' THEN 'Amazon Bedrock' WHEN 'azure.ai.openai' THEN 'Azure OpenAI'
        WHEN 'gcp.vertex_ai' THEN 'Vertex AI' ELSE g.provider END AS service,
    'AI and Machine Learning' AS service_category, 'Generative AI' AS service_subcategory,
    NULL AS region, NULL AS resource, NULL AS resource_name, NULL AS resource_type, NULL AS sku,
    'Usage' AS charge_category, 'Usage-Based' AS charge_frequency, 'USD' AS currency, g.model,
    {", ".join(f"g.{d}" for d in DIMS)},
    {", ".join(f"CAST(g.w_cost AS DECIMAL(38,10)) AS {m}" for m in _METRICS)},
    true AS is_estimate, false AS allocated_by_usage
FROM usage_groups g
WHERE NOT EXISTS (SELECT 1 FROM billed_llm_periods p WHERE p.provider = g.provider
                  AND p.billing_period = g.billing_period)
  AND g.w_cost > 0;
"""


def install_spend_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``spend`` view (and its helpers) on a connection that has the lake's fact views.

    Only the LLM part of the bill and the aggregated usage are materialised (as temp tables, so their
    row ids are stable); the rest of the bill streams from Parquet.
    """
    for statement in SPEND_SQL.split(";\n"):
        if statement.strip():
            con.execute(statement)


RECONCILIATION_SQL = """
WITH billed AS (
    SELECT llm_provider AS provider, billing_period, sum(effective_cost) AS billed
    FROM cost_facts WHERE llm_provider IS NOT NULL GROUP BY ALL
), used AS (
    SELECT provider, billing_period, sum(coalesce(cost, 0)) AS usage_estimate,
           sum(total_tokens) AS tokens, count(*) FILTER (WHERE cost IS NULL) AS unpriced_records
    FROM usage_facts GROUP BY ALL
), allocated AS (
    SELECT llm_provider AS provider, billing_period, sum(effective_cost) AS allocated
    FROM spend WHERE allocated_by_usage GROUP BY ALL
)
SELECT coalesce(b.provider, u.provider) AS provider, coalesce(b.billing_period, u.billing_period) AS billing_period,
       b.billed, u.usage_estimate, coalesce(a.allocated, 0) AS allocated,
       CASE WHEN b.billed IS NOT NULL THEN b.billed - coalesce(a.allocated, 0) END AS unallocated,
       coalesce(u.tokens, 0) AS tokens, coalesce(u.unpriced_records, 0) AS unpriced_records
FROM billed b
FULL OUTER JOIN used u ON u.provider = b.provider AND u.billing_period = b.billing_period
LEFT JOIN allocated a ON a.provider = coalesce(b.provider, u.provider)
    AND a.billing_period = coalesce(b.billing_period, u.billing_period)
ORDER BY 2, 1
"""
