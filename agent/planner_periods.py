"""Periods said in plain language, found in a question: "last week", "in October", "Q3", "month to date",
"yesterday", "since 2024-09-01", "last 30 days", "from Aug 1 to Aug 15", "2024-08", ...

Pure functions of (text, today). Every period is a half-open ``tools.periods.Period`` [start, end); a day
range said by a person ("from Aug 1 to Aug 15") includes its last day. Relative periods count from ``today``
(the day being reported from; data runs to yesterday):

- "last week" / "previous week": the previous Monday to Sunday; "past week": the last 7 days;
- "last month" / "this month" / "month to date": calendar months (this month's data ends yesterday);
- "in October", "October": that month of this year, or of last year when it has not started yet;
- "Q3": that quarter of this year (of last year when it has not started yet); "last quarter", "this quarter";
- "last N days / weeks": the N*1 / N*7 days before today; "last N months": the N full months before this one;
- "since D": D to today; "on D" or a bare date: that day.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from tools.errors import QueryError
from tools.periods import Period, add_months, month_start, parse_period, quarter_start

MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fourteen": 14,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "sixty": 60,
    "ninety": 90,
}
_NUM = r"(\d{1,4}|" + "|".join(NUMBER_WORDS) + r")"
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_MONTH_NC = _MONTH.replace("(", "(?:").replace("(?:?:", "(?:")
_ISO = r"\d{4}[-/]\d{1,2}[-/]\d{1,2}"
_ORD = r"(?:st|nd|rd|th)?"
_DAY = (
    rf"(?:{_ISO}|{_MONTH_NC} \d{{1,2}}(?!\d){_ORD}(?:,? \d{{4}})?|"
    rf"\d{{1,2}}{_ORD} (?:of )?{_MONTH_NC}(?:,? \d{{4}})?)"
)
_MONTH_SPEC = rf"(?:{_MONTH_NC}(?:,? \d{{4}})?|\d{{4}}-\d{{2}}(?![-/]\d))"
_TO = r"(?:to|until|till|through|thru|-|\.\.)"


@dataclass(frozen=True)
class PeriodHit:
    """A period found at ``span`` of the text; ``period`` None for "the week before" / "the previous
    period" (the period before the other one said)."""

    period: Period | None
    said: str
    span: tuple[int, int]


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


def _month_number(text: str) -> int:
    return MONTHS[text.strip(".")[:3]]


def _past_year(month: int, day: int, today: date) -> int:
    """The year of a date said without one: this year, or last year when it is still to come."""
    return today.year if date(today.year, month, min(day, 28)) <= today else today.year - 1


