"""The tag taxonomy as SQL: raw tags / attributes (a JSON object column) -> canonical dimensions.

One implementation serves every source: FOCUS rows, provider cost APIs and LLM usage records are all
resolved inside DuckDB by the expressions built here, so the same tags always land on the same team.
Order of resolution for each dimension: the first configured tag key that has a non-empty value,
normalised through the value aliases; else the defaults configured for the row's account ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from config.model import DIMENSIONS, Taxonomy
from tools.store.lake import sql_string


def _json_key(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return sql_string(f'$."{escaped}"')


TAG_VALUES = "_tag_values"


@dataclass(frozen=True)
class DimensionSQL:
    """``tag_values`` must be selected as ``_tag_values`` in an inner query (it parses the JSON once per row);
    ``dimensions`` are the per-dimension expressions over it, for the outer query."""

    tag_values: str
    dimensions: dict[str, str]


def _lookup_keys(taxonomy: Taxonomy) -> list[str]:
    """Every tag key to look up, each also with AWS's ``user:`` prefix for user-defined cost allocation tags."""
    keys: list[str] = []
    for dimension in DIMENSIONS:
        for key in taxonomy.dimensions.get(dimension, []):
            for variant in (key, f"user:{key}"):
                if variant not in keys and not (key.startswith("user:") and variant != key):
                    keys.append(variant)
    return keys


def _first_tag_sql(keys: Sequence[str], index: dict[str, int]) -> str:
    parts = [f"NULLIF(trim({TAG_VALUES}[{index[k]}]), '')" for k in keys]
    parts += [f"NULLIF(trim({TAG_VALUES}[{index['user:' + k]}]), '')" for k in keys if "user:" + k in index]
    if not parts:
        return "CAST(NULL AS VARCHAR)"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _normalise_sql(expr: str, aliases: dict[str, list[str]]) -> str:
    if not aliases:
        return expr
    whens = []
    for canonical, names in aliases.items():
        for name in sorted({canonical, *names}):
            whens.append(f"WHEN {sql_string(name.lower())} THEN {sql_string(canonical)}")
    return f"(CASE lower({expr}) {' '.join(whens)} ELSE {expr} END)"


def _account_default_sql(dimension: str, taxonomy: Taxonomy, account_columns: Sequence[str]) -> str | None:
    mapping = {acct: dims[dimension] for acct, dims in taxonomy.accounts.items() if dimension in dims}
    if not mapping or not account_columns:
        return None
    cases = []
    for column in account_columns:
        whens = " ".join(f"WHEN {sql_string(a)} THEN {sql_string(v)}" for a, v in mapping.items())
        cases.append(f"(CASE {column} {whens} END)")
    return cases[0] if len(cases) == 1 else f"coalesce({', '.join(cases)})"


def dimension_sql(
    taxonomy: Taxonomy,
    tags_column: str,
    account_columns: Sequence[str],
    fallbacks: dict[str, str] | None = None,
) -> DimensionSQL:
    """SQL to resolve every canonical dimension from a JSON tags column.

    ``account_columns`` are expressions holding ids that ``taxonomy.accounts`` may map (most specific
    first, e.g. sub account before billing account). ``fallbacks`` are extra SQL expressions used last
    (e.g. a workload heuristic).
    """
    keys = _lookup_keys(taxonomy)
    index = {k: i + 1 for i, k in enumerate(keys)}
    paths = ", ".join(_json_key(k) for k in keys) or "'$.__none__'"
    tag_values = f"json_extract_string({tags_column}, [{paths}])"
    out: dict[str, str] = {}
    for dimension in DIMENSIONS:
        expr = _normalise_sql(
            _first_tag_sql(taxonomy.dimensions.get(dimension, []), index),
            taxonomy.values.get(dimension, {}),
        )
        candidates = [expr]
        default = _account_default_sql(dimension, taxonomy, account_columns)
        if default is not None:
            candidates.append(default)
        if fallbacks and dimension in fallbacks:
            candidates.append(fallbacks[dimension])
        out[dimension] = candidates[0] if len(candidates) == 1 else f"coalesce({', '.join(candidates)})"
    return DimensionSQL(tag_values, out)
