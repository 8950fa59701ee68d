"""Reporting periods: half-open date ranges [start, end) named the way practitioners say them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from tools.errors import QueryError

PERIOD_NAMES = (
    "today",
    "yesterday",
    "this-week",
    "last-week",
    "this-month",
    "month-to-date",
    "last-month",
    "this-quarter",
    "last-quarter",
    "this-year",
    "last-year",
    "last-N-days",
    "YYYY-MM",
    "YYYY-QN",
    "YYYY",
)


@dataclass(frozen=True)
class Period:
    start: date  # inclusive
    end: date  # exclusive
    label: str

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise QueryError(f"empty period: --to {self.end} must be after --from {self.start}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> Period:
        """The period just before, of the same kind: the previous month for a month, else same length."""
        if _is_month(self.start, self.end):
            start = month_start(self.start - timedelta(days=1))
            return Period(start, self.start, f"{start:%Y-%m}")
        if _is_quarter(self.start, self.end):
            start = quarter_start(self.start - timedelta(days=1))
            return Period(start, self.start, "previous quarter")
        return Period(self.start - timedelta(days=self.days), self.start, f"previous {self.days} days")

    def as_dict(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def month_start(d: date) -> date:
    return d.replace(day=1)


def add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def _is_month(start: date, end: date) -> bool:
    return start.day == 1 and end == add_months(start, 1)


def _is_quarter(start: date, end: date) -> bool:
    return start == quarter_start(start) and end == add_months(start, 3)


def parse_period(text: str, today: date) -> Period:
    """A named period relative to ``today`` (the day being reported from; data runs up to yesterday)."""
    t = text.strip().lower().replace("_", "-").replace(" ", "-")
    if t == "today":
        return Period(today, today + timedelta(days=1), "today")
    if t == "yesterday":
        return Period(today - timedelta(days=1), today, "yesterday")
    if t in ("this-week", "week-to-date"):
        start = today - timedelta(days=today.weekday())
        return Period(start, today + timedelta(days=1) if start == today else today, "this week")
    if t == "last-week":
        start = today - timedelta(days=today.weekday() + 7)
        return Period(start, start + timedelta(days=7), "last week")
    if t in ("this-month", "month-to-date", "mtd"):
        start = month_start(today)
        return Period(start, add_months(start, 1), f"{start:%Y-%m}")
    if t == "last-month":
        start = add_months(month_start(today), -1)
        return Period(start, add_months(start, 1), f"{start:%Y-%m}")
    if t in ("this-quarter", "quarter-to-date", "qtd"):
        start = quarter_start(today)
        return Period(start, add_months(start, 3), f"{start.year}-Q{(start.month - 1) // 3 + 1}")
    if t == "last-quarter":
        start = add_months(quarter_start(today), -3)
        return Period(start, add_months(start, 3), f"{start.year}-Q{(start.month - 1) // 3 + 1}")
    if t in ("this-year", "year-to-date", "ytd"):
        return Period(date(today.year, 1, 1), date(today.year + 1, 1, 1), str(today.year))
    if t == "last-year":
        return Period(date(today.year - 1, 1, 1), date(today.year, 1, 1), str(today.year - 1))
    m = re.fullmatch(r"last-(\d{1,4})-days?", t)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise QueryError("last-N-days needs N >= 1")
        return Period(today - timedelta(days=n), today, f"last {n} days")
    m = re.fullmatch(r"(\d{4})-(\d{2})", t)
    if m and 1 <= int(m.group(2)) <= 12:
        start = date(int(m.group(1)), int(m.group(2)), 1)
        return Period(start, add_months(start, 1), t)
    m = re.fullmatch(r"(\d{4})-?q([1-4])", t)
    if m:
        start = date(int(m.group(1)), 3 * (int(m.group(2)) - 1) + 1, 1)
        return Period(start, add_months(start, 3), f"{m.group(1)}-Q{m.group(2)}")
    m = re.fullmatch(r"(\d{4})", t)
    if m:
        year = int(m.group(1))
        return Period(date(year, 1, 1), date(year + 1, 1, 1), t)
    raise QueryError(f"unknown period {text!r}; use one of: {', '.join(PERIOD_NAMES)}, or --from/--to dates")


def resolve_period(
    period: str | None, start: date | None, end: date | None, today: date, default: str = "last-30-days"
) -> Period:
    """--from/--to win over --period; either bound alone is completed from the period or today."""
    if start is not None or end is not None:
        if start is None:
            raise QueryError("--to given without --from; give both, or use --period")
        return Period(start, end or today, f"{start.isoformat()} to {(end or today).isoformat()}")
    return parse_period(period or default, today)
