"""Model price change tracking: notice when a model's price changes, record it, and show what it does to spend.

``check_prices`` reads the *current* price of every tracked model (per 1M tokens, per token kind: ``input``,
``cache_read``, ``cache_write``, ``output``) the way ingestion prices usage: a finops.yaml override first
(``pricing.overrides``, source ``"config override"``), else genai-prices' offline snapshot for today (source
``"genai-prices <version>"``). It compares each price with the last one seen (table ``price_snapshots``):

- a model and kind seen for the first time is only remembered (a first sighting is not a change);
- a different price is recorded in ``price_changes`` (old, new, source, ``effective_from`` = the check's
  day) and becomes the remembered price;
- the same price only refreshes ``seen_at``.

Running the check again records nothing new (idempotent): the remembered price is already the new one, and
a change is unique per (provider, model, kind, effective_from, source) — a second change of the same price
on the same day updates that day's row (and removes it when the price is back where it started).

Tracked models: those seen in the LLM usage facts (``costs``: a DuckDB connection over the lake), those
given in ``models``, and those already remembered. A newer genai-prices snapshot is noticed by upgrading
the package; tests (and other sources) inject the price lookup with ``lookup``.

``price_change_impact(costs, change, month)`` = the month's usage of the model priced at the new price
minus at the old one (positive: the same usage now costs more). Usage is read once per model even when
several sources describe the same calls: the provider's usage API first, then gateway logs, then spans,
then the source with the most tokens. Reasoning tokens count as output; batch tokens get the batch
discount (``batch_discount``), as at ingestion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import duckdb
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.model import FinOpsConfig
from tools.errors import FinOpsError
from tools.ingest.pricing import ModelPrice, find_override
from tools.periods import Period
from tools.store.db import Database
from tools.store.lake import sql_string
from tools.store.models import PriceChange, PriceSnapshot

#: token kinds a price is tracked for, in the order reports show them
KINDS: tuple[str, ...] = ("input", "cache_read", "cache_write", "output")
OVERRIDE_SOURCE = "config override"
CURRENCY = "USD"
_MILLION = Decimal(1_000_000)
_CENT = Decimal("0.01")
#: usage source preference when several describe the same calls (as tools.spend chooses coverage)
_SOURCE_RANK = (
    "CASE source_format WHEN 'openai-usage' THEN 0 WHEN 'anthropic-usage' THEN 0 "
    "WHEN 'litellm' THEN 1 WHEN 'otel' THEN 2 ELSE 3 END"
)


class PriceError(FinOpsError):
    """A price check or impact that cannot be computed as asked."""


@dataclass(frozen=True)
class ModelPrices:
    """A model's price per 1M tokens of each kind (``KINDS``) and where it comes from."""

    prices: Mapping[str, Decimal]
    source: str
    currency: str = CURRENCY


#: (provider, model, day) -> the model's current prices, or None when no price is known
PriceLookup = Callable[[str, str, date], ModelPrices | None]


@dataclass(frozen=True)
class PriceChangeInfo:
    """One recorded price change (a row of ``price_changes``)."""

    id: int
    provider: str
    model: str
    kind: str
    old_price: Decimal | None
    new_price: Decimal | None
    currency: str
    source: str
    effective_from: date
    recorded_at: datetime

    @property
    def delta(self) -> Decimal | None:
        if self.old_price is None or self.new_price is None:
            return None
        return self.new_price - self.old_price

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "kind": self.kind,
            "old_price": self.old_price,
            "new_price": self.new_price,
            "unit": f"{self.currency} per 1M tokens",
            "currency": self.currency,
            "source": self.source,
            "effective_from": self.effective_from.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
        }


def _info(row: PriceChange) -> PriceChangeInfo:
    return PriceChangeInfo(
        id=row.id,
        provider=row.provider,
        model=row.model,
        kind=row.kind,
        old_price=_dec(row.old_price),
        new_price=_dec(row.new_price),
        currency=row.currency,
        source=row.source,
        effective_from=row.effective_from,
        recorded_at=row.recorded_at,
    )


def _dec(value: Decimal | None) -> Decimal | None:
    return None if value is None else plain_decimal(Decimal(value))