def parse_day(text: str, today: date) -> date:
    t = text.strip().replace(",", "")
    m = re.fullmatch(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", t)
    if m:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = re.fullmatch(rf"{_MONTH} (\d{{1,2}}){_ORD}(?: (\d{{4}}))?", t)
    if m:
        month, day = _month_number(m.group(1)), int(m.group(2))
        year = int(m.group(3)) if m.group(3) else _past_year(month, day, today)
        return date(year, month, day)
    m = re.fullmatch(rf"(\d{{1,2}}){_ORD} (?:of )?{_MONTH}(?: (\d{{4}}))?", t)
    if m:
        day, month = int(m.group(1)), _month_number(m.group(2))
        year = int(m.group(3)) if m.group(3) else _past_year(month, day, today)
        return date(year, month, day)
    raise QueryError(f"not a date: {text!r}")


def parse_month(text: str, today: date) -> Period:
    t = text.strip().replace(",", "")
    m = re.fullmatch(r"(\d{4})-(\d{2})", t)
    if m:
        start = date(int(m.group(1)), int(m.group(2)), 1)
    else:
        m = re.fullmatch(rf"{_MONTH}(?: (\d{{4}}))?", t)
        if not m:
            raise QueryError(f"not a month: {text!r}")
        month = _month_number(m.group(1))
        year = int(m.group(2)) if m.group(2) else _past_year(month, 1, today)
        start = date(year, month, 1)
    return Period(start, add_months(start, 1), f"{MONTH_NAMES[start.month - 1]} {start.year}")


def _days(start: date, end_inclusive: date, said: str) -> Period:
    if end_inclusive < start:
        raise QueryError(f"the period {said!r} ends before it starts")
    return Period(start, end_inclusive + timedelta(days=1), said)


def _quarter(q: int, year: int | None, today: date) -> Period:
    if year is None:
        year = today.year if date(today.year, 3 * (q - 1) + 1, 1) <= today else today.year - 1
    start = date(year, 3 * (q - 1) + 1, 1)
    return Period(start, add_months(start, 3), f"Q{q} {year}")


def _relabel(p: Period, label: str) -> Period:
    return Period(p.start, p.end, label)


Handler = Callable[[re.Match[str], date], Period | None]


def _range_days(m: re.Match[str], today: date) -> Period:
    a, b = parse_day(m.group(1), today), parse_day(m.group(2), today)
    if b < a and not re.search(r"\d{4}", m.group(1)):
        a = a.replace(year=a.year - 1)  # "from Dec 20 to Jan 5"
    return _days(a, b, f"{a.isoformat()} to {b.isoformat()}")


def _range_months(m: re.Match[str], today: date) -> Period:
    a, b = parse_month(m.group(1), today), parse_month(m.group(2), today)
    if b.start < a.start and not re.search(r"\d{4}", m.group(1)):
        a = parse_month(f"{m.group(1)} {a.start.year - 1}", today)
    if b.end <= a.start:
        raise QueryError(f"the period {m.group(0)!r} ends before it starts")
    return Period(a.start, b.end, f"{a.label} to {b.label}")


def _since(m: re.Match[str], today: date) -> Period:
    said = m.group(1)
    try:
        start = parse_day(said, today)
    except QueryError:
        start = parse_month(said, today).start
    if start >= today:
        raise QueryError(f"'since {said}' starts on or after today ({today}): there is no data yet")
    return Period(start, today, f"since {start.isoformat()}")


def _one_day(m: re.Match[str], today: date) -> Period:
    d = parse_day(m.group(1), today)
    return Period(d, d + timedelta(days=1), d.isoformat())


def _last_n(m: re.Match[str], today: date) -> Period:
    n, unit = _number(m.group(1)), m.group(2).rstrip("s")
    if n < 1:
        raise QueryError("a period of 0 days is empty")
    if unit == "day":
        return _relabel(parse_period(f"last-{n}-days", today), f"last {n} days")
    if unit == "week":
        return _relabel(parse_period(f"last-{7 * n}-days", today), f"last {n} weeks")
    if unit == "month":
        end = month_start(today)
        return Period(add_months(end, -n), end, f"last {n} full months")
    end = quarter_start(today)
    return Period(add_months(end, -3 * n), end, f"last {n} full quarters")


def _named(name: str, label: str) -> Handler:
    def handler(_m: re.Match[str], today: date) -> Period:
        return _relabel(parse_period(name, today), label)

    return handler


def _next(unit: str) -> Handler:
    def handler(_m: re.Match[str], today: date) -> Period:
        if unit == "month":
            start = add_months(month_start(today), 1)
            return Period(start, add_months(start, 1), "next month")
        start = add_months(quarter_start(today), 3)
        return Period(start, add_months(start, 3), "next quarter")

    return handler


def _quarter_hit(m: re.Match[str], today: date) -> Period:
    groups = [g for g in m.groups() if g]
    if len(groups) == 2 and len(groups[0]) == 4:
        return _quarter(int(groups[1]), int(groups[0]), today)
    return _quarter(int(groups[0]), int(groups[1]) if len(groups) > 1 else None, today)


_ORDINAL_QUARTERS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}


def _ordinal_quarter(m: re.Match[str], today: date) -> Period:
    return _quarter(_ORDINAL_QUARTERS[m.group(1)], int(m.group(2)) if m.group(2) else None, today)


def _month_hit(m: re.Match[str], today: date) -> Period | None:
    text = m.group(2)
    if text.startswith("may") and not m.group(1) and not re.search(r"\d{4}", text):
        return None  # "may" alone is a verb
    if text.startswith("mar") and not text.startswith("march") and not m.group(1):
        return None
    return parse_month(text, today)


def _day_before_yesterday(_m: re.Match[str], today: date) -> Period:
    day = today - timedelta(days=2)
    return Period(day, day + timedelta(days=1), "the day before yesterday")


def _year(m: re.Match[str], today: date) -> Period:
    return _relabel(parse_period(m.group(1), today), m.group(1))


