"""Column sets of the two fact tables in the cost lake (name, DuckDB type)."""

from __future__ import annotations

MONEY = "DECIMAL(38,10)"

DIMENSION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("team", "VARCHAR"),
    ("project", "VARCHAR"),
    ("environment", "VARCHAR"),
    ("feature", "VARCHAR"),
    ("cost_center", "VARCHAR"),
    ("owner", "VARCHAR"),
    ("workload", "VARCHAR"),
)

#: Billing facts at daily grain (FOCUS exports, provider cost APIs). Spend totals come from these only.
COST_FACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("day", "DATE"),
    ("billing_period", "VARCHAR"),
    ("source", "VARCHAR"),
    ("record_key", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("llm_provider", "VARCHAR"),
    ("billing_account", "VARCHAR"),
    ("billing_account_name", "VARCHAR"),
    ("sub_account", "VARCHAR"),
    ("sub_account_name", "VARCHAR"),
    ("service", "VARCHAR"),
    ("service_category", "VARCHAR"),
    ("service_subcategory", "VARCHAR"),
    ("region", "VARCHAR"),
    ("resource", "VARCHAR"),
    ("resource_name", "VARCHAR"),
    ("resource_type", "VARCHAR"),
    ("sku", "VARCHAR"),
    ("charge_category", "VARCHAR"),
    ("charge_class", "VARCHAR"),
    ("charge_frequency", "VARCHAR"),
    ("pricing_unit", "VARCHAR"),
    ("consumed_quantity", MONEY),
    ("consumed_unit", "VARCHAR"),
    ("billed_cost", MONEY),
    ("effective_cost", MONEY),
    ("list_cost", MONEY),
    ("currency", "VARCHAR"),
    ("model", "VARCHAR"),
    *DIMENSION_COLUMNS,
    ("tags", "VARCHAR"),
    ("row_count", "BIGINT"),
    ("run_id", "VARCHAR"),
)

#: LLM usage facts: who used which model how much. They allocate billed spend; they are not added to it.
USAGE_FACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "TIMESTAMPTZ"),
    ("day", "DATE"),
    ("billing_period", "VARCHAR"),
    ("source", "VARCHAR"),
    ("source_format", "VARCHAR"),
    ("record_key", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("model", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("requests", "BIGINT"),
    ("input_uncached_tokens", "BIGINT"),
    ("cache_read_tokens", "BIGINT"),
    ("cache_write_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("reasoning_tokens", "BIGINT"),
    ("total_tokens", "BIGINT"),
    ("cost", MONEY),
    ("price_source", "VARCHAR"),
    ("currency", "VARCHAR"),
    ("batch", "BOOLEAN"),
    ("service_tier", "VARCHAR"),
    ("account", "VARCHAR"),
    *DIMENSION_COLUMNS,
    ("task_id", "VARCHAR"),
    ("task_status", "VARCHAR"),
    ("adjusted_count", "BIGINT"),
    ("attributes", "VARCHAR"),
    ("run_id", "VARCHAR"),
)

COST_FACT_NAMES = tuple(name for name, _ in COST_FACT_COLUMNS)
USAGE_FACT_NAMES = tuple(name for name, _ in USAGE_FACT_COLUMNS)
