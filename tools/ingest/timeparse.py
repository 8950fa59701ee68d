"""Timestamp parsing for the LLM usage parsers. Every function returns a timezone-aware UTC datetime.

Accepted forms: unix seconds (int, Decimal/float or a digit string), unix nanoseconds (OTLP's
``startTimeUnixNano``), ISO-8601 with ``Z`` or an offset, and ``YYYY-MM-DD HH:MM:SS[.fff]`` (database
exports). A naive timestamp is taken as UTC. Anything else raises ``ValueError`` with the reason; the
parsers turn it into a ``Rejected`` row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_PER_SECOND = 1_000_000_000
_INT_TEXT = re.compile(r"^-?\d+$")
# date, separator, time, optional fraction (any number of digits), optional zone
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d+))?)?"
    r"\s*(?P<zone>Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)

TIMESTAMP_FORMS = "ISO-8601 (e.g. 2025-08-01T00:00:00Z), 'YYYY-MM-DD HH:MM:SS[.fff]' or unix seconds"


def from_unix_seconds(value: object) -> datetime:
    """Unix seconds (int, Decimal, float or numeric text) -> aware UTC datetime."""
    seconds = _to_decimal(value, "unix seconds")
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    try:
        return _EPOCH + timedelta(seconds=whole, microseconds=micros)
    except OverflowError as exc:
        raise ValueError(f"unix seconds {value!r} are out of range") from exc


def from_unix_nanos(value: object) -> datetime:
    """Unix nanoseconds (int or digit string, as OTLP/JSON writes them) -> aware UTC datetime.

    Integer arithmetic only, so no precision is lost to floats; sub-microsecond digits are truncated.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected unix nanoseconds, got {value!r}")
    if isinstance(value, int):
        nanos = value
    elif isinstance(value, str) and _INT_TEXT.match(value.strip()):
        nanos = int(value.strip())
    elif isinstance(value, Decimal | float) and value == int(value):
        nanos = int(value)
    else:
        raise ValueError(f"expected unix nanoseconds (an integer), got {value!r}")
    if nanos < 0:
        raise ValueError(f"unix nanoseconds must not be negative, got {nanos}")
    seconds, rest = divmod(nanos, _NANOS_PER_SECOND)
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=rest // 1000)
    except OverflowError as exc:
        raise ValueError(f"unix nanoseconds {value!r} are out of range") from exc


def parse_iso(text: str) -> datetime:
    """ISO-8601 / 'YYYY-MM-DD HH:MM:SS[.fff]' text -> aware UTC datetime (naive text is UTC)."""
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(f"unparsable timestamp {text!r}")
    date, time, frac, zone = match.group("date", "time", "frac", "zone")
    normalised = date
    if time:
        normalised += "T" + time
        if frac:
            normalised += "." + (frac + "000000")[:6]
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError as exc:
        raise ValueError(f"unparsable timestamp {text!r}: {exc}") from exc
    if zone and zone not in ("Z", "z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or "0")
        if hours > 23 or minutes > 59:
            raise ValueError(f"unparsable timezone offset in {text!r}")
        offset = timedelta(hours=hours, minutes=minutes) * sign
        return (parsed - offset).replace(tzinfo=UTC)
    return parsed.replace(tzinfo=UTC)


def parse_timestamp(value: object) -> datetime:
    """Any accepted form -> aware UTC datetime. Numbers are unix seconds; a datetime is converted to UTC."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            raise ValueError("empty timestamp")
        if _looks_numeric(stripped):
            return from_unix_seconds(stripped)
        return parse_iso(stripped)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return from_unix_seconds(value)
    raise ValueError(f"expected a timestamp ({TIMESTAMP_FORMS}), got {value!r}")


def _looks_numeric(text: str) -> bool:
    return bool(re.match(r"^-?\d+(\.\d+)?$", text))


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"expected {what}, got {value!r}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"expected {what}, got {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"expected {what}, got {value!r}")
    return result
