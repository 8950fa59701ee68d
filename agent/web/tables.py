"""Tables: what every chart's numbers are shown as (HTML) and downloaded as (CSV)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from agent.output import _plain, money, to_csv, unit_money

Kind = Literal["text", "money", "unit", "int", "share", "date"]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: Kind = "text"


@dataclass
class Table:
    """Rows of plain values (Decimal for money). ``csv_rows``/``csv_columns`` override what the CSV holds
    (e.g. the long form ``period_start, team, cost`` that ``finops costs --format csv`` writes)."""

    name: str
    caption: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    footer: dict[str, Any] | None = None
    csv_rows: list[dict[str, Any]] | None = None
    csv_columns: list[str] | None = None
    colours: dict[str, str] = field(default_factory=dict)  # row label -> legend colour

    def csv(self) -> str:
        if self.csv_rows is not None and self.csv_columns is not None:
            return to_csv(self.csv_rows, self.csv_columns)
        return to_csv(self.rows, [c.key for c in self.columns])


def fmt(value: Any, kind: Kind, currency: str) -> str:
    """How a value is shown: money with the configured currency, unit costs with up to 6 decimals."""
    if value is None:
        return "–"
    if kind == "money" and isinstance(value, Decimal | int):
        return money(Decimal(value), currency)
    if kind == "unit" and isinstance(value, Decimal | int):
        return unit_money(Decimal(value), currency)
    if kind == "int" and isinstance(value, int | Decimal):
        return f"{int(value):,}"
    if kind == "share" and isinstance(value, Decimal | int | float):
        return f"{Decimal(str(value)) * 100:.1f} %"
    return str(value)


def raw(value: Any) -> str:
    """The exact value for ``data-value`` (what tests and scripts read): plain decimals, no rounding."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _plain(value)
    return str(value)


def pivot(
    rows: Sequence[dict[str, Any]], key: str, group: str, value: str = "cost"
) -> tuple[list[str], list[str], dict[tuple[str, str], Decimal]]:
    """Long rows (bucket, group, value) -> buckets, groups (largest first, "(other)" last), cells."""
    buckets: list[str] = []
    totals: dict[str, Decimal] = {}
    cells: dict[tuple[str, str], Decimal] = {}
    for r in rows:
        b, g = str(r[key]), str(r[group])
        if b not in buckets:
            buckets.append(b)
        cells[(b, g)] = cells.get((b, g), Decimal(0)) + Decimal(r[value])
        totals[g] = totals.get(g, Decimal(0)) + Decimal(r[value])
    groups = sorted(totals, key=lambda g: (g == "(other)", -totals[g], g))
    return sorted(buckets), groups, cells