def plain_decimal(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and never in exponent form (10, not 1E+1)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


# ----- the current prices ----------------------------------------------------------------------------


@cache
def genai_prices_source() -> str:
    """``genai-prices <installed version>``: the label of prices read from genai-prices' snapshot."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "genai-prices"


def _override_prices(price: ModelPrice) -> dict[str, Decimal]:
    return {
        "input": price.input,
        "cache_read": price.cache_read,
        "cache_write": price.cache_write,
        "output": price.output,
    }


def current_prices(config: FinOpsConfig, *, source: str | None = None) -> PriceLookup:
    """The price lookup ingestion uses: a finops.yaml override, else genai-prices for the day (base tier,
    standard processing; the provider's own listing as ingestion prices it). ``source`` labels the
    genai-prices prices (default ``genai-prices <version>``)."""
    from tools.ingest.pricing import _genai_rates, _provider_candidates
    from tools.rules.premium_model import price_overrides

    overrides = price_overrides(config)
    label = source or genai_prices_source()

    def lookup(provider: str, model: str, day: date) -> ModelPrices | None:
        key = find_override(model, overrides)
        if key is not None:
            return ModelPrices(_override_prices(overrides[key]), OVERRIDE_SOURCE)
        for provider_id in _provider_candidates(provider):
            rates = _genai_rates(model, provider_id, day, ())
            if rates is not None:
                return ModelPrices(
                    {
                        "input": rates.input,
                        "cache_read": rates.cache_read,
                        "cache_write": rates.cache_write,
                        "output": rates.output,
                    },
                    label,
                )
        return None

    return lookup


def models_in_usage(costs: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(provider, model) of every model in the LLM usage facts."""
    rows = costs.execute(
        "SELECT DISTINCT provider, model FROM usage_facts WHERE model IS NOT NULL AND provider IS NOT NULL "
        "ORDER BY 1, 2"
    ).fetchall()
    return [(str(p), str(m)) for p, m in rows]


# ----- the check -------------------------------------------------------------------------------------


def _same(a: Decimal | None, b: Decimal | None) -> bool:
    if a is None or b is None:
        return a is b
    return Decimal(a) == Decimal(b)


def check_prices(
    db: Database,
    config: FinOpsConfig,
    now: datetime,
    *,
    source: str | None = None,
    costs: duckdb.DuckDBPyConnection | None = None,
    models: Iterable[tuple[str, str]] = (),
    lookup: PriceLookup | None = None,
) -> list[PriceChangeInfo]:
    """Compare today's prices with the remembered ones; record and return the changes found by this run.

    Tracked: the models of the usage facts (``costs``), ``models`` ((provider, model) pairs) and every model
    already remembered. ``lookup`` (default ``current_prices(config, source=source)``) gives the prices."""
    if now.tzinfo is None:
        raise PriceError("check_prices needs a timezone-aware `now` (UTC)")
    find = lookup or current_prices(config, source=source)
    day = now.date()
    tracked: set[tuple[str, str]] = set(models)
    if costs is not None:
        tracked.update(models_in_usage(costs))
    with db.session() as session:
        tracked.update((s.provider, s.model) for s in session.scalars(select(PriceSnapshot)))
    current: dict[tuple[str, str], ModelPrices] = {}
    for provider, model in sorted(tracked):
        found = find(provider, model, day)
        if found is not None:
            current[(provider, model)] = found
    for attempt in range(2):  # a concurrent check that recorded the same change first: read it again
        try:
            return _record(db, current, now)
        except IntegrityError:
            if attempt:
                raise
    return []  # pragma: no cover


def _record(
    db: Database, current: Mapping[tuple[str, str], ModelPrices], now: datetime
) -> list[PriceChangeInfo]:
    changed: list[PriceChange] = []
    with db.session() as session:
        snapshots = {(s.provider, s.model, s.kind): s for s in session.scalars(select(PriceSnapshot))}
        for (provider, model), found in sorted(current.items()):
            for kind in KINDS:
                if kind not in found.prices:
                    continue
                price = Decimal(found.prices[kind])
                snap = snapshots.get((provider, model, kind))
                if snap is None:
                    session.add(
                        PriceSnapshot(
                            provider=provider,
                            model=model,
                            kind=kind,
                            price=price,
                            currency=found.currency,
                            source=found.source,
                            seen_at=now,
                        )
                    )
                    continue
                if not _same(snap.price, price):
                    row = _change(session, provider, model, kind, Decimal(snap.price), price, found, now)
                    if row is not None:
                        changed.append(row)
                snap.price, snap.source, snap.currency, snap.seen_at = (
                    price,
                    found.source,
                    found.currency,
                    now,
                )
        session.flush()
        return [_info(r) for r in changed if r in session]


def _change(
    session: Session,
    provider: str,
    model: str,
    kind: str,
    old: Decimal,
    new: Decimal,
    found: ModelPrices,
    now: datetime,
) -> PriceChange | None:
    """Insert the change, or fold it into the same day's change of this price (None when it cancels out)."""
    existing = session.scalars(
        select(PriceChange).where(
            PriceChange.provider == provider,
            PriceChange.model == model,
            PriceChange.kind == kind,
            PriceChange.effective_from == now.date(),
            PriceChange.source == found.source,
        )
    ).first()
    if existing is None:
        row = PriceChange(
            provider=provider,
            model=model,
            kind=kind,
            old_price=old,
            new_price=new,
            currency=found.currency,
            source=found.source,
            effective_from=now.date(),
            recorded_at=now,
        )
        session.add(row)
        return row
    if existing.old_price is not None and _same(existing.old_price, new):
        session.delete(existing)  # changed and changed back on the same day: no change
        return None
    existing.new_price, existing.recorded_at = new, now
    return existing


def list_price_changes(
    db: Database,
    *,
    since: date | None = None,
    until: date | None = None,
    model: str | None = None,
) -> list[PriceChangeInfo]:
    """Recorded changes, newest first; ``since`` / ``until`` bound ``effective_from`` (both inclusive)."""
    with db.session() as session:
        q = select(PriceChange)
        if since is not None:
            q = q.where(PriceChange.effective_from >= since)
        if until is not None:
            q = q.where(PriceChange.effective_from <= until)
        if model:
            q = q.where(PriceChange.model == model)
        q = q.order_by(
            PriceChange.effective_from.desc(), PriceChange.provider, PriceChange.model, PriceChange.kind
        )
        return [_info(r) for r in session.scalars(q)]


def list_price_snapshots(db: Database) -> list[dict[str, Any]]:
    """The remembered prices, by provider, model and kind."""
    with db.session() as session:
        q = select(PriceSnapshot).order_by(PriceSnapshot.provider, PriceSnapshot.model, PriceSnapshot.kind)
        return [
            {
                "provider": s.provider,
                "model": s.model,
                "kind": s.kind,
                "price": plain_decimal(Decimal(s.price)),
                "unit": f"{s.currency} per 1M tokens",
                "source": s.source,
                "seen_at": s.seen_at.isoformat(),
            }
            for s in session.scalars(q)
        ]


# ----- impact on spend -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeImpact:
    """The period's usage of one model and token kind, priced at the old and at the new price."""

    period: Period
    tokens: int  # of the change's kind (batch included)
    batch_tokens: int
    old_cost: Decimal
    new_cost: Decimal

    @property
    def impact(self) -> Decimal:
        return self.new_cost - self.old_cost


def _usage_sql(provider: str, model: str, period: Period) -> str:
    where = (
        f"provider = {sql_string(provider)} AND model = {sql_string(model)} "
        f"AND day >= DATE {sql_string(period.start.isoformat())} "
        f"AND day < DATE {sql_string(period.end.isoformat())}"
    )
    return f"""
        WITH g AS (
            SELECT source_format, coalesce(batch, false) AS batch,
                   sum(input_uncached_tokens) AS input, sum(cache_read_tokens) AS cache_read,
                   sum(cache_write_tokens) AS cache_write,
                   sum(coalesce(output_tokens, 0) + coalesce(reasoning_tokens, 0)) AS output,
                   sum(total_tokens) AS total
            FROM usage_facts WHERE {where} GROUP BY 1, 2
        ), pick AS (
            SELECT source_format FROM g GROUP BY 1
            ORDER BY min({_SOURCE_RANK}), sum(total) DESC, 1 LIMIT 1
        )
        SELECT batch, input, cache_read, cache_write, output FROM g
        WHERE source_format = (SELECT source_format FROM pick)
    """


def _as_period(month: Period | str) -> Period:
    if isinstance(month, Period):
        return month
    from tools.periods import parse_period

    return parse_period(month, date.today())


def change_usage(
    costs: duckdb.DuckDBPyConnection,
    change: PriceChangeInfo | PriceChange,
    month: Period | str,
    *,
    batch_discount: Decimal = Decimal("0.5"),
) -> ChangeImpact:
    """The month's tokens of the change's model and kind, priced at its old and its new price."""
    period = _as_period(month)
    if change.kind not in KINDS:
        raise PriceError(f"unknown token kind {change.kind!r}; the kinds are {', '.join(KINDS)}")
    column = KINDS.index(change.kind) + 1
    tokens = batch = 0
    for row in costs.execute(_usage_sql(change.provider, change.model, period)).fetchall():
        n = int(row[column] or 0)
        tokens += n
        if row[0]:
            batch += n
    old = Decimal(change.old_price) if change.old_price is not None else Decimal(0)
    new = Decimal(change.new_price) if change.new_price is not None else Decimal(0)
    factor = Decimal(1) - batch_discount

    def cost(price: Decimal) -> Decimal:
        return (Decimal(tokens - batch) * price + Decimal(batch) * price * factor) / _MILLION

    return ChangeImpact(period, tokens, batch, cost(old), cost(new))


def price_change_impact(
    costs: duckdb.DuckDBPyConnection,
    change: PriceChangeInfo | PriceChange,
    month: Period | str,
    *,
    batch_discount: Decimal = Decimal("0.5"),
) -> Decimal:
    """The month's usage of the model priced at the new price minus at the old one (exact Decimal)."""
    return change_usage(costs, change, month, batch_discount=batch_discount).impact
