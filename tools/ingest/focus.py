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
        return (
            f"read_csv({quoted}, header=true, all_varchar=true, nullstr=['NULL', 'null', ''], "
            "auto_detect=true, sample_size=-1)"
            if name.endswith((".csv", ".txt"))
            else f"read_csv({quoted}, header=true, all_varchar=true, nullstr=['NULL', 'null', ''], "
            "auto_detect=true)"
        )
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
    return "NULLIF(trim(CAST(" + '"' + name.replace('"', '""') + '"' + " AS VARCHAR)), '')"


def _ts(raw: str) -> str:
    """Parse a FOCUS datetime in any of the formats real exports use -> TIMESTAMPTZ (UTC)."""
    return (
        f"(CASE WHEN regexp_matches({raw}, '^\\d{{1,2}}/\\d{{1,2}}/\\d{{2,4}}') "
        f"THEN CAST(try_strptime(split_part({raw}, ' ', 1), ['%m/%d/%y', '%m/%d/%Y']) AS TIMESTAMPTZ) "
        f"ELSE TRY_CAST({raw} AS TIMESTAMPTZ) END)"
    )


def _money(raw: str) -> str:
    """A decimal; also accepts a currency sign and thousands separators ("$10,000.00"), as the spec's
    own examples have them."""
    return (
        f"coalesce(TRY_CAST({raw} AS {MONEY}), CASE WHEN regexp_matches({raw}, '^-?[$€£]?-?[0-9]{{1,3}}(,[0-9]{{3}})*(\\.[0-9]+)?$') "
        f"THEN TRY_CAST(regexp_replace({raw}, '[$€£,]', '', 'g') AS {MONEY}) END)"
    )


def _enum(raw: str, internal: str) -> str:
    whens = " ".join(f"WHEN {sql_string(v.lower())} THEN {sql_string(v)}" for v in _ENUMS[internal])
    return f"(CASE lower({raw}) {whens} ELSE {raw} END)"


def _select_parsed(mapping: dict[str, str], path: Path) -> str:
    """SELECT of every row parsed to typed columns, plus ``problem`` (NULL when the row is good)."""
    c = {name: _col(mapping, name) for name in COLUMNS}
    start = _ts(c["charge_start"])
    end = _ts(c["charge_end"])
    bp_start = _ts(c["billing_period_start"])
    dec = {n: _money(c[n]) for n in ("billed_cost", "effective_cost", "list_cost", "consumed_quantity")}
    tags_ok = (
        f"({c['tags']} IS NULL OR (CASE WHEN json_valid({c['tags']}) THEN json_type({c['tags']}) = 'OBJECT' "
        "ELSE false END))"
    )
    problems = [
        (f"{c['charge_start']} IS NULL", "ChargePeriodStart", "a datetime, e.g. 2024-09-01T00:00:00Z"),
        (
            f"{start} IS NULL OR year({start}) NOT BETWEEN 1990 AND 2200",
            "ChargePeriodStart",
            "a datetime, e.g. 2024-09-01T00:00:00Z",
        ),
        (
            f"{c['charge_end']} IS NOT NULL AND {end} IS NULL",
            "ChargePeriodEnd",
            "a datetime, e.g. 2024-09-01T01:00:00Z",
        ),
        (f"{end} < {start}", "ChargePeriodEnd", "a datetime not before ChargePeriodStart"),
        (f"{c['billed_cost']} IS NULL OR {dec['billed_cost']} IS NULL", "BilledCost", "a decimal number"),
        (
            f"{c['effective_cost']} IS NOT NULL AND {dec['effective_cost']} IS NULL",
            "EffectiveCost",
            "a decimal number",
        ),
        (f"{c['list_cost']} IS NOT NULL AND {dec['list_cost']} IS NULL", "ListCost", "a decimal number"),
        (
            f"{c['consumed_quantity']} IS NOT NULL AND {dec['consumed_quantity']} IS NULL",
            "ConsumedQuantity",
            "a decimal number",
        ),
        (
            f"{c['billing_period_start']} IS NOT NULL AND {bp_start} IS NULL",
            "BillingPeriodStart",
            "a datetime, e.g. 2024-09-01T00:00:00Z",
        ),
        (f"NOT {tags_ok}", "Tags", 'a JSON object, e.g. {"team": "search"}'),
    ]
    problem_sql = (
        "CASE "
        + " ".join(f"WHEN {cond} THEN {sql_string(col + '|' + expected)}" for cond, col, expected in problems)
        + " END"
    )
    return f"""
        SELECT
            CAST({start} AS DATE) AS day,
            strftime(coalesce({bp_start}, {start}), '%Y-%m') AS billing_period,
            {c["provider"]} AS provider,
            {c["billing_account"]} AS billing_account,
            {c["billing_account_name"]} AS billing_account_name,
            {c["sub_account"]} AS sub_account,
            {c["sub_account_name"]} AS sub_account_name,
            {c["service"]} AS service,
            {_enum(c["service_category"], "service_category")} AS service_category,
            {c["service_subcategory"]} AS service_subcategory,
            {c["region"]} AS region,
            {c["resource"]} AS resource,
            {c["resource_name"]} AS resource_name,
            {c["resource_type"]} AS resource_type,
            {c["sku"]} AS sku,
            {_enum(c["charge_category"], "charge_category")} AS charge_category,
            {_enum(c["charge_class"], "charge_class")} AS charge_class,
            {_enum(c["charge_frequency"], "charge_frequency")} AS charge_frequency,
            {c["charge_description"]} AS charge_description,
            {c["pricing_unit"]} AS pricing_unit,
            {dec["consumed_quantity"]} AS consumed_quantity,
            {c["consumed_unit"]} AS consumed_unit,
            {dec["billed_cost"]} AS billed_cost,
            coalesce({dec["effective_cost"]}, {dec["billed_cost"]}) AS effective_cost,
            {dec["list_cost"]} AS list_cost,
            upper(coalesce({c["currency"]}, 'USD')) AS currency,
            CASE WHEN {tags_ok} THEN CAST(json({c["tags"]}) AS VARCHAR) END AS tags,
            {problem_sql} AS problem
        FROM {reader_sql(path)}
    """