#: (pattern, handler), tried in this order; a later pattern never matches inside an earlier match
PATTERNS: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(p), h)
    for p, h in (
        (rf"\b(?:from |between )?({_DAY}) ?{_TO} ?({_DAY})", _range_days),
        (rf"\bbetween ({_DAY}) and ({_DAY})", _range_days),
        (rf"\b(?:from |between )({_MONTH_SPEC}) (?:{_TO}|and) ({_MONTH_SPEC})\b", _range_months),
        (rf"\b(?:ever )?since ({_DAY}|{_MONTH_SPEC})", _since),
        (rf"\b(?:on |for )?({_DAY})", _one_day),
        (
            rf"\b(?:in |over |for |during )?(?:the )?(?:last|past|previous|prior|trailing) {_NUM} "
            r"(days?|weeks?|months?|quarters?)\b",
            _last_n,
        ),
        (r"\b(?:the )?day before yesterday\b", _day_before_yesterday),
        (r"\byesterday\b", _named("yesterday", "yesterday")),
        (r"\btoday\b", _named("today", "today")),
        (r"\b(?:the )?(?:last|previous|prior) (?:calendar )?week\b", _named("last-week", "last week")),
        (r"\b(?:the )?past (?:seven days|week)\b", _named("last-7-days", "last 7 days")),
        (
            r"\b(?:this|current|the current) week\b|\bweek[- ]to[- ]date\b|\bwtd\b",
            _named("this-week", "this week"),
        ),
        (r"\b(?:the )?(?:last|previous|prior) (?:calendar )?month\b", _named("last-month", "last month")),
        (r"\b(?:the )?past month\b", _named("last-30-days", "last 30 days")),
        (
            r"\b(?:so far )?(?:this|current|the current) month(?: so far)?\b|\bmonth[- ]to[- ]date\b|\bmtd\b",
            _named("this-month", "month to date"),
        ),
        (r"\b(?:the )?(?:last|previous|prior) quarter\b", _named("last-quarter", "last quarter")),
        (
            r"\b(?:this|current|the current) quarter\b|\bquarter[- ]to[- ]date\b|\bqtd\b",
            _named("this-quarter", "this quarter"),
        ),
        (r"\b(?:the )?(?:last|previous|prior) year\b", _named("last-year", "last year")),
        (r"\b(?:the )?past year\b", _named("last-365-days", "last 365 days")),
        (
            r"\b(?:this|current|the current) year\b|\byear[- ]to[- ]date\b|\bytd\b",
            _named("this-year", "this year"),
        ),
        (r"\bnext month\b", _next("month")),
        (r"\bnext quarter\b", _next("quarter")),
        (r"\b(?:q([1-4])(?:[ -]?(\d{4}))?|(\d{4})[ -]?q([1-4]))\b", _quarter_hit),
        (r"\b(first|second|third|fourth|1st|2nd|3rd|4th) quarter(?: of (\d{4}))?\b", _ordinal_quarter),
        (rf"\b(in |for |during |of |over |through )?({_MONTH_SPEC})\b", _month_hit),
        (r"\b(?:in|for|during|of|year) (20\d{2})\b", _year),
    )
)
#: the period just before the other one said ("vs the week before")
RELATIVE_PREVIOUS = re.compile(
    r"\b(?:the )?(?:(?:week|month|quarter|year|period) before|(?:previous|prior|preceding) "
    r"(?:period|one)|period before|(?:week|month|quarter|year) prior)\b"
)


def find_periods(text: str, today: date) -> list[PeriodHit]:
    """Every period said in ``text`` (lower case), in order of position. Raises QueryError for a period
    that is said but impossible (an empty range, a date that does not exist)."""
    taken: list[tuple[int, int]] = []
    hits: list[PeriodHit] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in RELATIVE_PREVIOUS.finditer(text):
        taken.append(m.span())
        hits.append(PeriodHit(None, m.group(0), m.span()))
    for pattern, handler in PATTERNS:
        for m in pattern.finditer(text):
            if not free(*m.span()):
                continue
            try:
                period = handler(m, today)
            except ValueError as exc:  # date(2024, 2, 30)
                raise QueryError(f"{m.group(0).strip()!r} is not a valid date: {exc}") from None
            if period is None:
                continue
            taken.append(m.span())
            hits.append(PeriodHit(period, m.group(0).strip(), m.span()))
    hits.sort(key=lambda h: h.span)
    return hits


def describe(period: Period, today: date | None = None) -> str:
    """How a period is said back: its label and the days it covers, last day included ("month to date
    (2024-09-01 to 2024-09-20 so far)" when it runs past yesterday)."""
    last = period.end - timedelta(days=1)
    so_far = ""
    if today is not None and period.start < today <= last:
        last, so_far = today - timedelta(days=1), " so far"
    first = period.start.isoformat()
    dates = first if last <= period.start else f"{first} to {last.isoformat()}"
    if period.label in (dates, first, f"{first} to {(period.end - timedelta(days=1)).isoformat()}"):
        return dates + so_far
    return f"{period.label} ({dates}{so_far})"
