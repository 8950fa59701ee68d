"""Rule ``premium-model-downgrade``, and the helpers the LLM rules share (look-back window, model names,
families and vendors, the token mix of a feature, pricing a token mix the way ingestion prices usage).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb
from pydantic import Field

from config.model import FinOpsConfig
from tools.findings import Finding, Severity, fingerprint
from tools.ingest.pricing import ModelPrice, price_usage
from tools.ingest.records import TokenCounts, UsageRecord
from tools.periods import Period
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.store.lake import sql_string

# ----- Shared LLM helpers ----------------------------------------------------------------------------

#: Cheaper tiers of each model family, nearest step down first. A family is a model name without its
#: date/version suffix ("gpt-4o" covers "gpt-4o-2024-08-06"); names are compared after dropping gateway
#: and Bedrock prefixes ("openai/", "us.anthropic."). Targets stay within the vendor's own line-up.
MODEL_TIERS: Mapping[str, tuple[str, ...]] = {
    # OpenAI
    "gpt-4": ("gpt-4o", "gpt-4o-mini"),
    "gpt-4-turbo": ("gpt-4o", "gpt-4o-mini"),
    "gpt-4o": ("gpt-4o-mini",),
    "gpt-4.1": ("gpt-4.1-mini", "gpt-4.1-nano"),
    "gpt-4.1-mini": ("gpt-4.1-nano",),
    "gpt-5": ("gpt-5-mini", "gpt-5-nano"),
    "gpt-5-mini": ("gpt-5-nano",),
    "o1": ("o1-mini", "o3-mini"),
    "o3": ("o4-mini", "o3-mini"),
    # Anthropic
    "claude-3-opus": ("claude-3-5-sonnet", "claude-3-5-haiku", "claude-3-haiku"),
    "claude-3-sonnet": ("claude-3-haiku",),
    "claude-3-5-sonnet": ("claude-3-5-haiku", "claude-3-haiku"),
    "claude-3-7-sonnet": ("claude-3-5-haiku", "claude-haiku-4-5"),
    "claude-sonnet-4": ("claude-haiku-4-5", "claude-3-5-haiku"),
    "claude-sonnet-4-5": ("claude-haiku-4-5", "claude-3-5-haiku"),
    "claude-opus-4": ("claude-sonnet-4", "claude-sonnet-4-5", "claude-haiku-4-5"),
    "claude-opus-4-1": ("claude-sonnet-4", "claude-sonnet-4-5", "claude-haiku-4-5"),
    # Google
    "gemini-1.5-pro": ("gemini-1.5-flash", "gemini-1.5-flash-8b"),
    "gemini-1.5-flash": ("gemini-1.5-flash-8b",),
    "gemini-2.0-flash": ("gemini-2.0-flash-lite",),
    "gemini-2.5-pro": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
    "gemini-2.5-flash": ("gemini-2.5-flash-lite",),
    # Meta (self-hosted or via a gateway)
    "llama-3.1-405b-instruct": ("llama-3.1-70b-instruct", "llama-3.1-8b-instruct"),
    "llama-3.1-70b-instruct": ("llama-3.1-8b-instruct",),
    "llama-3.3-70b-instruct": ("llama-3.1-8b-instruct",),
}
MODEL_FAMILIES: frozenset[str] = frozenset(MODEL_TIERS) | frozenset(
    t for ts in MODEL_TIERS.values() for t in ts
)

#: model name prefix -> vendor (the company whose line-up a model belongs to)
MODEL_VENDORS: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("text-embedding-0", "google"),
    ("llama", "meta"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("codestral", "mistral"),
    ("command", "cohere"),
    ("nova", "amazon"),
    ("titan", "amazon"),
)

_REGION_PREFIX = re.compile(r"^(us|eu|apac|global|us-gov|jp|au|ca|regional)\.")
_VENDOR_PREFIX = re.compile(r"^(anthropic|meta|amazon|mistral|cohere|ai21|openai|deepseek|google)\.")
#: what may follow a model name in a dated / versioned name of the same model
_VERSION_SUFFIX = re.compile(r"^[-@:](\d{3,}|\d{4}-\d{2}-\d{2}|latest\b|preview\b|v\d)")
_MONTH_DAYS = Decimal(30)
_CENT = Decimal("0.01")


def window(ctx: RuleContext, days: int) -> Period:
    """The look-back window ``[today - days, today)``."""
    end = ctx.now.date()
    return Period(end - timedelta(days=days), end, f"last {days} days")


def monthly(amount: Decimal, days: int) -> Decimal:
    """A figure over a ``days``-day window, scaled to 30 days, in cents."""
    return (amount * _MONTH_DAYS / Decimal(days)).quantize(_CENT)


def severity_for(monthly_impact: Decimal) -> Severity:
    if monthly_impact >= 1000:
        return "high"
    if monthly_impact >= 100:
        return "medium"
    return "low"


def period_sql(period: Period, column: str = "day") -> str:
    return (
        f"{column} >= DATE {sql_string(period.start.isoformat())} "
        f"AND {column} < DATE {sql_string(period.end.isoformat())}"
    )


def canonical_model(name: str) -> str:
    """Lower case, without a gateway prefix ("openai/"), a Bedrock region ("us.") or vendor ("anthropic.")."""
    text = name.strip().lower().rsplit("/", 1)[-1]
    text = _REGION_PREFIX.sub("", text)
    return _VENDOR_PREFIX.sub("", text)


def is_version_of(model: str, name: str) -> bool:
    """``model`` is ``name`` or a dated/versioned variant of it (gpt-4o-2024-08-06 of gpt-4o; not gpt-4o-mini)."""
    m, n = canonical_model(model), canonical_model(name)
    if m == n:
        return True
    return m.startswith(n) and bool(_VERSION_SUFFIX.match(m[len(n) :]))


def approved_name(model: str, approved: Sequence[str]) -> str | None:
    """The entry of ``approved`` that covers ``model`` (itself or one of its dated versions), if any."""
    return next((a for a in approved if is_version_of(model, a)), None)


def model_family(model: str) -> str | None:
    """The family of ``MODEL_TIERS`` the model belongs to (the longest matching family name)."""
    matches = [f for f in MODEL_FAMILIES if is_version_of(model, f)]
    return max(matches, key=len) if matches else None


def model_vendor(model: str) -> str | None:
    m = canonical_model(model)
    found = [(p, v) for p, v in MODEL_VENDORS if m.startswith(p)]
    return max(found, key=lambda pv: len(pv[0]))[1] if found else None


def is_embedding_model(model: str) -> bool:
    return "embed" in canonical_model(model)


@dataclass(frozen=True)
class UsageGroup:
    """LLM usage of one (provider, model, environment, feature) over a window, from a single source."""

    provider: str
    model: str
    environment: str | None
    feature: str | None
    team: str | None
    project: str | None
    source_format: str
    requests: int  # on-demand (batch = false)
    tokens: TokenCounts  # on-demand
    batch_requests: int
    batch_tokens: TokenCounts
    cost: Decimal | None  # the cost the usage records state or were priced at (None: partly unpriced)

    @property
    def all_requests(self) -> int:
        return self.requests + self.batch_requests

    @property
    def input_tokens(self) -> int:
        """All input tokens (uncached, cache reads, cache writes), batch and on-demand."""
        return self.tokens.total_input + self.batch_tokens.total_input

    @property
    def input_uncached(self) -> int:
        return self.tokens.input_uncached + self.batch_tokens.input_uncached

    @property
    def cache_read(self) -> int:
        return self.tokens.cache_read + self.batch_tokens.cache_read

    @property
    def total_tokens(self) -> int:
        return self.tokens.total + self.batch_tokens.total

    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.provider, self.model, self.environment, self.feature)

    def scope(self) -> dict[str, str]:
        out = {
            "team": self.team,
            "project": self.project,
            "environment": self.environment,
            "feature": self.feature,
            "llm_provider": self.provider,
            "model": self.model,
        }
        return {k: v for k, v in out.items() if v is not None}


_USAGE_GROUPS_SQL = """
WITH g AS (
    SELECT provider, model, environment, feature, source_format, coalesce(batch, false) AS batch,
           mode(team) AS team, mode(project) AS project,
           sum(requests) AS requests, sum(input_uncached_tokens) AS iu, sum(cache_read_tokens) AS cr,
           sum(cache_write_tokens) AS cw, sum(output_tokens) AS o, sum(reasoning_tokens) AS r,
           sum(total_tokens) AS t, sum(cost) AS cost, count(*) - count(cost) AS unpriced
    FROM usage_facts
    WHERE {where} AND model IS NOT NULL
    GROUP BY provider, model, environment, feature, source_format, coalesce(batch, false)
), pick AS (
    SELECT provider, model, environment, feature, source_format,
           row_number() OVER (PARTITION BY provider, model, environment, feature
                              ORDER BY sum(t) DESC, source_format) AS rn
    FROM g GROUP BY provider, model, environment, feature, source_format
)
SELECT g.provider, g.model, g.environment, g.feature, g.source_format, g.batch, g.team, g.project,
       g.requests, g.iu, g.cr, g.cw, g.o, g.r, g.cost, g.unpriced
