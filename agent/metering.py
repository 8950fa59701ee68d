"""The agent meters itself: every model call it makes is LLM usage like any other team's.

Each answered question is one *task* (``task_id`` = ``ask-`` + a hash of the question and the moment it
was asked) of team ``finops-agent``, feature ``assistant``. Every model call of that task becomes one
OpenTelemetry GenAI span (OTLP/JSON, the format ``finops ingest otel`` reads) with the token usage the
endpoint reported (``AIMessage.usage_metadata``); when the answer is done the spans are written to a spool
file and ingested through the product's own path (``Ingestor.ingest_records`` with the OTel parser, source
``finops-agent``), which prices them (tools/ingest/pricing.py) and resolves team and feature through the
taxonomy. So ``finops unit-costs --by feature`` shows what the assistant costs per answered question.

If ingestion fails the answer still stands: the spool file stays, and the warning says how to ingest it
later (``finops ingest otel FILE --source finops-agent``; re-ingesting never counts a call twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage

    from config.model import FinOpsConfig
    from config.settings import Settings
    from tools.ingest.service import Ingestor, IngestReport
    from tools.store.db import Database

log = logging.getLogger(__name__)

TEAM = "finops-agent"
FEATURE = "assistant"
SOURCE = "finops-agent"
KIND = "otel"
SERVICE_NAME = "finops-agent"

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def task_id_for(question: str, asked_at: datetime) -> str:
    """One id per answered question: the same question asked twice is two tasks."""
    digest = hashlib.sha256(f"{question.strip()}\x1f{asked_at.isoformat()}".encode()).hexdigest()
    return f"ask-{digest[:16]}"


@dataclass(frozen=True)
class LLMCall:
    """One model call and the tokens the endpoint reported (OpenAI / OTel semantics: cached input tokens
    are inside ``input_tokens``, reasoning tokens inside ``output_tokens``)."""

    started: datetime
    ended: datetime
    request_model: str
    response_model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_message(
        cls, message: AIMessage, *, model: str, started: datetime, ended: datetime
    ) -> LLMCall | None:
        """The call's usage from ``usage_metadata``; None when the endpoint reported none."""
        usage = cast("Mapping[str, Any] | None", message.usage_metadata)
        if not usage:
            return None
        inputs: Mapping[str, Any] = usage.get("input_token_details") or {}
        outputs: Mapping[str, Any] = usage.get("output_token_details") or {}
        response_model = message.response_metadata.get("model_name") or message.response_metadata.get("model")
        return cls(
            started=started,
            ended=ended,
            request_model=model,
            response_model=str(response_model) if response_model else None,
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_read_tokens=int(inputs.get("cache_read") or 0),
            cache_write_tokens=int(inputs.get("cache_creation") or 0),
            reasoning_tokens=int(outputs.get("reasoning") or 0),
        )


@dataclass
class MeterReport:
    """What one answered question cost the assistant."""

    task_id: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal | None  # None: the model has no known price (tokens are still recorded)
    price_source: str | None
    spool_path: Path | None = None
    ingested: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "price_source": self.price_source,
            "spool_path": str(self.spool_path) if self.spool_path else None,
            "ingested": self.ingested,
            "error": self.error,
        }


