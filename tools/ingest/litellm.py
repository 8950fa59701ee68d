"""Parser for LiteLLM proxy spend logs (the ``LiteLLM_SpendLogs`` table) exported as CSV or JSON.

CSV: a header row with the table's column names; JSON columns (``request_tags``, ``metadata``) appear
as JSON text; an empty cell (or ``NULL``) is null. JSON: a list of row objects, or JSON Lines with one
row object per line (a JSON column may be an object or JSON text). The format is recognised from the
content: a file starting with ``[`` or ``{`` is JSON.

Token semantics (see ``tools.ingest.tokens``): LiteLLM writes usage in the OpenAI format for every
provider, so ``prompt_tokens`` includes cached reads (``metadata.usage_object.prompt_tokens_details.
cached_tokens`` or ``cache_read_input_tokens``) and cache writes (``cache_creation_input_tokens``), and
``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tools.errors import IngestError, Location
from tools.ingest.jsonfile import (
    RowError,
    iter_json_documents,
    join_key,
    label_text,
    parse_count,
    parse_decimal,
)
from tools.ingest.otel import UNKNOWN_PROVIDER, canonical_provider
from tools.ingest.records import Rejected, TaskStatus, UsageRecord, UsageStream
from tools.ingest.timeparse import TIMESTAMP_FORMS, parse_timestamp
from tools.ingest.tokens import from_litellm_usage

SOURCE_FORMAT = "litellm"

_EXPECTED = "LiteLLM spend log rows (LiteLLM_SpendLogs)"
REQUIRED_COLUMNS = ("request_id", "startTime", "prompt_tokens", "completion_tokens")
_CSV_NULLS = frozenset({"", "NULL", "null", "None"})
_OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "responses": "chat",
    "aresponses": "chat",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "image_generation": "image_generation",
    "aimage_generation": "image_generation",
    "transcription": "transcription",
    "atranscription": "transcription",
    "speech": "speech",
    "aspeech": "speech",
    "rerank": "rerank",
    "arerank": "rerank",
    "moderation": "moderation",
    "amoderation": "moderation",
}
_TRUE = frozenset({"true", "1", "yes", "t"})
_JSON = json.JSONDecoder(parse_float=Decimal)
_EMPTY_JSON: Mapping[type, str] = {list: "[]", dict: "{}"}


@dataclass(frozen=True)
class _Row:
    """One spend-log row with where it came from; ``csv`` rows hold text cells, JSON rows any value."""

    values: Mapping[str, Any]
    line: int
    key_prefix: str | None  # JSON rows: "" or "[i]"; None for CSV rows
    is_csv: bool
    problem: str | None = None  # a row that cannot be split into the header's columns

    def raw(self, name: str) -> Any:
        value = self.values.get(name)
        if self.is_csv and isinstance(value, str) and value.strip() in _CSV_NULLS:
            return None
        return value

    def error(self, name: str, reason: str, expected: str | None, sub_key: str | None = None) -> RowError:
        if self.is_csv:
            return RowError(sub_key, reason, expected, column=name)
        key = join_key(self.key_prefix or "", name)
        if sub_key:
            key = f"{key}.{sub_key}"
        return RowError(key, reason, expected)


def parse_litellm_spend_logs(path: Path) -> UsageStream:
    """Yield one ``UsageRecord`` per spend-log row (``requests=1``), or ``Rejected`` for an unreadable row.

    ``spend`` -> ``reported_cost`` (a ``Decimal`` from its text). ``custom_llm_provider`` -> canonical
    provider id (``azure`` -> ``azure.ai.openai``, ``bedrock`` -> ``aws.bedrock``, ``vertex_ai`` ->
    ``gcp.vertex_ai``); a ``provider/`` prefix on the model equal to it is removed. ``call_type`` ->
    operation (``acompletion`` -> ``chat``, ``aembedding`` -> ``embeddings``, unknown values kept).
    ``task_id`` is ``session_id``; ``status`` ``failure`` -> ``task_status="failed"``, ``success`` ->
    ``completed``. A cache hit keeps its tokens and the spend as given (attribute ``cache_hit=true``).

    Attributes: ``team_id``, ``user``, ``end_user``, ``model_group``; each tag of ``request_tags`` and of
    ``metadata.tags``: ``"key:value"`` -> ``key=value``, a bare tag -> ``tag.<name>="true"``;
    ``metadata.user_api_key_team_alias`` and ``metadata.user_api_key_alias``.
    """
    for row in _iter_rows(path):
        try:
            yield _record(path, row)
        except RowError as err:
            yield Rejected(
                Location(path, line=row.line, key=err.key, column=err.column), err.reason, err.expected
            )


def _starts_with_json(path: Path) -> bool:
    with path.open("r", encoding="utf-8-sig") as handle:
        for line in handle:
            stripped = line.lstrip()
            if stripped:
                return stripped[0] in "[{"
    raise IngestError(Location(path), "the file is empty", f"{_EXPECTED} as CSV, JSON or JSON Lines")


def _iter_rows(path: Path) -> Iterator[_Row]:
    if _starts_with_json(path):
        for doc in iter_json_documents(path, _EXPECTED):
            if not isinstance(doc.value, Mapping):
                raise IngestError(
                    Location(path, line=doc.line, key=doc.key or None),
                    f"a spend-log row is not a JSON object (got {type(doc.value).__name__})",
                    f"a JSON list or JSON Lines of {_EXPECTED}",
                )
            yield _Row(doc.value, doc.line, doc.key, is_csv=False)
        return
    yield from _iter_csv_rows(path)


def _iter_csv_rows(path: Path) -> Iterator[_Row]:
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                raise IngestError(
                    Location(path, line=1),
                    f"not a LiteLLM spend log CSV: missing column(s) {', '.join(missing)}",
                    f"a header row of LiteLLM_SpendLogs columns, at least {', '.join(REQUIRED_COLUMNS)}",
                )
            previous = reader.line_num
            for cells in reader:
                line = previous + 1
                previous = reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                if len(cells) != len(header):
                    problem = f"row has {len(cells)} fields, the header has {len(header)}"
                    yield _Row({}, line, None, is_csv=True, problem=problem)
                    continue
                yield _Row(dict(zip(header, cells, strict=True)), line, None, is_csv=True)
        except csv.Error as exc:
            raise IngestError(
                Location(path, line=reader.line_num), f"the file is not valid CSV ({exc})", _EXPECTED
            ) from exc


def _count(row: _Row, name: str, *, required: bool) -> int:
    value = row.raw(name)
    if value is None:
        if required:
            raise row.error(name, f"token count {name} is missing", "a non-negative integer")
        return 0
    try:
        return parse_count(value)
    except ValueError as exc:
        raise row.error(name, f"{name}: {exc}", "a non-negative integer") from exc


def _json_column(row: _Row, name: str, kind: type) -> Any:
    value = row.raw(name)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == _EMPTY_JSON.get(kind):  # fast path for the common "[]" / "{}"
            return kind()
        try:
            value = _JSON.decode(text)
        except json.JSONDecodeError as exc:
            raise row.error(name, f"{name} is not valid JSON ({exc.msg})", f"JSON {kind.__name__}") from exc
    if value is None:
        return None
    if not isinstance(value, kind):
        raise row.error(name, f"{name} is a JSON {type(value).__name__}", f"a JSON {kind.__name__}")
    return value


def _nested_count(row: _Row, usage: Mapping[str, Any], path: tuple[str, ...]) -> int | None:
    node: Any = usage
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if node is None:
        return None
    try:
        return parse_count(node)
    except ValueError as exc:
        sub_key = ".".join(("usage_object", *path))
        raise row.error("metadata", f"metadata.{sub_key}: {exc}", "a non-negative integer", sub_key) from exc


def _add_tags(attributes: dict[str, str], tags: Any) -> None:
    if not isinstance(tags, list):
        return
    for tag in tags:
        text = label_text(tag)
        if text is None:
            continue
        name, sep, value = text.partition(":")
        if sep and name.strip():
            attributes[name.strip()] = value.strip()
        else:
            attributes[f"tag.{text.strip()}"] = "true"


def _record(path: Path, row: _Row) -> UsageRecord:
    if row.problem:
        raise RowError(None, row.problem, "one field per header column")
    request_id = label_text(row.raw("request_id"))
    if request_id is None:
        raise row.error("request_id", "request_id is missing", "the LiteLLM request id")
    try:
        start = parse_timestamp(row.raw("startTime"))
    except ValueError as exc:
        raise row.error("startTime", f"startTime: {exc}", TIMESTAMP_FORMS) from exc
    end = None
    if row.raw("endTime") is not None:
        try:
            end = parse_timestamp(row.raw("endTime"))
        except ValueError as exc:
            raise row.error("endTime", f"endTime: {exc}", TIMESTAMP_FORMS) from exc

    metadata = _json_column(row, "metadata", dict) or {}
    usage = metadata.get("usage_object")
    usage = usage if isinstance(usage, Mapping) else {}
    cached = _nested_count(row, usage, ("prompt_tokens_details", "cached_tokens"))
    if cached is None:
        cached = _nested_count(row, usage, ("cache_read_input_tokens",))
    try:
        tokens = from_litellm_usage(
            _count(row, "prompt_tokens", required=True),
            _count(row, "completion_tokens", required=True),
            cached_tokens=cached or 0,
            cache_creation_tokens=_nested_count(row, usage, ("cache_creation_input_tokens",)) or 0,
            reasoning_tokens=_nested_count(row, usage, ("completion_tokens_details", "reasoning_tokens"))
            or 0,
        )
    except ValueError as exc:
        raise row.error("prompt_tokens", str(exc), "cached tokens counted inside prompt_tokens") from exc

    reported_cost = None
    spend = row.raw("spend")
    if spend is not None:
        try:
            reported_cost = parse_decimal(spend)
        except ValueError as exc:
            raise row.error("spend", f"spend: {exc}", "a decimal amount in USD") from exc
        if reported_cost < 0:
            raise row.error("spend", f"spend is negative ({reported_cost})", "an amount >= 0")

    provider_text = label_text(row.raw("custom_llm_provider"))
    model = label_text(row.raw("model"))
    if provider_text is None and model and "/" in model:
        provider_text = model.split("/", 1)[0]
    if provider_text and model and model.lower().startswith(provider_text.lower() + "/"):
        model = model[len(provider_text) + 1 :] or None
    call_type = label_text(row.raw("call_type"))
    status = (label_text(row.raw("status")) or "").strip().lower()
    task_status: TaskStatus | None = None
    if status == "failure":
        task_status = "failed"
    elif status == "success":
        task_status = "completed"

    attributes: dict[str, str] = {}
    _add_tags(attributes, _json_column(row, "request_tags", list))
    _add_tags(attributes, metadata.get("tags"))
    for name in ("user_api_key_team_alias", "user_api_key_alias"):
        if (text := label_text(metadata.get(name))) is not None:
            attributes[name] = text
    for name in ("team_id", "user", "end_user", "model_group"):
        if (text := label_text(row.raw(name))) is not None:
            attributes[name] = text
    cache_hit = label_text(row.raw("cache_hit"))
    if cache_hit is not None and cache_hit.strip().lower() in _TRUE:
        attributes["cache_hit"] = "true"

    return UsageRecord(
        record_key=request_id,
        source_format=SOURCE_FORMAT,
        start=start,
        end=end,
        provider=canonical_provider(provider_text) if provider_text else UNKNOWN_PROVIDER,
        model=model,
        tokens=tokens,
        requests=1,
        operation=_OPERATIONS.get(call_type, call_type) if call_type else None,
        reported_cost=reported_cost,
        task_id=label_text(row.raw("session_id")),
        task_status=task_status,
        attributes=attributes,
        location=Location(path, line=row.line, key=row.key_prefix or None),
    )
