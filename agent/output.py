"""Rendering of query results: JSON with exact decimals, CSV, and terminal tables."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tools.money import money as money
from tools.money import unit_money as unit_money

_MARK = "\u0000DEC:"
_MARK_RE = re.compile(r'"\\u0000DEC:(-?[0-9.E+-]+)"')


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _MARK + _plain(obj)
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if hasattr(obj, "as_dict"):
        return obj.as_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _walk(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _MARK + _plain(obj)
    if isinstance(obj, dict):
        return {k: _walk(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_walk(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """JSON where every Decimal is written as an exact JSON number (no float rounding)."""
    text = json.dumps(_walk(obj), default=_default, indent=indent, ensure_ascii=False)
    return _MARK_RE.sub(lambda m: m.group(1), text)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(
            [
                "" if r.get(c) is None else (_plain(r[c]) if isinstance(r.get(c), Decimal) else r.get(c))
                for c in columns
            ]
        )
    return buf.getvalue()


def fmt_cell(value: Any, currency: str, money_columns: set[str], column: str) -> str:
    if value is None:
        return ""
    if column in money_columns and isinstance(value, Decimal):
        if column.startswith("cost_per"):
            return unit_money(value, currency)
        return money(value, currency)
    if isinstance(value, Decimal):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict) and "percent" in value:
        pct = value.get("percent")
        return "new" if pct is None else f"{pct:+}%"
    return str(value)


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    currency: str = "USD",
    money_columns: Sequence[str] = (),
    footer: dict[str, Any] | None = None,
    caption: str | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    mc = set(money_columns)
    table = Table(title=title, caption=caption, show_footer=footer is not None)
    for c in columns:
        right = c in mc or any(isinstance(r.get(c), int | Decimal) for r in rows[:5])
        foot = fmt_cell(footer.get(c), currency, mc, c) if footer else ""
        table.add_column(c, justify="right" if right else "left", footer=foot)
    for r in rows:
        table.add_row(*(fmt_cell(r.get(c), currency, mc, c) for c in columns))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
