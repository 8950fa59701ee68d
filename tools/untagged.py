"""Unallocated spend: what has no team, the top offenders, and who probably owns each of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from config.model import FinOpsConfig
from tools.costs import _num, _where
from tools.periods import Period

#: the dimensions a resource needs for its spend to count as allocated
REQUIRED_DIMENSION = "team"
#: share of an account's tagged spend a team needs before it is suggested as owner of the account's rest
ACCOUNT_OWNER_SHARE = Decimal("0.5")
SHARED_CHARGE_OWNER_SHARE = Decimal("0.8")


@dataclass
class Offender:
    provider: str | None
    account: str | None
    service: str | None
    resource: str | None
    cost: Decimal
    tags: str | None
    suggested_team: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "sub_account": self.account,
            "service": self.service,
            "resource": self.resource,
            "cost": self.cost,
            "tags": self.tags,
            "suggested_team": self.suggested_team,
            "reason": self.reason,
        }


@dataclass
class UntaggedResult:
    period: Period
    metric: str
    currency: str
    total: Decimal
    unallocated: Decimal
    offenders: list[Offender] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        share = (self.unallocated / self.total * 100).quantize(Decimal("0.01")) if self.total else None
        return {
            "metric": self.metric,
            "currency": self.currency,
            "period": self.period.as_dict(),
            "total": self.total,
            "unallocated": self.unallocated,
            "unallocated_percent": share,
            "offenders": [o.as_dict() for o in self.offenders],
        }


def untagged_spend(
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    period: Period,
    *,
    top: int = 10,
    metric: str = "effective",
) -> UntaggedResult:
    m = f"{metric}_cost"
    where = _where(period, {}, {})
    total, unallocated = con.execute(
        f"SELECT sum({m}), sum({m}) FILTER (WHERE {REQUIRED_DIMENSION} IS NULL) FROM spend WHERE {where}"
    ).fetchall()[0]
    rows = con.execute(f"""
        SELECT provider, sub_account, service, resource, sum({m}) AS cost
        FROM spend
        WHERE {where} AND {REQUIRED_DIMENSION} IS NULL
        GROUP BY ALL ORDER BY cost DESC, resource NULLS LAST LIMIT {int(top)}
    """).fetchall()
    offenders = []
    for provider, account, service, resource, cost in rows:
        tags = None
        if resource:
            found = con.execute(
                "SELECT any_value(tags) FROM cost_facts WHERE resource = ? AND team IS NULL", [resource]
            ).fetchall()
            tags = found[0][0] if found else None
        team, reason = suggest_owner(con, config, resource, account, tags)
        offenders.append(Offender(provider, account, service, resource, _num(cost), tags, team, reason))
    return UntaggedResult(period, metric, config.currency, _num(total), _num(unallocated), offenders)


def suggest_owner(
    con: duckdb.DuckDBPyConnection,
    config: FinOpsConfig,
    resource: str | None,
    account: str | None,
    tags: str | None,
) -> tuple[str | None, str]:
    """The team that most probably owns a resource, with the evidence."""
    if resource:
        found = con.execute(
            "SELECT team, count(DISTINCT day) FROM cost_facts WHERE resource = ? AND team IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
            [resource],
        ).fetchall()
        if found:
            return str(
                found[0][0]
            ), f"the same resource is tagged team={found[0][0]} on {found[0][1]} other day(s)"
    if tags:
        for dim in ("project", "owner", "cost_center"):
            value = con.execute(
                f"SELECT {dim} FROM cost_facts WHERE resource IS NOT DISTINCT FROM ? AND {dim} IS NOT NULL LIMIT 1",
                [resource],
            ).fetchall()
            if not value:
                continue
            v = str(value[0][0])
            if dim == "owner":
                for t in config.teams:
                    if any(p.email and p.email.lower() == v.lower() for p in t.owners):
                        return t.name, f"its owner tag {v} is an owner of team {t.name} in the config"
            team = con.execute(
                f"SELECT team, sum(effective_cost) c FROM cost_facts WHERE {dim} = ? AND team IS NOT NULL "
                "GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
                [v],
            ).fetchall()
            if team:
                return str(
                    team[0][0]
                ), f"its {dim} tag {v} belongs to team {team[0][0]} elsewhere in the bill"
    if account:
        team = con.execute(
            "SELECT team, sum(effective_cost) AS c, sum(sum(effective_cost)) OVER () AS total FROM cost_facts "
            "WHERE sub_account = ? AND team IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
            [account],
        ).fetchall()
        if team and team[0][2]:
            share = _num(team[0][1]) / _num(team[0][2])
            # a resource-less charge (support plan, tax) is shared unless one team clearly owns the account
            if share >= (ACCOUNT_OWNER_SHARE if resource else SHARED_CHARGE_OWNER_SHARE):
                pct = (share * 100).quantize(Decimal("1"))
                return str(
                    team[0][0]
                ), f"team {team[0][0]} owns {pct}% of the tagged spend in account {account}"
    if not resource:
        return None, (
            "a charge with no resource (support plan, tax, fees): split it as a shared cost, "
            "or map its account in taxonomy.accounts"
        )
    return None, "no evidence in the bill; tag the resource or map its account in taxonomy.accounts"
