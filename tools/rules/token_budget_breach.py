"""Rule ``token-budget-breach``: a project's tokens in the current budget period crossed its thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from tools.budgets import TokenBudgetStatus, token_budget_status
from tools.findings import Finding, fingerprint
from tools.rules.base import Rule, RuleContext, RuleParams, register
from tools.rules.premium_model import money, period_sql


class TokenBudgetBreachParams(RuleParams):
    pass


@register
class TokenBudgetBreach(Rule):
    """A token budget (``token_budgets``) whose tokens used so far in the current period (month or
    quarter containing today, data through yesterday; ``tools.budgets.token_budget_status``) crossed one
    of its thresholds (default 75 % and 100 %).

    The proposed action is ``set-rate-limit`` with ``{"project", "tokens_per_month": the budget}`` (a
    quarterly budget is spread evenly over its three months), so the gateway enforces the budget. Impact
    = the tokens forecast above the budget for the period (run rate), at the project's average cost per
    token in the period (allocated LLM spend / tokens), per month; 0 while the forecast stays within the
    budget (a warning). The fingerprint includes the period: each period's breach is its own finding.

    ``rate_limits`` (tokens / requests per minute per team and environment) are not checked: the lake
    holds daily totals, from which a peak per minute cannot be derived.
    """

    id = "token-budget-breach"
    title = "Token budget threshold crossed"
    resource_kind = "llm-project"
    Params = TokenBudgetBreachParams
    action = "set-rate-limit"
    evidence_fields = (
        "period",
        "budget_tokens",
        "actual_tokens",
        "used",
        "forecast_tokens",
        "thresholds_crossed",
        "status",
        "cost_per_1m_tokens",
    )

    def evaluate(self, ctx: RuleContext) -> Iterator[Finding]:
        if ctx.costs is None:
            return
        for s in token_budget_status(ctx.costs, ctx.config, ctx.now.date()):
            if not s.crossed:
                continue
            yield self._finding(ctx, s)

    def _cost_per_token(self, ctx: RuleContext, s: TokenBudgetStatus) -> Decimal | None:
        assert ctx.costs is not None
        where = period_sql(s.period)
        (spend,) = ctx.costs.execute(
            f"SELECT sum(effective_cost) FROM spend WHERE {where} AND llm_provider IS NOT NULL "
            "AND lower(project) = lower(?)",
            [s.project],
        ).fetchall()[0]
        (tokens,) = ctx.costs.execute(
            f"SELECT sum(tokens) FROM usage_allocated WHERE {where} AND lower(project) = lower(?)",
            [s.project],
        ).fetchall()[0]
        if not spend or not tokens:
            return None
        return Decimal(spend) / Decimal(int(tokens))

    def _finding(self, ctx: RuleContext, s: TokenBudgetStatus) -> Finding:
        months = 3 if s.period.days > 31 else 1
        per_token = self._cost_per_token(ctx, s)
        excess = max(max(s.forecast, s.actual) - s.tokens, 0)
        impact = (
            (Decimal(excess) * per_token / months).quantize(Decimal("0.01"))
            if per_token is not None
            else Decimal("0.00")
        )
        used = s.actual / s.tokens
        per_month = s.tokens // months
        return Finding(
            kind="governance",
            rule_id=self.id,
            fingerprint=fingerprint(self.id, s.project, s.period.label),
            title=f"{s.project} used {used:.0%} of its {s.period.label} token budget",
            monthly_impact=impact,
            detected_at=ctx.now,
            resource=s.project,
            resource_kind=self.resource_kind,
            scope={"project": s.project},
            severity="high" if s.status == "over" or s.forecast_status == "over" else "medium",
            evidence={
                "period": s.period.label,
                "budget_tokens": s.tokens,
                "actual_tokens": s.actual,
                "used": round(used, 4),
                "forecast_tokens": s.forecast,
                "thresholds_crossed": list(s.crossed),
                "status": s.status,
                "cost_per_1m_tokens": (
                    str((per_token * 1_000_000).quantize(Decimal("0.0001")))
                    if per_token is not None
                    else None
                ),
            },
            proposed_action=self.action,
            action_params={"project": s.project, "tokens_per_month": per_month},
            recommendation=(
                f"{s.project} has used {s.actual:,} of {s.tokens:,} tokens for {s.period.label} "
                f"(thresholds crossed: {', '.join(s.crossed)}); at this rate it reaches {s.forecast:,}. "
                f"Set a gateway limit of {per_month:,} tokens per month for the project, or raise the budget"
                + (f"; the excess costs about {money(impact)} a month." if impact > 0 else ".")
            ),
        )