FROM g JOIN pick p
  ON p.provider = g.provider AND p.model = g.model AND p.source_format = g.source_format
 AND p.environment IS NOT DISTINCT FROM g.environment AND p.feature IS NOT DISTINCT FROM g.feature
WHERE p.rn = 1
ORDER BY g.provider, g.model, g.environment NULLS LAST, g.feature NULLS LAST, g.batch
"""


def usage_groups(con: duckdb.DuckDBPyConnection, period: Period) -> list[UsageGroup]:
    """The token mix of every (provider, model, environment, feature) in ``period``, from one source each."""
    rows = con.execute(_USAGE_GROUPS_SQL.format(where=period_sql(period))).fetchall()
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (
        provider,
        model,
        env,
        feature,
        source,
        batch,
        team,
        project,
        req,
        iu,
        cr,
        cw,
        o,
        r,
        cost,
        unpriced,
    ) in rows:
        key = (provider, model, env, feature)
        tokens = TokenCounts(
            input_uncached=int(iu or 0),
            cache_read=int(cr or 0),
            cache_write=int(cw or 0),
            output=int(o or 0),
            reasoning=int(r or 0),
        )
        item = merged.setdefault(
            key,
            {
                "team": team,
                "project": project,
                "source": source,
                "requests": 0,
                "tokens": TokenCounts(),
                "batch_requests": 0,
                "batch_tokens": TokenCounts(),
                "cost": Decimal(0),
                "unpriced": False,
            },
        )
        item["team"] = item["team"] or team
        item["project"] = item["project"] or project
        if batch:
            item["batch_requests"] += int(req or 0)
            item["batch_tokens"] = tokens
        else:
            item["requests"] += int(req or 0)
            item["tokens"] = tokens
        item["cost"] += cost if cost is not None else Decimal(0)
        item["unpriced"] = item["unpriced"] or bool(unpriced)
    return [
        UsageGroup(
            provider=k[0],
            model=k[1],
            environment=k[2],
            feature=k[3],
            team=v["team"],
            project=v["project"],
            source_format=v["source"],
            requests=v["requests"],
            tokens=v["tokens"],
            batch_requests=v["batch_requests"],
            batch_tokens=v["batch_tokens"],
            cost=None if v["unpriced"] else v["cost"],
        )
        for k, v in merged.items()
    ]


def allocated_llm_spend(
    con: duckdb.DuckDBPyConnection, period: Period
) -> dict[tuple[str | None, str | None, str | None, str | None], Decimal]:
    """Allocated LLM spend (effective cost) per (llm_provider, model, environment, feature)."""
    rows = con.execute(
        "SELECT llm_provider, model, environment, feature, sum(effective_cost) FROM spend "
        f"WHERE {period_sql(period)} AND llm_provider IS NOT NULL GROUP BY ALL"
    ).fetchall()
    return {(p, m, e, f): Decimal(c or 0) for p, m, e, f, c in rows}


def price_overrides(config: FinOpsConfig) -> dict[str, ModelPrice]:
    """finops.yaml price overrides, as ingestion applies them (cache prices default to the input price)."""
    return {
        o.model: ModelPrice(
            input=o.input_per_mtok,
            output=o.output_per_mtok,
            cache_read=o.cache_read_per_mtok if o.cache_read_per_mtok is not None else o.input_per_mtok,
            cache_write=o.cache_write_per_mtok if o.cache_write_per_mtok is not None else o.input_per_mtok,
        )
        for o in config.pricing.overrides
    }


def price_tokens(
    config: FinOpsConfig,
    provider: str,
    model: str,
    tokens: TokenCounts,
    requests: int,
    day: date,
    *,
    batch: bool = False,
) -> Decimal | None:
    """The cost of ``tokens`` on ``model`` (override, else genai-prices; batch-aware), or None if unknown.

    When the channel ``provider`` has no listed price for the model, the vendor's list price is used.
    Aggregates are priced at the base tier (as ingestion prices aggregated buckets).
    """
    if tokens.total == 0:
        return Decimal(0)
    overrides = price_overrides(config)
    for prov in (provider, "unknown"):
        record = UsageRecord(
            record_key="rule-estimate",
            source_format="rule",
            start=datetime.combine(day, time(), tzinfo=UTC),
            provider=prov,
            model=model,
            tokens=tokens,
            requests=max(requests, 2),
            batch=batch,
        )
        priced = price_usage(record, overrides, config.pricing.batch_discount)
        if priced.cost is not None:
            return priced.cost
    return None


def price_group(config: FinOpsConfig, group: UsageGroup, model: str, day: date) -> Decimal | None:
    """The cost of a usage group's whole token mix (on-demand and batch) if it had run on ``model``."""
    on_demand = price_tokens(config, group.provider, model, group.tokens, group.requests, day)
    batch = price_tokens(
        config, group.provider, model, group.batch_tokens, group.batch_requests, day, batch=True
    )
    if on_demand is None or batch is None:
        return None
    return on_demand + batch