STAGE_COLUMNS = (
    "day",
    "billing_period",
    "provider",
    "billing_account",
    "billing_account_name",
    "sub_account",
    "sub_account_name",
    "service",
    "service_category",
    "service_subcategory",
    "region",
    "resource",
    "resource_name",
    "resource_type",
    "sku",
    "charge_category",
    "charge_class",
    "charge_frequency",
    "charge_description",
    "pricing_unit",
    "consumed_unit",
    "currency",
    "tags",
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
            INSERT INTO {table}
            SELECT {keys}, sum(consumed_quantity), sum(billed_cost), sum(effective_cost), sum(list_cost),
                   count(*), bad, {int(file_id)}
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
    is_csv = not path.name.lower().endswith(".parquet")
    line_expr = "row_number() OVER () + 1" if is_csv else "row_number() OVER ()"
    raw_cols = {
        "ChargePeriodStart": _col(mapping, "charge_start"),
        "ChargePeriodEnd": _col(mapping, "charge_end"),
        "BilledCost": _col(mapping, "billed_cost"),
        "EffectiveCost": _col(mapping, "effective_cost"),
        "ListCost": _col(mapping, "list_cost"),
        "ConsumedQuantity": _col(mapping, "consumed_quantity"),
        "BillingPeriodStart": _col(mapping, "billing_period_start"),
        "Tags": _col(mapping, "tags"),
    }
    value_case = (
        "CASE split_part(problem, '|', 1) "
        + " ".join(f"WHEN {sql_string(k)} THEN {v}" for k, v in raw_cols.items())
        + " END"
    )
    parsed = _select_parsed(mapping, path).replace(
        "SELECT\n",
        f"SELECT\n {line_expr} AS line_no, "
        + ", ".join(f'{v} AS "raw_{k}"' for k, v in raw_cols.items())
        + ",\n",
        1,
    )
    value_case = (
        "CASE split_part(problem, '|', 1) "
        + " ".join(f'WHEN {sql_string(k)} THEN "raw_{k}"' for k in raw_cols)
        + " END"
    )
    sql = (
        f"SELECT line_no, problem, {value_case} FROM ({parsed}) WHERE problem IS NOT NULL ORDER BY line_no"
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
