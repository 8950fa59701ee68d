"""Read a JSON file that holds one document, a JSON list of documents, or JSON Lines, with line numbers.

``iter_json_documents`` yields each document with the line it starts on and its key prefix
(``[3]`` for the fourth element of a list, empty otherwise), so a parser can report
``Location(path, line=..., key="[3].data[0].results[1].input_tokens")``. JSON Lines files are
streamed line by line; a single document or a list is read whole (the standard library cannot stream
inside one JSON value). Numbers with a fraction are read as ``Decimal``, never as binary floats.

A file that is not JSON, or whose top level is not what the parser expects, raises ``IngestError``;
the field helpers raise ``RowError``, which parsers turn into ``Rejected`` for that row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from tools.errors import IngestError, Location
from tools.ingest.records import Rejected

_DECODER = json.JSONDecoder(parse_float=Decimal)
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class JsonDocument:
    """One top-level document of a JSON / JSON list / JSON Lines file."""

    line: int  # 1-based line on which the document starts
    key: str  # key prefix of the document inside the file: "" or "[i]" for a list element
    value: Any


class RowError(Exception):
    """A field of one input record cannot be read; the parser yields ``Rejected`` for the record."""

    def __init__(self, key: str | None, reason: str, expected: str | None = None, column: str | None = None):
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.expected = expected
        self.column = column


def join_key(prefix: str, name: str | int) -> str:
    """JSON path join: join_key("data[0]", "results") -> "data[0].results", join_key("x", 2) -> "x[2]"."""
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


def iter_json_documents(path: Path, expected: str) -> Iterator[JsonDocument]:
    """Yield the documents of ``path``: a single JSON value, the elements of a JSON list, or JSON Lines.

    ``expected`` describes the expected content for error messages (e.g. "OpenAI usage API pages").
    Raises ``IngestError`` for an empty file or text that is not JSON.
    """
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        first_line_no = 0
        first_line = ""
        while not first_line.strip():
            first_line = handle.readline()
            first_line_no += 1
            if not first_line:
                raise IngestError(Location(path), "the file is empty", expected)
        stripped = first_line.strip()
        if stripped.startswith("["):
            text = first_line + handle.read()
            yield from _iter_array(path, text, first_line_no, expected)
            return
        single_line_value = _try_decode_line(stripped)
        if single_line_value is _NOT_ONE_VALUE:
            # a pretty-printed single document spanning several lines
            text = first_line + handle.read()
            yield JsonDocument(first_line_no, "", _decode_whole(path, text, first_line_no, expected))
            return
        yield JsonDocument(first_line_no, "", single_line_value)
        line_no = first_line_no
        while line := handle.readline():
            line_no += 1
            if not line.strip():
                continue
            try:
                value = _DECODER.decode(line)
            except json.JSONDecodeError as exc:
                raise IngestError(
                    Location(path, line=line_no),
                    f"line is not valid JSON ({exc.msg} at column {exc.colno})",
                    f"JSON Lines of {expected}, one JSON document per line",
                ) from exc
            yield JsonDocument(line_no, "", value)


_NOT_ONE_VALUE = object()


def _try_decode_line(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        return _NOT_ONE_VALUE


def _decode_whole(path: Path, text: str, first_line_no: int, expected: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            Location(path, line=exc.lineno + first_line_no - 1),
            f"the file is not valid JSON ({exc.msg} at column {exc.colno})",
            f"{expected} as JSON, a JSON list or JSON Lines",
        ) from exc


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _iter_array(path: Path, text: str, first_line_no: int, expected: str) -> Iterator[JsonDocument]:
    """Decode the elements of a top-level JSON list one at a time, tracking the line each starts on."""

    def error(pos: int, problem: str) -> IngestError:
        line = first_line_no + text.count("\n", 0, pos)
        return IngestError(Location(path, line=line), problem, f"a JSON list of {expected}")

    pos = _skip_ws(text, text.index("[") + 1)
    line = first_line_no
    counted_to = 0
    index = 0
    if pos < len(text) and text[pos] == "]":
        end = pos + 1
    else:
        while True:
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise error(exc.pos, f"the file is not valid JSON ({exc.msg})") from exc
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            yield JsonDocument(line, f"[{index}]", value)
            index += 1
            pos = _skip_ws(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_ws(text, pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                end = pos + 1
                break
            raise error(pos, "the JSON list is not closed: expected ',' or ']'")
    if _skip_ws(text, end) != len(text):
        raise error(_skip_ws(text, end), "unexpected text after the JSON list")


@dataclass(frozen=True)
class Bucket:
    """One time bucket of an admin-API page (OpenAI organization usage/costs, Anthropic reports)."""

    line: int  # line on which the page holding the bucket starts
    key: str  # JSON path of the bucket, e.g. "[1].data[0]"
    value: Mapping[str, Any]
    results: list[Any]


def iter_page_buckets(path: Path, expected: str) -> Iterator[Bucket]:
    """Yield the buckets of admin-API pages ``{"data": [bucket, ...], "has_more": ..., ...}``.

    The file holds one page, a JSON list of pages or JSON Lines of pages. A page without a ``data``
    list, or a bucket without a ``results`` list, is the wrong file shape: ``IngestError``.
    """
    for doc in iter_json_documents(path, expected):
        page = doc.value
        if not isinstance(page, Mapping) or not isinstance(page.get("data"), list):
            raise IngestError(
                Location(path, line=doc.line, key=doc.key or None),
                "not an API page: no 'data' list",
                f'{expected}: pages like {{"object": "page", "data": [buckets], "has_more": ...}}',
            )
        data_key = join_key(doc.key, "data")
        for index, bucket in enumerate(page["data"]):
            bucket_key = join_key(data_key, index)
            if not isinstance(bucket, Mapping) or not isinstance(bucket.get("results"), list):
                raise IngestError(
                    Location(path, line=doc.line, key=bucket_key),
                    "not a time bucket: no 'results' list",
                    f"{expected}: buckets with start/end times and a 'results' list",
                )
            yield Bucket(doc.line, bucket_key, bucket, bucket["results"])


RecordT = TypeVar("RecordT")
BucketRecordFactory = Callable[[Path, "Bucket", str, Any, datetime, datetime | None], RecordT]


def iter_bucket_records(
    path: Path,
    expected: str,
    times: tuple[str, str],
    parse_time: Callable[[Any], datetime],
    time_expected: str,
    make: BucketRecordFactory[RecordT],
) -> Iterator[RecordT | Rejected]:
    """Every result of every bucket of admin-API pages through ``make``, or ``Rejected`` for a bad one.

    ``times`` names the bucket's start and end fields (the start is required); a bucket whose times
    cannot be read is one ``Rejected`` and its results are not read.
    """
    start_name, end_name = times
    for bucket in iter_page_buckets(path, expected):
        try:
            start = _bucket_time(bucket, start_name, parse_time, time_expected, required=True)
            end = _bucket_time(bucket, end_name, parse_time, time_expected, required=False)
        except RowError as err:
            yield Rejected(Location(path, line=bucket.line, key=err.key), err.reason, err.expected)
            continue
        assert start is not None
        for index, result in enumerate(bucket.results):
            key = join_key(join_key(bucket.key, "results"), index)
            try:
                yield make(path, bucket, key, result, start, end)
            except RowError as err:
                yield Rejected(Location(path, line=bucket.line, key=err.key), err.reason, err.expected)


def _bucket_time(
    bucket: Bucket, name: str, parse_time: Callable[[Any], datetime], expected: str, *, required: bool
) -> datetime | None:
    value = bucket.value.get(name)
    if value is None:
        if required:
            raise RowError(join_key(bucket.key, name), f"bucket has no {name}", expected)
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise RowError(join_key(bucket.key, name), f"{name}: {exc}", expected) from exc


def as_result(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RowError(key, f"result is not a JSON object (got {type(value).__name__})", "a JSON object")
    return value


# ---------------------------------------------------------------------------------------------------------
# field helpers shared by the parsers


def require_mapping(value: Any, key: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RowError(key, f"{what} is not a JSON object (got {type(value).__name__})", "a JSON object")
    return value


def parse_count(value: Any) -> int:
    """A token or request count: a non-negative integer (int, integral number or digit text).

    Raises ValueError naming the problem.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, Decimal | float):
        if not value == value or value in (float("inf"), float("-inf")) or value != int(value):
            raise ValueError(f"expected a non-negative integer, got {value}")
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = Decimal(text)
        except ArithmeticError as exc:
            raise ValueError(f"expected a non-negative integer, got {value!r}") from exc
        if not number.is_finite() or number != int(number):
            raise ValueError(f"expected a non-negative integer, got {value!r}")
        result = int(number)
    else:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    if result < 0:
        raise ValueError(f"a count must not be negative, got {result}")
    return result


def get_count(obj: Mapping[str, Any], name: str, key: str, *, required: bool = False) -> int:
    """Read count field ``name`` of ``obj`` (at JSON path ``key``); absent or null is 0 unless required."""
    value = obj.get(name)
    field_key = join_key(key, name)
    if value is None:
        if required:
            what = "missing" if name not in obj else "null"
            raise RowError(field_key, f"token count {name} is {what}", "a non-negative integer")
        return 0
    try:
        return parse_count(value)
    except ValueError as exc:
        raise RowError(field_key, f"{name}: {exc}", "a non-negative integer") from exc


def get_str(obj: Mapping[str, Any], name: str) -> str | None:
    """A label field as text: None for absent/null/empty; numbers and booleans are converted to text."""
    value = obj.get(name)
    return label_text(value)


def label_text(value: Any) -> str | None:
    """Render a scalar label as text (None stays None, ""/whitespace is None, bools are true/false)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int | Decimal | float):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True, separators=(",", ":"))


def parse_decimal(value: Any) -> Decimal:
    """A money amount as Decimal from text or a number, never through float arithmetic."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"expected a decimal number, got {value!r}")
    try:
        result = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ValueError(f"expected a decimal number, got {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"expected a finite decimal number, got {value!r}")
    return result