def money(value: Decimal) -> str:
    return f"${value.quantize(_CENT):,}"


# ----- The rule ----------------------------------------------------------------------------------------


class PremiumModelParams(RuleParams):
    days: int = Field(30, ge=1, le=365, description="look-back window in days")
    max_avg_input_tokens: int = Field(
        8000, ge=1, description="propose a smaller model only below this average input per request"
    )
    min_monthly_savings: Decimal = Field(Decimal("10"), ge=0, description="ignore smaller savings ($/month)")


@register
class PremiumModelDowngrade(Rule):
    """Premium model downgrade: a feature runs on a premium model while a cheaper model of the same family
    tier, approved for the feature's environment, would cost less for the feature's actual token mix.

    How the rule decides, per (provider, model, environment, feature) over the last ``days`` days:

    1. The feature's token mix is summed from ``usage_facts`` (uncached input, cache reads, cache writes,
       output, reasoning; batch and on-demand separately). Several sources can describe the same calls
       (usage API, spans, gateway logs); per group only the source with the most tokens is read, so nothing
       is counted twice. Usage without a feature or an environment is skipped (nothing to route).
    2. The model's family is looked up in ``MODEL_TIERS`` (this module); its cheaper tiers, in order of
       preference (the nearest step down first), are the candidate targets. Only targets approved for the
       environment in ``approved_models`` are proposed (the approved name as configured is used).
    3. Both models are priced on the same token mix with ``tools.ingest.pricing.price_usage`` (price
       overrides of finops.yaml first, then genai-prices; batch discounts as at ingestion). When the
       channel (e.g. Bedrock, Azure) has no listed price for a target, the vendor's list price is used.
    4. The first candidate that is cheaper is proposed, if the feature's average input per request
       (uncached + cached + cache-write tokens) is below ``max_avg_input_tokens``: a simple stand-in for
       "fits the smaller model's context and does not need the larger model's long-context quality".

    Savings = (cost at the current model's price - cost at the target's price) over the window, scaled to
    30 days. Quality is not measured: the recommendation asks the owner to evaluate the target on a sample.
    """

    id = "premium-model-downgrade"
    title = "Premium LLM model where a cheaper approved model would do"
    resource_kind = "llm-feature"
    Params = PremiumModelParams
    action = "switch-llm-model"
    evidence_fields = (
        "window_days",
        "requests",
        "avg_input_tokens",
        "avg_output_tokens",
        "token_mix",
        "cost_current_model",
        "cost_target_model",
        "allocated_spend",
        "source",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        p = self.params
        assert isinstance(p, PremiumModelParams)
        period = window(ctx, p.days)
        price_day = period.end - timedelta(days=1)
        spend = allocated_llm_spend(ctx.costs, period)
        for g in usage_groups(ctx.costs, period):
            if g.feature is None or g.environment is None or g.all_requests == 0:
                continue
            approved = ctx.config.approved_models.get(g.environment, [])
            family = model_family(g.model)
            if family is None or family not in MODEL_TIERS:
                continue
            avg_input = g.input_tokens / g.all_requests
            if avg_input >= p.max_avg_input_tokens:
                continue
            current = price_group(ctx.config, g, g.model, price_day)
            if current is None or current <= 0:
                continue
            for tier in MODEL_TIERS[family]:
                target = next((a for a in approved if model_family(a) == tier), None)
                if target is None:
                    continue
                cost = price_group(ctx.config, g, target, price_day)
                if cost is None or cost >= current:
                    continue
                impact = monthly(current - cost, p.days)
                if impact < p.min_monthly_savings:
                    break
                yield self._finding(ctx, g, target, current, cost, avg_input, spend, impact, p.days)
                break

    def _finding(
        self,
        ctx: RuleContext,
        g: UsageGroup,
        target: str,
        current: Decimal,
        cost: Decimal,
        avg_input: float,
        spend: Mapping[tuple[str | None, str | None, str | None, str | None], Decimal],
        impact: Decimal,
        days: int,
    ) -> Finding:
        avg_output = (g.tokens.total_output + g.batch_tokens.total_output) / g.all_requests
        pct = ((current - cost) / current * 100).quantize(Decimal("1"))
        return Finding(
            kind="waste",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, g.provider, g.model, g.environment, g.feature),
            title=f"{g.feature} ({g.environment}) could run on {target} instead of {g.model}",
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=f"{g.feature}/{g.model}",
            resource_kind=self.resource_kind,
            scope=g.scope(),
            severity=severity_for(impact),
            evidence={
                "window_days": days,
                "requests": g.all_requests,
                "avg_input_tokens": round(avg_input),
                "avg_output_tokens": round(avg_output),
                "token_mix": {
                    "input_uncached": g.input_uncached,
                    "cache_read": g.cache_read,
                    "cache_write": g.tokens.cache_write + g.batch_tokens.cache_write,
                    "output": g.tokens.output + g.batch_tokens.output,
                    "reasoning": g.tokens.reasoning + g.batch_tokens.reasoning,
                },
                "cost_current_model": str(current.quantize(_CENT)),
                "cost_target_model": str(cost.quantize(_CENT)),
                "allocated_spend": str(
                    spend.get((g.provider, g.model, g.environment, g.feature), Decimal(0)).quantize(_CENT)
                ),
                "source": g.source_format,
            },
            proposed_action=self.action,
            action_params={
                "feature": g.feature,
                "environment": g.environment,
                "from_model": g.model,
                "to_model": target,
            },
            recommendation=(
                f"Route {g.feature} in {g.environment} from {g.model} to {target} (approved for "
                f"{g.environment}): the same {g.all_requests:,} requests would have cost {money(cost)} "
                f"instead of {money(current)} over {days} days ({pct}% less). Evaluate {target}'s answers "
                "on a sample of this feature's traffic before switching."
            ),
        )
