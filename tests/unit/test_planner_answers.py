"""The offline planner end to end on a small lake: every figure is the tools' own, the text says the period,
filters and metric, large results are folded into "(other)", and a question it cannot read gets help."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agent.answer import AI_SPEND_SQL, OTHER, AskContext
from agent.planner import answer_offline, plan_question
from agent.planner_exec import ai_parts, fold
from config.model import FinOpsConfig
from tests.unit.planner_fixture import TODAY, build
from tools.budgets import budget_status
from tools.costs import CostQuery, UnitCostQuery, query_costs, unit_costs
from tools.findings import Finding
from tools.findings_store import upsert_findings
from tools.ingest.service import Ingestor
from tools.periods import Period
from tools.store.db import Database
from tools.store.lake import Lake
from tools.untagged import untagged_spend

SEPT = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")
AUG = Period(date(2024, 8, 1), date(2024, 9, 1), "2024-08")


@pytest.fixture
def ctx(
    ingestor: Ingestor, lake: Lake, sqlite_db: Database, config: FinOpsConfig, tmp_path: Path
) -> AskContext:
    return build(ingestor, lake, sqlite_db, config, tmp_path)


def test_planner_answer_team_spend_last_week(ctx: AskContext) -> None:
    a = answer_offline("How much did the search team spend last week?", ctx)
    expected = query_costs(
        ctx.costs, CostQuery(Period(date(2024, 9, 9), date(2024, 9, 16), "w"), filters={"team": ["search"]})
    )
    assert a.understood and a.kind == "costs" and a.source == "offline"
    assert a.total == expected.total == Decimal("115")  # EC2 100 + the OpenAI spend allocated to rerank
    assert a.filters == {"team": ["search"]} and a.metric == "cost"
    assert a.period is not None and a.period.as_dict() == {"from": "2024-09-09", "to": "2024-09-16"}
    assert (
        "team=search" in a.text and "last week (2024-09-09 to 2024-09-15)" in a.text and "$115.00" in a.text
    )
    assert "effective cost" in a.text
    assert a.rerun == "finops costs --from 2024-09-09 --to 2024-09-16 --filter team=search"
    assert a.tool_calls[0].tool == "query_costs"


def test_planner_answer_groups_with_top_n_and_other(ctx: AskContext) -> None:
    a = answer_offline("top 2 teams by spend this month", ctx)
    full = query_costs(ctx.costs, CostQuery(SEPT, ("team",)))
    assert a.group_by == ("team",) and a.total == full.total
    assert [r["team"] for r in a.rows[:2]] == [r["team"] for r in full.rows[:2]] == ["ml-research", "search"]
    other = a.rows[-1]
    assert other["team"] == OTHER and a.truncated == len(full.rows) - 2
    assert sum(r["cost"] for r in a.rows) == a.total  # nothing dropped
    assert f"Top 2 of {len(full.rows)} by team" in a.text
    assert a.rerun is not None and a.rerun.endswith("--top 2")


def test_planner_answer_compare_with_last_month(ctx: AskContext) -> None:
    a = answer_offline("spend by team in September vs last month", ctx)
    direct = query_costs(ctx.costs, CostQuery(SEPT, ("team",), compare=True))
    assert a.comparison is not None
    assert a.comparison["period"] == AUG.as_dict() and a.comparison["total"] == direct.previous_total
    search = next(r for r in a.rows if r["team"] == "search")
    assert search["previous"] == Decimal("50") and search["change"] == search["cost"] - Decimal("50")
    assert a.rerun is not None and "--compare" in a.rerun


def test_planner_answer_running_month_is_also_compared_like_for_like(ctx: AskContext) -> None:
    a = answer_offline("spend this month vs last month", ctx)
    same = query_costs(ctx.costs, CostQuery(Period(date(2024, 8, 1), date(2024, 8, 21), "x"))).total
    assert "20 of 30 days" in a.text and f"${same:,.2f}" in a.text


def test_planner_answer_compare_values_of_a_dimension(ctx: AskContext) -> None:
    a = answer_offline("prod vs dev spend this month", ctx)
    assert a.group_by == ("environment",) and {r["environment"] for r in a.rows} == {"prod", "dev"}


def test_planner_answer_ai_spend_is_the_ai_spend_sql_exactly(ctx: AskContext) -> None:
    a = answer_offline("AI spend by team this month", ctx)
    (expected,) = ctx.costs.execute(
        f"SELECT sum(effective_cost) FROM spend WHERE day >= DATE '2024-09-01' AND day < DATE '2024-10-01' "
        f"AND {AI_SPEND_SQL}"
    ).fetchone() or (None,)
    assert a.total == expected == Decimal("532")
    assert sum(r["cost"] for r in a.rows) == a.total
    assert a.rerun is not None and a.rerun.count("finops costs") == 2


def test_planner_ai_parts_are_disjoint_and_cover_the_ai_spend() -> None:
    parts = ai_parts({}, ["training", "inference", "batch"])
    assert parts == [
        {"workload": ["training", "inference"]},
        {"service_category": ["AI and Machine Learning"], "workload": ["batch", "(none)"]},
    ]
    assert ai_parts({"workload": ["training"]}, ["training"]) == [{"workload": ["training"]}]
    assert ai_parts({"service_category": ["Compute"]}, []) == [
        {"service_category": ["Compute"], "workload": ["training", "inference"]}
    ]


def test_planner_fold_keeps_top_n_and_sums_the_rest() -> None:
    rows = [
        {"team": t, "cost": Decimal(c), "previous_cost": Decimal(1)}
        for t, c in [("a", 5), ("b", 3), ("c", 2)]
    ]
    out, folded = fold(rows, ["team"], 1, "cost", sums=("previous_cost",))
    assert folded == 2 and out[1] == {"team": OTHER, "cost": Decimal(5), "previous_cost": Decimal(2)}
    out, folded = fold(rows, ["team"], 1, "cost", ascending=True)
    assert out[0]["team"] == "c" and folded == 2


def test_planner_answer_tokens_and_unit_costs(ctx: AskContext) -> None:
    a = answer_offline("How many tokens did each feature use this month?", ctx)
    direct = unit_costs(ctx.costs, UnitCostQuery(SEPT, ("feature",)))
    assert a.kind == "unit-costs" and a.metric == "tokens" and a.total == 4_000_000
    assert {r["feature"]: r["tokens"] for r in a.rows} == {r["feature"]: r["tokens"] for r in direct.rows}
    b = answer_offline("cost per request for rerank this month", ctx)
    assert b.metric == "cost_per_request" and b.total == Decimal("0.025")  # $15 over 600 requests
    assert b.rerun == "finops unit-costs --by '' --from 2024-09-01 --to 2024-10-01 --filter feature=rerank"
    c = answer_offline("cost per 1M tokens by model this month", ctx)
    assert c.rows[0]["model"] == "gpt-4o-2024-08-06" and c.rows[0]["cost_per_1m_tokens"] == Decimal("5")


def test_planner_answer_model_spend_from_a_loose_name(ctx: AskContext) -> None:
    a = answer_offline("What did we spend on gpt4o in September?", ctx)
    assert a.filters == {"model": ["gpt-4o-2024-08-06"]} and a.total == Decimal("20")


def test_planner_answer_untagged(ctx: AskContext) -> None:
    a = answer_offline("how much spend is untagged this month?", ctx)
    direct = untagged_spend(ctx.costs, ctx.config, SEPT)
    assert a.kind == "untagged" and a.total == direct.unallocated == Decimal("25")
    assert a.rows[0]["resource"] == "i-untagged"


def test_planner_answer_budgets(ctx: AskContext) -> None:
    a = answer_offline("Budget status for the search team", ctx)
    (search,) = [b for b in budget_status(ctx.costs, ctx.config, TODAY) if b.name == "search-monthly"]
    assert a.kind == "budgets" and [r["budget"] for r in a.rows] == ["search-monthly"]
    assert a.rows[0]["cost"] == search.actual and a.total is None
    assert a.rerun == "finops --as-of 2024-09-21 budgets"


def test_planner_answer_why_gives_anomalies_and_the_change(ctx: AskContext) -> None:
    a = answer_offline("Why did the data team's spend go up this month?", ctx)
    assert a.kind == "anomalies" and a.metric == "count"
    assert a.comparison is not None and "team=data" in a.text
    assert a.rerun is not None and a.rerun.startswith("finops anomalies --from 2024-08-25 --to 2024-09-21")


def test_planner_answer_forecast(ctx: AskContext) -> None:
    a = answer_offline("forecast for the end of the month by team", ctx)
    assert a.kind == "forecast" and a.group_by == ("team",)
    assert a.total == sum(r["forecast"] for r in a.rows)
    assert a.rerun == "finops --as-of 2024-09-21 forecast --period 2024-09 --by team"


def test_planner_answer_findings(ctx: AskContext, sqlite_db: Database) -> None:
    now = datetime(2024, 9, 21, tzinfo=UTC)
    findings = [
        Finding(
            "waste", "idle-gpu", f"fp{i}", f"Idle thing {i}", Decimal(100 - i), now, scope={"team": "search"}
        )
        for i in range(12)
    ]
    upsert_findings(sqlite_db, findings, ctx.config, now)
    a = answer_offline("show open findings for the search team", ctx)
    assert a.kind == "findings" and a.total == sum(Decimal(100 - i) for i in range(12))
    assert len(a.rows) == 11 and a.rows[-1]["id"] == OTHER and a.truncated == 2
    assert a.rerun == "finops findings --status open --status notified --team search"


def test_planner_answer_approvals_and_audit_when_there_are_none(ctx: AskContext) -> None:
    a = answer_offline("What approvals are pending?", ctx)
    assert a.kind == "approvals" and a.total == 0 and a.rerun == "finops approvals --status pending"
    b = answer_offline("who approved the last change?", ctx)
    assert b.kind == "audit" and b.total == 0 and b.rerun == "finops audit list --limit 20"


def test_planner_answer_help_with_examples_from_the_data(ctx: AskContext) -> None:
    a = answer_offline("What is the weather in Paris?", ctx)
    assert not a.understood and a.kind == "help" and a.rows == [] and a.total is None
    assert len(a.examples) == 3
    assert "ml-research" in a.examples[0]  # the team with the most spend
    assert "gpt-4o" in a.examples[2]  # the model with the most tokens
    assert "I can answer questions about" in a.text


def test_planner_answer_unknown_value_is_not_guessed(ctx: AskContext) -> None:
    a = answer_offline("What did the marketing team spend last month?", ctx)
    assert not a.understood and a.total is None and "no team 'marketing'" in a.text


def test_planner_answer_unit_question_about_a_spend_only_dimension(ctx: AskContext) -> None:
    a = answer_offline("tokens by service this month", ctx)
    assert not a.understood and "not by service" in a.text


def test_planner_vocabulary_is_read_once_per_context(ctx: AskContext) -> None:
    from agent.planner_vocab import vocabulary_for

    assert vocabulary_for(ctx) is vocabulary_for(ctx)
    assert plan_question("search spend", ctx).filters == {"team": ["search"]}
