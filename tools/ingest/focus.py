"""FOCUS (FinOps Open Cost and Usage Specification) 1.0–1.2 exports -> daily cost facts, inside DuckDB.

The file is read by DuckDB's CSV / Parquet reader as text, every value is parsed with TRY_CAST (so a bad
value marks its row as bad instead of failing the whole scan), and rows are aggregated to daily grain
per resource / sku / tag set in the same pass. Rows that fail a check are grouped apart (``bad``); they
are located (line, column, value) in a second pass only when there are any.

Accepted real-export quirks: ``NULL`` literal, ``YYYY-MM-DDTHH:MM:SSZ`` / ``YYYY-MM-DD HH:MM:SS`` /
``M/D/YY`` datetimes, extra columns with or without ``x_``, case variants of enumerations, negative
costs, Tags as a JSON object with string/number/bool/null values, a UTF-8 byte-order mark, FOCUS 0.5
column names (ChargeType, AmortizedCost, Provider, Region ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from tools.errors import IngestError, Location
from tools.ingest.records import Rejected
from tools.store.lake import fetch_one, sql_string

#: internal name -> FOCUS column names accepted for it (first present wins), matched case-insensitively.
COLUMNS: dict[str, tuple[str, ...]] = {
    "billed_cost": ("BilledCost",),
    "effective_cost": ("EffectiveCost", "AmortizedCost"),
    "list_cost": ("ListCost",),
    "charge_start": ("ChargePeriodStart",),
    "charge_end": ("ChargePeriodEnd",),
    "billing_period_start": ("BillingPeriodStart",),
    "billing_account": ("BillingAccountId",),
    "billing_account_name": ("BillingAccountName",),
    "sub_account": ("SubAccountId",),
    "sub_account_name": ("SubAccountName",),
    "provider": ("ServiceProviderName", "ProviderName", "Provider"),
    "service": ("ServiceName",),
    "service_category": ("ServiceCategory",),
    "service_subcategory": ("ServiceSubcategory",),
    "region": ("RegionId", "Region"),
    "resource": ("ResourceId", "ResourceID"),
    "resource_name": ("ResourceName",),
    "resource_type": ("ResourceType",),
    "sku": ("SkuId",),
    "charge_category": ("ChargeCategory", "ChargeType"),
    "charge_class": ("ChargeClass",),
    "charge_frequency": ("ChargeFrequency",),
    "charge_description": ("ChargeDescription",),
    "pricing_unit": ("PricingUnit",),
    "consumed_quantity": ("ConsumedQuantity",),
    "consumed_unit": ("ConsumedUnit",),
    "currency": ("BillingCurrency", "BilledCurrency"),
    "tags": ("Tags",),
}
REQUIRED = ("billed_cost", "charge_start", "charge_end")

_ENUMS: dict[str, tuple[str, ...]] = {
    "charge_category": ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    "charge_class": ("Correction",),
    "charge_frequency": ("One-Time", "Recurring", "Usage-Based"),
    "service_category": (
        "AI and Machine Learning",
        "Analytics",
        "Business Applications",
        "Compute",
        "Databases",
        "Developer Tools",
        "Multicloud",
        "Identity",
        "Integration",
        "Internet of Things",
        "Management and Governance",
        "Media",
        "Migration",
        "Mobile",
        "Networking",
        "Security",
        "Storage",
        "Web",
        "Other",
    ),
}

MONEY = "DECIMAL(38,10)"


@dataclass(frozen=True)
class FileFormat:
    reader: str  # SQL table function call


def reader_sql(path: Path) -> str:
    name = path.name.lower()
    quoted = sql_string(str(path))
    if name.endswith(".parquet"):
        return f"read_parquet({quoted})"
    if name.endswith((".csv", ".csv.gz", ".csv.gzip", ".csv.zst", ".txt", ".gz")):
        return f"read_csv({quoted}, header=true, all_varchar=true, nullstr=['NULL', 'null', ''], auto_detect=true)"
    raise IngestError(Location(path), "unsupported file type", "a FOCUS export as .csv, .csv.gz or .parquet")


def map_columns(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    """internal name -> actual column name in the file. Missing required columns are an error."""
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(path)}").fetchall()
    except duckdb.Error as exc:
        raise IngestError(
            Location(path, line=1),
            f"cannot read the file: {_first_line(exc)}",
            "a FOCUS export (CSV with a header row, or Parquet)",
        ) from None
    actual = {str(row[0]).strip().lstrip("\ufeff").lower(): str(row[0]) for row in described}
    mapping: dict[str, str] = {}
    for internal, names in COLUMNS.items():
        for name in names:
            if name.lower() in actual:
                mapping[internal] = actual[name.lower()]
                break
    missing = [COLUMNS[name][0] for name in REQUIRED if name not in mapping]
    if missing:
        raise IngestError(
            Location(path, line=1),
            f"missing mandatory FOCUS column(s): {', '.join(missing)}",
            f"a header row with {', '.join(COLUMNS[n][0] for n in REQUIRED)} (found: "
            f"{', '.join(str(r[0]) for r in described[:12])}{' ...' if len(described) > 12 else ''})",
        )
    return mapping


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _col(mapping: dict[str, str], internal: str) -> str:
    name = mapping.get(internal)
    if name is None:
        return "CAST(NULL AS VARCHAR)"
    return "NULLIF(CAST(" + '"' + name.replace('"', '""') + '"' + " AS VARCHAR), '')"


def _ts(raw: str) -> str:
    """Parse a FOCUS datetime in any of the formats real exports use -> TIMESTAMPTZ (UTC)."""
    return (
        f"(CASE WHEN contains({raw}, '/') "
        f"THEN CAST(try_strptime(split_part({raw}, ' ', 1), ['%m/%d/%y', '%m/%d/%Y']) AS TIMESTAMPTZ) "
        f"ELSE TRY_CAST({raw} AS TIMESTAMPTZ) END)"
    )


def _money(raw: str) -> str:
    """A decimal; also accepts a currency sign and thousands separators ("$10,000.00"), as the spec's
    own examples have them."""
    return (
        f"coalesce(TRY_CAST({raw} AS {MONEY}), CASE WHEN regexp_matches(trim({raw}), "
        f"'^-?[$€£]?-?[0-9]{{1,3}}(,[0-9]{{3}})*(\\.[0-9]+)?$') "
        f"THEN TRY_CAST(regexp_replace(trim({raw}), '[$€£,]', '', 'g') AS {MONEY}) END)"
    )


def _enum(raw: str, internal: str) -> str:
    whens = " ".join(f"WHEN {sql_string(v.lower())} THEN {sql_string(v)}" for v in _ENUMS[internal])
    return f"(CASE lower(trim({raw})) {whens} ELSE {raw} END)"


_MONEY_COLUMNS = ("billed_cost", "effective_cost", "list_cost", "consumed_quantity")
_TIME_COLUMNS = ("charge_start", "charge_end", "billing_period_start")
_EXAMPLE_TIME = "a datetime, e.g. 2024-09-01T00:00:00Z"

#: (condition over raw r_* and parsed p_* columns, FOCUS column, what was expected), first match reported
_PROBLEMS: tuple[tuple[str, str, str], ...] = (
    ("r_charge_start IS NULL", "ChargePeriodStart", _EXAMPLE_TIME),
    (
        "p_charge_start IS NULL OR year(p_charge_start) NOT BETWEEN 1990 AND 2200",
        "ChargePeriodStart",
        _EXAMPLE_TIME,
    ),
    (
        "r_charge_end IS NOT NULL AND p_charge_end IS NULL",
        "ChargePeriodEnd",
        "a datetime, e.g. 2024-09-01T01:00:00Z",
    ),
    ("p_charge_end < p_charge_start", "ChargePeriodEnd", "a datetime not before ChargePeriodStart"),
    ("p_billed_cost IS NULL", "BilledCost", "a decimal number"),
    ("r_effective_cost IS NOT NULL AND p_effective_cost IS NULL", "EffectiveCost", "a decimal number"),
    ("r_list_cost IS NOT NULL AND p_list_cost IS NULL", "ListCost", "a decimal number"),
    (
        "r_consumed_quantity IS NOT NULL AND p_consumed_quantity IS NULL",
        "ConsumedQuantity",
        "a decimal number",
    ),
    (
        "r_billing_period_start IS NOT NULL AND p_billing_period_start IS NULL",
        "BillingPeriodStart",
        _EXAMPLE_TIME,
    ),
    ("NOT p_tags_ok", "Tags", 'a JSON object, e.g. {"team": "search"}'),
)
PROBLEM_COLUMNS = {focus: f"r_{internal}" for internal, names in COLUMNS.items() for focus in names[:1]}


def _select_parsed(mapping: dict[str, str], path: Path, *, with_raw: bool = False) -> str:
    """SELECT of every row parsed to typed columns, plus ``problem`` (NULL when the row is good).

    Three layers, so that every value is parsed once: raw text (r_*), parsed values (p_*), output columns.
    ``with_raw`` keeps the raw columns and a ``line_no`` (for locating bad rows).
    """
    raw = ", ".join(f"{_col(mapping, name)} AS r_{name}" for name in COLUMNS)
    line = ", row_number() OVER () AS line_no" if with_raw else ""
    parsed = ", ".join(
        [f"{_ts('r_' + n)} AS p_{n}" for n in _TIME_COLUMNS]
        + [f"{_money('r_' + n)} AS p_{n}" for n in _MONEY_COLUMNS]
        + [
            "(r_tags IS NULL OR (CASE WHEN json_valid(r_tags) THEN json_type(r_tags) = 'OBJECT' ELSE false END))"
            " AS p_tags_ok"
        ]
    )
    problem = (
        "CASE "
        + " ".join(
            f"WHEN {cond} THEN {sql_string(col + '|' + expected)}" for cond, col, expected in _PROBLEMS
        )
        + " END"
    )
    keep = "COLUMNS('^r_'), line_no, " if with_raw else ""
    return f"""
        SELECT {keep}
            CAST(p_charge_start AS DATE) AS day,
            strftime(coalesce(p_billing_period_start, p_charge_start), '%Y-%m') AS billing_period,
            r_provider AS provider,
            r_billing_account AS billing_account,
            r_billing_account_name AS billing_account_name,
            r_sub_account AS sub_account,
            r_sub_account_name AS sub_account_name,
            r_service AS service,
            {_enum("r_service_category", "service_category")} AS service_category,
            r_service_subcategory AS service_subcategory,
            r_region AS region,
            r_resource AS resource,
            r_resource_name AS resource_name,
            r_resource_type AS resource_type,
            r_sku AS sku,
            {_enum("r_charge_category", "charge_category")} AS charge_category,
            {_enum("r_charge_class", "charge_class")} AS charge_class,
            {_enum("r_charge_frequency", "charge_frequency")} AS charge_frequency,
            r_charge_description AS charge_description,
            r_pricing_unit AS pricing_unit,
            p_consumed_quantity AS consumed_quantity,
            r_consumed_unit AS consumed_unit,
            p_billed_cost AS billed_cost,
            coalesce(p_effective_cost, p_billed_cost) AS effective_cost,
            p_list_cost AS list_cost,
            upper(coalesce(r_currency, 'USD')) AS currency,
            CASE WHEN p_tags_ok THEN CAST(json(r_tags) AS VARCHAR) END AS tags,
            {problem} AS problem
        FROM (SELECT *, {parsed} FROM (SELECT {raw}{line} FROM {reader_sql(path)}))
    """


#: a daily fact is one group of these (measured faster in DuckDB than grouping by fewer keys and carrying
#: the rest with any_value)
STAGE_COLUMNS = (
    "day",
    "billing_period",
    "provider",
    "billing_account",
    "sub_account",
    "service",
    "region",
    "resource",
    "sku",
    "charge_category",
    "charge_class",
    "charge_frequency",
    "currency",
    "tags",
    "billing_account_name",
    "sub_account_name",
    "service_category",
    "service_subcategory",
    "resource_name",
    "resource_type",
    "charge_description",
    "pricing_unit",
    "consumed_unit",
)


def create_stage(con: duckdb.DuckDBPyConnection, table: str) -> None:
    types = {"day": "DATE"}
    cols = ", ".join(f"{name} {types.get(name, 'VARCHAR')}" for name in STAGE_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} ({cols}, consumed_quantity {MONEY}, billed_cost {MONEY}, "
        f"effective_cost {MONEY}, list_cost {MONEY}, row_count BIGINT, bad BOOLEAN, file_id INTEGER)"
    )


@dataclass(frozen=True)
class StagedFile:
    rows_read: int
    rows_bad: int
    billing_periods: tuple[str, ...]


def stage_file(con: duckdb.DuckDBPyConnection, path: Path, table: str, file_id: int) -> StagedFile:
    """Read ``path`` and append its rows, aggregated to daily grain, to ``table``."""
    mapping = map_columns(con, path)
    keys = ", ".join(STAGE_COLUMNS)
    try:
        con.execute(
            f"""
            INSERT INTO {table} BY POSITION
            SELECT {keys}, sum(consumed_quantity), sum(billed_cost), sum(effective_cost),
                   sum(list_cost), count(*), bad, {int(file_id)}
            FROM (SELECT * EXCLUDE (problem), problem IS NOT NULL AS bad FROM ({_select_parsed(mapping, path)}))
            GROUP BY ALL
            """
        )
    except duckdb.Error as exc:
        raise IngestError(
            Location(path),
            f"cannot read the file: {_first_line(exc)}",
            "a well-formed CSV (consistent quoting and column count) or Parquet file",
        ) from None
    row = fetch_one(
        con,
        f"SELECT coalesce(sum(row_count), 0), coalesce(sum(row_count) FILTER (WHERE bad), 0), "
        f"list(DISTINCT billing_period ORDER BY billing_period) FILTER (WHERE NOT bad) "
        f"FROM {table} WHERE file_id = {int(file_id)}",
    )
    return StagedFile(int(row[0]), int(row[1]), tuple(p for p in (row[2] or []) if p))


def find_bad_rows(con: duckdb.DuckDBPyConnection, path: Path, limit: int | None = None) -> list[Rejected]:
    """Locate the bad rows of ``path``: line number (header is line 1), column, value, expectation."""
    mapping = map_columns(con, path)
    header_lines = 0 if path.name.lower().endswith(".parquet") else 1
    value_case = (
        "CASE split_part(problem, '|', 1) "
        + " ".join(f"WHEN {sql_string(focus)} THEN {raw}" for focus, raw in PROBLEM_COLUMNS.items())
        + " END"
    )
    sql = (
        f"SELECT line_no + {header_lines}, problem, {value_case} "
        f"FROM ({_select_parsed(mapping, path, with_raw=True)}) WHERE problem IS NOT NULL ORDER BY line_no"
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    out = []
    for line_no, problem, value in con.execute(sql).fetchall():
        column, expected = str(problem).split("|", 1)
        shown = "empty" if value is None else repr(value)
        out.append(
            Rejected(
                Location(path, line=int(line_no), column=mapping.get(_internal(column), column)),
                f"{column} is {shown}",
                expected,
            )
        )
    return out


def _internal(focus_name: str) -> str:
    for internal, names in COLUMNS.items():
        if focus_name in names:
            return internal
    return focus_name
