"""The monthly and quarterly reviews (tools/report.py) against figures computed independently.

On the demo organisation (``tests.demo_org``: data 2024-06-01..2024-09-20, today 2024-09-21) every figure
checked here is recomputed with plain SQL over the lake's ``spend`` / ``usage_allocated`` / ``usage_facts``
relations or the app database, never through the report's code. Realised savings of executed remediations
are checked on a small purpose-built lake (a resource whose cost drops after the change). The CLI runs
through Typer's runner on a fresh app with ``agent.report_cli.register``; ``--post`` talks to the fake
Slack Web API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from slack_sdk.models.blocks import Block
from typer.testing import CliRunner

from agent.cli_context import Context
from agent.jobs_base import JobContext
from agent.report_cli import register
from agent.report_jobs import monthly_review, quarterly_review
from agent.slack.client import make_client
from config.model import FinOpsConfig
from config.settings import Settings
from tests.demo_org import DEMO_TODAY, DemoOrg
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.focus_builder import row, write_focus
from tools.costs import open_costs
from tools.ingest.service import Ingestor
from tools.report import (
    MonthlyReport,
    QuarterlyReport,
    monthly_report,
    quarterly_report,
)
from tools.report_render import as_json, render_markdown
from tools.store.db import Database
from tools.store.lake import Lake
from tools.store.models import RemediationRequest

AUG = ("2024-08-01", "2024-09-01")
JUL = ("2024-07-01", "2024-08-01")
CENT = Decimal("0.01")
SHARE = Decimal("0.0001")


def _between(period: tuple[str, str]) -> str:
    return f"day >= DATE '{period[0]}' AND day < DATE '{period[1]}'"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchall()[0][0]


def _by(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    return {"(none)" if k is None else str(k): v for k, v in con.execute(sql).fetchall()}


@pytest.fixture(scope="module")
def costs(demo_org: DemoOrg) -> Iterator[duckdb.DuckDBPyConnection]:
    con = demo_org.costs()
    yield con
    con.close()


@pytest.fixture(scope="module")
def august(demo_org: DemoOrg, costs: duckdb.DuckDBPyConnection) -> MonthlyReport:
    return monthly_report(demo_org.db, costs, demo_org.config, "2024-08", as_of=DEMO_TODAY)


@pytest.fixture(scope="module")
def september(demo_org: DemoOrg, costs: duckdb.DuckDBPyConnection) -> MonthlyReport:
    return monthly_report(demo_org.db, costs, demo_org.config, "2024-09", as_of=DEMO_TODAY)


@pytest.fixture(scope="module")
def q3(demo_org: DemoOrg, costs: duckdb.DuckDBPyConnection) -> QuarterlyReport:
    return quarterly_report(demo_org.db, costs, demo_org.config, "2024-Q3", as_of=DEMO_TODAY)


# ----- monthly review on the demo organisation -----------------------------------------------------------


def test_monthly_report_team_totals_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    sql = "SELECT team, sum(effective_cost) FROM spend WHERE {} GROUP BY 1"
    aug, jul = _by(costs, sql.format(_between(AUG))), _by(costs, sql.format(_between(JUL)))
    rows = {r.team: r for r in august.teams.rows}
    assert {k for k, r in rows.items() if r.actual} == set(aug)
    for team, amount in aug.items():
        assert rows[team].actual == amount
        assert rows[team].previous == jul.get(team, Decimal(0))
        assert rows[team].change == amount - jul.get(team, Decimal(0))
    assert august.total == _one(costs, f"SELECT sum(effective_cost) FROM spend WHERE {_between(AUG)}")
    assert august.previous_total == _one(
        costs, f"SELECT sum(effective_cost) FROM spend WHERE {_between(JUL)}"
    )
    assert august.complete and august.teams.forecast_total is None
    assert rows["search"].budget == Decimal(60000)
    assert rows["search"].budget_used == (aug["search"] / 60000).quantize(SHARE)


def test_monthly_report_budget_actuals_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    def spend(where: str, period: tuple[str, str] = AUG) -> Decimal:
        value: Decimal = _one(
            costs, f"SELECT sum(effective_cost) FROM spend WHERE {_between(period)} AND {where}"
        )
        return value

    expected = {
        "org-monthly": spend("true"),
        "search-monthly": spend("team = 'search'"),
        "support-monthly": spend("team = 'support'"),
        # the quarterly budget: its quarter up to the end of the reported month
        "ml-research-quarterly": spend("team = 'ml-research'", ("2024-07-01", "2024-09-01")),
        "growth-ai-monthly": spend("team = 'growth' AND service_category = 'AI and Machine Learning'"),
    }
    budgets = {b.name: b for b in august.budgets.rows}
    assert {n: b.actual for n, b in budgets.items()} == expected
    assert budgets["org-monthly"].used == (expected["org-monthly"] / 400000).quantize(SHARE)
    # the month is over: no forecast; the quarter is not: its forecast as of the report's day
    assert budgets["search-monthly"].forecast is None
    assert budgets["ml-research-quarterly"].forecast is not None
    assert budgets["ml-research-quarterly"].period.label == "2024-Q3"


def test_monthly_report_model_mix_shares_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    money = _by(
        costs,
        f"SELECT model, sum(effective_cost) FROM spend WHERE {_between(AUG)} AND llm_provider IS NOT NULL GROUP BY 1",
    )
    tokens = _by(costs, f"SELECT model, sum(tokens) FROM usage_allocated WHERE {_between(AUG)} GROUP BY 1")
    total, total_tokens = sum(money.values()), sum(tokens.values())
    mix = {r.model: r for r in august.model_mix.rows}
    assert august.model_mix.total_cost == total and august.model_mix.total_tokens == total_tokens
    assert set(mix) == set(money) | set(tokens)
    for model, cost in money.items():
        assert mix[model].cost == cost
        assert mix[model].cost_share == (cost / total).quantize(SHARE)
    for model, n in tokens.items():
        assert mix[model].tokens == n
        assert mix[model].token_share == (Decimal(n) / total_tokens).quantize(SHARE)
    assert sum(r.cost_share or 0 for r in mix.values()) == pytest.approx(Decimal(1), abs=Decimal("0.001"))


def test_monthly_report_untagged_share_and_coverage_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    total, untagged, no_project = costs.execute(
        "SELECT sum(effective_cost), sum(effective_cost) FILTER (WHERE team IS NULL), "
        f"sum(effective_cost) FILTER (WHERE project IS NULL) FROM spend WHERE {_between(AUG)}"
    ).fetchall()[0]
    t = august.tagging
    assert (t.total, t.untagged) == (total, untagged)
    assert t.untagged_share == (untagged / total).quantize(SHARE)
    assert t.coverage["team"] == ((total - untagged) / total).quantize(SHARE)
    assert t.coverage["project"] == ((total - no_project) / total).quantize(SHARE)
    assert t.offenders and t.offenders[0]["cost"] == _one(
        costs,
        f"SELECT max(c) FROM (SELECT sum(effective_cost) c FROM spend WHERE {_between(AUG)} AND team IS NULL "
        "GROUP BY provider, sub_account, service, resource)",
    )


def test_monthly_report_unit_costs_per_feature_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    spend = _by(
        costs,
        f"SELECT feature, sum(effective_cost) FROM spend WHERE {_between(AUG)} AND llm_provider IS NOT NULL "
        "GROUP BY 1",
    )
    usage = {
        "(none)" if f is None else f: (int(t), int(r))
        for f, t, r in costs.execute(
            f"SELECT feature, sum(tokens), sum(requests) FROM usage_allocated WHERE {_between(AUG)} GROUP BY 1"
        ).fetchall()
    }
    done = _by(
        costs,
        f"""WITH t AS (SELECT feature, task_id, bool_or(task_status = 'failed') AS failed,
                              max(coalesce(adjusted_count, 1)) AS w
                       FROM usage_facts WHERE {_between(AUG)} AND task_id IS NOT NULL GROUP BY 1, 2)
            SELECT feature, sum(w) FROM t WHERE NOT coalesce(failed, false) GROUP BY 1""",
    )
    rows = {f.feature: f for f in august.unit_economics.rows}
    assert [p.label for p in august.unit_economics.periods] == ["2024-06", "2024-07", "2024-08"]
    checked = 0
    for feature, (tokens, requests) in usage.items():
        point = rows[feature].points[-1]
        cost = spend.get(feature, Decimal(0))
        assert (point.cost, point.tokens, point.requests) == (cost, tokens, requests)
        if tokens:
            assert point.cost_per_1m_tokens == (cost * 1_000_000 / tokens).quantize(Decimal("0.000001"))
        if requests:
            assert point.cost_per_request == (cost / requests).quantize(Decimal("0.000001"))
        if done.get(feature):
            assert point.cost_per_completed_task == (cost / done[feature]).quantize(Decimal("0.000001"))
            checked += 1
    assert checked >= 2  # support-chat and ticket-summary run as agent tasks
    # the trend compares with July's figure
    chat = rows["support-chat"]
    july, aug = chat.points[1].cost_per_1m_tokens, chat.points[2].cost_per_1m_tokens
    assert july is not None and aug is not None
    assert chat.change_percent["cost_per_1m_tokens"] == ((aug - july) / july * 100).quantize(CENT)


def test_monthly_report_movers_and_root_cause_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    sql = "SELECT team, sum(effective_cost) FROM spend WHERE {} GROUP BY 1"
    aug, jul = _by(costs, sql.format(_between(AUG))), _by(costs, sql.format(_between(JUL)))
    deltas = {t: aug.get(t, Decimal(0)) - jul.get(t, Decimal(0)) for t in set(aug) | set(jul)}
    expected = sorted(deltas, key=lambda t: (-abs(deltas[t]), t))[:5]
    movers = august.movers.by["team"]
    assert [m.key for m in movers] == expected
    top = movers[0]
    assert top.key == "ml-research" and top.change == deltas["ml-research"]
    cause = top.causes[0]
    column = {
        "resource": "resource",
        "model": "model",
        "feature": "feature",
        "service": "service",
        "sku": "sku",
    }[cause.dimension]
    by_sub = costs.execute(
        f"""SELECT sum(effective_cost) FILTER (WHERE {_between(AUG)}) - coalesce(sum(effective_cost)
                   FILTER (WHERE {_between(JUL)}), 0)
            FROM spend WHERE team = 'ml-research' AND {column} = ? AND day >= DATE '2024-07-01'
                 AND day < DATE '2024-09-01'""",
        [cause.key],
    ).fetchall()[0][0]
    assert cause.delta == by_sub
    assert cause.share == (by_sub / top.change).quantize(SHARE)
    assert set(august.movers.by) == {"team", "service", "feature", "model"}
    assert all(m.key != "(none)" for m in august.movers.by["feature"] + august.movers.by["model"])


def test_monthly_report_workloads_and_token_budgets_match_sql(
    august: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    workloads = _by(
        costs,
        f"SELECT workload, sum(effective_cost) FROM spend WHERE {_between(AUG)} AND (llm_provider IS NOT NULL "
        "OR service_category = 'AI and Machine Learning' OR workload IS NOT NULL) GROUP BY 1",
    )
    assert august.workloads.current == {
        ("unassigned" if k == "(none)" else k): v for k, v in workloads.items()
    }
    assert august.workloads.current["training"] > august.workloads.current["inference"]
    tokens = int(
        _one(
            costs,
            f"SELECT sum(tokens) FROM usage_allocated WHERE {_between(AUG)} AND project = 'support-bot'",
        )
    )
    line = next(t for t in august.token_budgets.rows if t.project == "support-bot")
    assert line.actual == tokens and line.tokens == 1_500_000_000
    assert line.status == ("over" if tokens >= 1_500_000_000 else line.status)


def test_monthly_report_findings_and_remediations_from_the_app_database(
    demo_org: DemoOrg,
    august: MonthlyReport,
    september: MonthlyReport,
) -> None:
    with demo_org.db.engine.connect() as c:
        opened_sept = int(
            c.exec_driver_sql(
                "SELECT count(*) FROM findings WHERE first_seen >= '2024-09-01' AND first_seen < '2024-10-01'"
            ).scalar_one()
        )
        impact = c.exec_driver_sql(
            "SELECT sum(monthly_impact) FROM findings WHERE first_seen >= '2024-09-01'"
        ).scalar()
    assert len(august.findings.opened) == 0  # the demo's one scan ran on 2024-09-21
    assert len(september.findings.opened) == opened_sept > 0
    assert september.findings.opened_impact.quantize(CENT) == Decimal(str(impact)).quantize(CENT)
    assert sum(n["opened"] for n in september.findings.by_rule.values()) == opened_sept
    # the demo's one request is pending, not executed
    assert september.remediations.rows == [] and august.remediations.rows == []


def test_monthly_report_month_not_over_is_month_to_date_with_forecast(
    september: MonthlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    assert not september.complete
    assert (september.period.start, september.period.end) == (date(2024, 9, 1), date(2024, 9, 21))
    # compared with the same 20 days of August
    assert (september.previous_period.start, september.previous_period.end) == (
        date(2024, 8, 1),
        date(2024, 8, 21),
    )
    assert september.previous_total == _one(
        costs,
        "SELECT sum(effective_cost) FROM spend WHERE day >= DATE '2024-08-01' AND day < DATE '2024-08-21'",
    )
    assert september.teams.forecast_total is not None and september.teams.forecast_total > september.total
    assert all(b.forecast is not None for b in september.budgets.rows)  # every budget period is running
    assert any("not over" in n for n in september.notes)


def test_monthly_report_markdown_and_json_name_period_and_metric(august: MonthlyReport) -> None:
    md = render_markdown(august)
    assert md.startswith("# Monthly AI cost review: 2024-08\n")
    for heading in (
        "## Budget vs actual by team",
        "## Budgets",
        "## Top movers and their root cause",
        "## Unit economics per feature",
        "## Model mix",
        "## Training vs inference",
        "## Token budgets",
        "## Untagged spend and tagging coverage",
        "## Findings opened and resolved",
        "## Remediations executed",
        "## Model price changes",
    ):
        assert heading in md
        section = md.split(heading, 1)[1]
        assert section.lstrip("\n").startswith("*Period: ") and "Metric: " in section.split("\n\n", 2)[1]
    assert "| ml-research | $122,029.68 |" in md
    data = as_json(august)
    assert list(data) == [
        "report",
        "month",
        "period",
        "previous_period",
        "as_of",
        "complete",
        "currency",
        "metric",
        "total",
        "previous_total",
        "change",
        "change_percent",
        "teams",
        "budgets",
        "movers",
        "unit_economics",
        "model_mix",
        "workloads",
        "token_budgets",
        "tagging",
        "findings",
        "remediations",
        "price_changes",
        "notes",
    ]
    assert data["period"] == {"from": "2024-08-01", "to": "2024-09-01", "label": "2024-08"}
    for key in ("teams", "movers", "model_mix", "workloads", "tagging", "findings", "remediations"):
        assert "period" in data[key] and "metric" in data[key], key
    assert data["total"] == august.total and isinstance(data["teams"]["rows"][0]["actual"], Decimal)


# ----- quarterly review ------------------------------------------------------------------------------------


def test_quarterly_report_model_selection_matches_the_premium_model_findings(
    demo_org: DemoOrg,
    q3: QuarterlyReport,
) -> None:
    with demo_org.db.engine.connect() as c:
        params = [
            json.loads(p)
            for (p,) in c.exec_driver_sql(
                "SELECT action_params FROM findings WHERE rule_id = 'premium-model-downgrade'"
            ).fetchall()
        ]
    expected = {(p["feature"], p["environment"], p["from_model"], p["to_model"]) for p in params}
    rows = q3.model_selection.rows
    assert {(r.feature, r.environment, r.model, r.target) for r in rows} == expected
    approved = demo_org.config.approved_models
    for r in rows:
        assert r.target in approved[r.environment]
        assert r.savings == r.cost_current - r.cost_target > 0
        assert r.monthly_savings == (r.savings * 30 / q3.period.days).quantize(CENT)
    assert q3.model_selection.total_savings == sum(r.savings for r in rows)


def test_quarterly_report_token_efficiency_and_tagging_trend_match_sql(
    q3: QuarterlyReport, costs: duckdb.DuckDBPyConnection
) -> None:
    assert [m.label for m in q3.months] == ["2024-07", "2024-08", "2024-09 to date"]
    tokens, requests = costs.execute(
        f"SELECT sum(tokens), sum(requests) FROM usage_allocated WHERE {_between(AUG)} AND feature = 'support-chat'"
    ).fetchall()[0]
    chat = next(f for f in q3.token_efficiency.rows if f.feature == "support-chat")
    assert chat.points[1].tokens_per_request == (Decimal(int(tokens)) / int(requests)).quantize(CENT)
    for month, section in zip([JUL, AUG, ("2024-09-01", "2024-09-21")], q3.tagging_trend, strict=True):
        total, untagged = costs.execute(
            "SELECT sum(effective_cost), sum(effective_cost) FILTER (WHERE team IS NULL) FROM spend "
            f"WHERE {_between(month)}"
        ).fetchall()[0]
        assert section.untagged_share == (untagged / total).quantize(SHARE)
    assert q3.total == sum(v for _, v in q3.spend_by_month)
    md = render_markdown(q3)
    for heading in ("## Model selection", "## Token efficiency per feature", "## Tagging coverage by month"):
        assert heading in md
    assert as_json(q3)["report"] == "quarterly"


# ----- realised savings on a purpose-built lake ----------------------------------------------------------


def _request(rid: str, resource: str, executed: datetime, savings: str, **extra: Any) -> RemediationRequest:
    return RemediationRequest(
        id=rid,
        kind="remediation",
        action=extra.pop("action", "stop-instance"),
        params=extra.pop("params", "{}"),
        resource=resource,
        resource_kind=extra.pop("resource_kind", "ec2-instance"),
        team="search",
        environment="dev",
        plan="{}",
        plan_hash="0" * 64,
        monthly_savings=Decimal(savings),
        currency="USD",
        status=extra.pop("status", "succeeded"),
        requested_by="U01SEARCH1",
        created_at=executed - timedelta(hours=2),
        expires_at=executed + timedelta(days=3),
        updated_at=executed,
        executed_at=executed,
        dry_run=0,
        **extra,
    )


def test_remediation_realised_savings_from_the_resource_cost_after_vs_before(
    ingestor: Ingestor, lake: Lake, sqlite_db: Database, config: FinOpsConfig, tmp_path: Path
) -> None:
    rows = []
    for day in range(1, 32):
        start = f"2024-08-{day:02d}T00:00:00Z"
        # i-0abc costs $10 a day until it is resized on Aug 15 (a mixed $6 day), $2 a day after
        cost = "10" if day < 15 else "6" if day == 15 else "2"
        rows.append(row(cost, start=start, resource="i-0abc", period="2024-08", tags={"team": "search"}))
        rows.append(row("1", start=start, resource="i-0late", period="2024-08", tags={"team": "search"}))
    ingestor.ingest_focus([write_focus(tmp_path / "aug.csv", rows)], "aws")
    with sqlite_db.session() as s:
        s.add(_request("req-resize", "i-0abc", datetime(2024, 8, 15, 10, tzinfo=UTC), "250"))
        s.add(_request("req-late", "i-0late", datetime(2024, 8, 28, 9, tzinfo=UTC), "30"))
        s.add(_request("req-gone", "i-0nodata", datetime(2024, 8, 20, 9, tzinfo=UTC), "12"))
        s.add(  # before the month: not in the August review
            _request("req-july", "i-0abc", datetime(2024, 7, 30, 9, tzinfo=UTC), "99")
        )
    con = open_costs(lake, config)
    try:
        report = monthly_report(sqlite_db, con, config, "2024-08", as_of=date(2024, 9, 1))
    finally:
        con.close()
    rem = {r.request_id: r for r in report.remediations.rows}
    assert list(rem) == ["req-resize", "req-gone", "req-late"]  # by execution time
    resize = rem["req-resize"]
    # baseline: Aug 1-14 at $10; after: Aug 16-31 (16 days) at $2 -> (10 - 2) x 30
    assert (resize.baseline_days, resize.days_after) == (14, 16)
    assert (resize.baseline_daily, resize.after_daily) == (Decimal(10), Decimal(2))
    assert resize.realised_monthly == Decimal("240.00") and resize.estimated_monthly == Decimal(250)
    late = rem["req-late"]
    assert late.realised_monthly is None and late.days_after == 3
    assert late.note is not None and late.note.startswith("not enough data yet")
    assert rem["req-gone"].realised_monthly is None and "no cost data" in (rem["req-gone"].note or "")
    assert report.remediations.realised_total == Decimal("240.00")
    assert report.remediations.estimated_total == Decimal(292)
    assert report.remediations.measured == 1
    md = render_markdown(report)
    assert "| req-resize | stop-instance | resource i-0abc |" in md and "not enough data yet" in md
    # the rest of the review works on a lake with no LLM usage at all
    assert report.model_mix.rows == [] and report.unit_economics.rows == []
    assert report.total == Decimal(10 * 14 + 6 + 2 * 16 + 31)


# ----- CLI -----------------------------------------------------------------------------------------------


Invoke = Callable[..., str]


@pytest.fixture
def cli(demo_org: DemoOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_CONFIG", "FINOPS_DATABASE_URL", "FINOPS_AS_OF", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(demo_org.lake.root))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    obj = Context(str(demo_org.db.engine.url), None, DEMO_TODAY)

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), obj=obj)
        assert result.exit_code == code, (result.output, result.exception)
        return result.stdout

    return invoke


def test_cli_report_monthly_json_defaults_to_the_last_full_month(cli: Invoke, august: MonthlyReport) -> None:
    data = json.loads(cli("report", "monthly", "--format", "json"))
    assert data["month"] == "2024-08" and data["complete"] is True
    assert Decimal(str(data["total"])) == august.total
    assert {r["team"]: Decimal(str(r["actual"])) for r in data["teams"]["rows"]} == {
        r.team: r.actual for r in august.teams.rows
    }
    assert cli("report", "monthly", "--month", "2024-8x", code=2) == ""
    assert "# Quarterly optimisation review: 2024-Q3" in cli("report", "quarterly", "--quarter", "2024-Q3")


def test_cli_report_post_sends_a_summary_and_the_review_as_a_file(
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("FINOPS_SLACK_API_URL", fake.base_url)
        md = cli("report", "monthly", "--month", "2024-08", "--post")
        post = fake.last("chat.postMessage")
        assert post.params["channel"] == "#finops"
        blocks = (
            json.loads(post.params["blocks"])
            if isinstance(post.params["blocks"], str)
            else post.params["blocks"]
        )
        assert blocks[0]["type"] == "header" and "2024-08" in blocks[0]["text"]["text"]
        assert [Block.parse(b).to_dict() for b in blocks] == blocks  # slack_sdk's validators accept them
        assert any("Spend" in f["text"] for b in blocks if b["type"] == "section" for f in b["fields"])
        (stored,) = fake.files.values()
        assert stored["content"].decode() == md
        assert stored["name"] == "finops-monthly-review-2024-08.md"
        ts = next(iter(fake.messages))[1]
        assert stored["shares"] == [{"channel": "#finops", "initial_comment": None, "thread_ts": ts}]


# ----- jobs ----------------------------------------------------------------------------------------------


def _job_context(demo_org: DemoOrg, now: datetime, settings: Settings, slack: bool) -> JobContext:
    return JobContext(
        demo_org.db,
        demo_org.lake,
        demo_org.config,
        settings,
        now,
        f"{now:%Y-%m}",
        make_client(settings) if slack else None,
    )


def test_review_jobs_report_the_period_before_now_and_post_when_slack_is_there(
    demo_org: DemoOrg, august: MonthlyReport
) -> None:
    now = datetime(2024, 9, 21, 7, 0, tzinfo=UTC)
    with FakeSlack() as fake:
        settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=fake.base_url)
        quiet = monthly_review(_job_context(demo_org, now, settings, slack=False))
        assert quiet["month"] == "2024-08" and quiet["posted"] is False and "SLACK_BOT_TOKEN" in quiet["note"]
        assert quiet["total"] == str(august.total.quantize(CENT))
        assert fake.calls() == []
        posted = monthly_review(_job_context(demo_org, now, settings, slack=True))
        assert posted["posted"] is True and posted["channel"] == "#finops" and posted["file"]
        quarterly = quarterly_review(
            _job_context(demo_org, datetime(2024, 10, 2, tzinfo=UTC), settings, True)
        )
        assert quarterly["quarter"] == "2024-Q3" and quarterly["posted"] is True
        assert quarterly["model_switches"] == 3
        names = sorted(f["name"] for f in fake.files.values())
        assert names == ["finops-monthly-review-2024-08.md", "finops-quarterly-review-2024-Q3.md"]
        headers = [m["blocks"][0]["text"]["text"] for m in fake.messages.values()]
        assert headers == ["Monthly AI cost review: 2024-08", "Quarterly optimisation review: 2024-Q3"]
        json.dumps([quiet, posted, quarterly])  # the summaries are JSON-able as they are
        # an upload failing after the summary is out: said, not raised (a retry would post it twice)
        fake.fail_next("files.getUploadURLExternal", "internal_error")
        failed = monthly_review(_job_context(demo_org, now, settings, slack=True))
        assert (
            failed["posted"] is True and failed["file"] is None and "internal_error" in failed["file_error"]
        )
        assert len(fake.calls("chat.postMessage")) == 3