def _int_attr(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _str_attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _nanos(at: datetime) -> str:
    at = at.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = at - epoch
    return str((delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000)


class UsageMeter:
    """Where the assistant's usage goes: a spool folder and (optionally) the ingestion service.

    Without an ``ingestor`` the usage is only kept in memory (``reports``), e.g. for a dry run.
    """

    def __init__(
        self,
        config: FinOpsConfig,
        *,
        ingestor: Ingestor | None = None,
        spool_dir: Path | None = None,
        provider: str = "openai",
        clock: Clock = _utcnow,
    ) -> None:
        self.config = config
        self.ingestor = ingestor
        if spool_dir is None and ingestor is not None:
            spool_dir = ingestor.lake.root.parent / "agent-usage"
        self.spool_dir = spool_dir
        self.provider = provider
        self.clock = clock
        self.reports: list[MeterReport] = []

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, config: FinOpsConfig) -> UsageMeter:
        """The meter of the real assistant: the lake and database the CLI uses."""
        from tools.ingest.service import Ingestor
        from tools.store.lake import Lake

        ingestor = Ingestor(db, Lake(settings.resolved_lake_dir()), config)
        return cls(config, ingestor=ingestor, provider=settings.llm_provider)

    def open(self, question: str) -> QuestionMeter:
        return QuestionMeter(self, question, self.clock())

    # ----- the spans ------------------------------------------------------------------------------------
    def _dimension_attrs(self) -> list[dict[str, Any]]:
        """Team and feature under the first tag key the taxonomy reads for each (``team``, ``feature`` by
        default), so they resolve like any application's spans."""
        out = []
        for dimension, value in (("team", TEAM), ("feature", FEATURE)):
            keys = self.config.taxonomy.dimensions.get(dimension) or []
            if keys:
                out.append(_str_attr(keys[0], value))
        return out

    def otlp_document(self, task_id: str, calls: list[LLMCall], failed: bool) -> dict[str, Any]:
        trace_id = hashlib.sha256(task_id.encode()).hexdigest()[:32]
        spans = []
        for i, call in enumerate(calls):
            attrs = [
                _str_attr("gen_ai.operation.name", "chat"),
                _str_attr("gen_ai.provider.name", self.provider),
                _str_attr("gen_ai.request.model", call.request_model),
                *([_str_attr("gen_ai.response.model", call.response_model)] if call.response_model else []),
                _int_attr("gen_ai.usage.input_tokens", call.input_tokens),
                _int_attr("gen_ai.usage.output_tokens", call.output_tokens),
                _int_attr("gen_ai.usage.cache_read.input_tokens", call.cache_read_tokens),
                _int_attr("gen_ai.usage.cache_creation.input_tokens", call.cache_write_tokens),
                _int_attr("gen_ai.usage.reasoning.output_tokens", call.reasoning_tokens),
                _str_attr("gen_ai.conversation.id", task_id),
                _str_attr("finops.task_id", task_id),
                *self._dimension_attrs(),
            ]
            span: dict[str, Any] = {
                "traceId": trace_id,
                "spanId": hashlib.sha256(f"{task_id}:{i}".encode()).hexdigest()[:16],
                "name": f"chat {call.request_model}",
                "kind": 3,  # CLIENT
                "startTimeUnixNano": _nanos(call.started),
                "endTimeUnixNano": _nanos(call.ended),
                "attributes": attrs,
            }
            if failed and i == len(calls) - 1:
                span["status"] = {"code": 2, "message": "the question could not be answered"}
            spans.append(span)
        return {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_str_attr("service.name", SERVICE_NAME)]},
                    "scopeSpans": [{"scope": {"name": "finops-agent.metering"}, "spans": spans}],
                }
            ]
        }

    def _price(self, path: Path) -> tuple[Decimal | None, str | None]:
        """The cost the ingestion will compute for these spans (the same parser, the same pricing)."""
        from tools.ingest.otel import parse_otel_spans
        from tools.ingest.pricing import price_usage
        from tools.ingest.records import UsageRecord
        from tools.ingest.service import price_overrides

        overrides = price_overrides(self.config)
        total: Decimal | None = Decimal(0)
        sources = set()
        for record in parse_otel_spans(path):
            if not isinstance(record, UsageRecord):
                continue
            priced = price_usage(record, overrides, self.config.pricing.batch_discount)
            sources.add(priced.source)
            if priced.cost is None:
                total = None
            elif total is not None:
                total += priced.cost
        return total, ", ".join(sorted(sources)) or None

    def _write(self, folder: Path, task_id: str, document: dict[str, Any]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{task_id}.otlp.json"
        path.write_text(json.dumps(document, indent=1), encoding="utf-8")
        return path

    def _ingest(self, path: Path) -> IngestReport:
        from tools.ingest.otel import parse_otel_spans

        assert self.ingestor is not None
        return self.ingestor.ingest_records(KIND, [path], SOURCE, parse_otel_spans)


@dataclass
class QuestionMeter:
    """The model calls of one question; ``close`` writes and ingests them."""

    meter: UsageMeter
    question: str
    asked_at: datetime
    calls: list[LLMCall] = field(default_factory=list)
    closed: bool = False

    @property
    def task_id(self) -> str:
        return task_id_for(self.question, self.asked_at)

    def now(self) -> datetime:
        return self.meter.clock()

    def record(self, message: AIMessage, *, model: str, started: datetime, ended: datetime) -> LLMCall | None:
        call = LLMCall.from_message(message, model=model, started=started, ended=ended)
        if call is not None:
            self.calls.append(call)
        return call

    def close(self, *, failed: bool = False) -> MeterReport | None:
        """Write the spans and ingest them; None when no call reported usage (nothing to meter)."""
        if self.closed:
            return None
        self.closed = True
        if not self.calls:
            return None
        meter = self.meter
        report = MeterReport(
            task_id=self.task_id,
            calls=len(self.calls),
            input_tokens=sum(c.input_tokens for c in self.calls),
            output_tokens=sum(c.output_tokens for c in self.calls),
            cost=None,
            price_source=None,
        )
        document = meter.otlp_document(self.task_id, self.calls, failed)
        try:
            if meter.spool_dir is None:  # in memory only: price, keep nothing
                with tempfile.TemporaryDirectory(prefix="finops-agent-usage-") as tmp:
                    report.cost, report.price_source = meter._price(
                        meter._write(Path(tmp), self.task_id, document)
                    )
            else:
                path = meter._write(meter.spool_dir, self.task_id, document)
                report.spool_path = path
                report.cost, report.price_source = meter._price(path)
                if meter.ingestor is not None:
                    meter._ingest(path)
                    report.ingested = True
        except Exception as exc:  # metering never breaks an answer
            report.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "could not record the assistant's own LLM usage (%s); ingest it later with "
                "`finops ingest otel %s --source %s`",
                report.error,
                report.spool_path or "(not written)",
                SOURCE,
            )
        meter.reports.append(report)
        return report
