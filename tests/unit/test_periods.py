from __future__ import annotations

from datetime import date

import pytest

from tools.errors import QueryError
from tools.periods import Period, parse_period, resolve_period

TODAY = date(2024, 9, 21)  # a Saturday


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("yesterday", date(2024, 9, 20), date(2024, 9, 21)),
        ("today", date(2024, 9, 21), date(2024, 9, 22)),
        ("last-week", date(2024, 9, 9), date(2024, 9, 16)),
        ("this-month", date(2024, 9, 1), date(2024, 10, 1)),
        ("month to date", date(2024, 9, 1), date(2024, 10, 1)),
        ("last-month", date(2024, 8, 1), date(2024, 9, 1)),
        ("this-quarter", date(2024, 7, 1), date(2024, 10, 1)),
        ("last-quarter", date(2024, 4, 1), date(2024, 7, 1)),
        ("last-7-days", date(2024, 9, 14), date(2024, 9, 21)),
        ("last_30_days", date(2024, 8, 22), date(2024, 9, 21)),
        ("2024-02", date(2024, 2, 1), date(2024, 3, 1)),
        ("2024-Q4", date(2024, 10, 1), date(2025, 1, 1)),
        ("2023", date(2023, 1, 1), date(2024, 1, 1)),
        ("last-year", date(2023, 1, 1), date(2024, 1, 1)),
    ],
)
def test_period_names(text: str, start: date, end: date) -> None:
    p = parse_period(text, TODAY)
    assert (p.start, p.end) == (start, end)


def test_period_previous_of_a_month_is_the_previous_month() -> None:
    assert parse_period("2024-03", TODAY).previous() == Period(date(2024, 2, 1), date(2024, 3, 1), "2024-02")
    p = parse_period("last-7-days", TODAY).previous()
    assert (p.start, p.end) == (date(2024, 9, 7), date(2024, 9, 14))


def test_period_from_to_wins_and_to_is_exclusive() -> None:
    p = resolve_period("last-month", date(2024, 9, 1), date(2024, 10, 1), TODAY)
    assert (p.start, p.end, p.days) == (date(2024, 9, 1), date(2024, 10, 1), 30)


def test_period_errors_are_explained() -> None:
    with pytest.raises(QueryError, match="unknown period 'fortnight'"):
        parse_period("fortnight", TODAY)
    with pytest.raises(QueryError, match="must be after"):
        resolve_period(None, date(2024, 9, 2), date(2024, 9, 1), TODAY)
    with pytest.raises(QueryError, match="--to given without --from"):
        resolve_period(None, None, date(2024, 9, 1), TODAY)
