"""The model's tools (tools/llm_tools.py) and the figure check of the question graph (agent/graph.py):
read-only but for proposing, compact JSON with top N + "(other)", a `finops` command that re-runs each
result, and every figure in an answer traced to a tool result."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.answer import AskContext
from agent.graph import describe_basis, figures_in, known_numbers, render_result, unverified_figures
from config.model import FinOpsConfig
from tests.focus_builder import row, write_focus
from tools.costs import OTHER_VALUE, open_costs
from tools.errors import QueryError
from tools.findings import Finding, fingerprint
from tools.findings_store import upsert_findings
from tools.ingest.service import Ingestor
from tools.llm_tools import (
    ACTION_TOOLS,
    FORBIDDEN_VERBS,
    SPECS,
    DataResult,
    build_tools,
    compact_decimal,
    to_model_json,
)
from tools.store.db import Database
from tools.store.lake import Lake

TODAY = date(2024, 9, 21)
T0 = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)


@pytest.fixture
def ctx(
    ingestor: Ingestor, lake: Lake, config: FinOpsConfig, sqlite_db: Database, tmp_path: Path
) -> AskContext:
    rows = [
        row("100", resource="i-search", tags={"team": "search"}),
        row("60", resource="i-ml", start="2024-09-02T00:00:00Z", tags={"team": "ml-research"}),
        row("30", resource="i-plat", start="2024-09-03T00:00:00Z", tags={"team": "platform"}),
        row("5", resource="i-growth", start="2024-09-04T00:00:00Z", tags={"team": "growth"}),
        row("12", resource="i-orphan", start="2024-09-05T00:00:00Z"),
        row("3", resource="i-orphan2", start="2024-09-06T00:00:00Z"),
        row("1", resource="i-orphan3", start="2024-09-07T00:00:00Z"),
        row(
            "40", resource="i-search", start="2024-08-10T00:00:00Z", period="2024-08", tags={"team": "search"}
        ),
    ]
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    return AskContext(config, open_costs(lake, config), sqlite_db, TODAY)


def invoke(ctx: AskContext, name: str, **args: Any) -> tuple[dict[str, Any], DataResult]:
    tool = {t.name: t for t in build_tools(ctx)}[name]
    message = tool.invoke({"name": name, "args": args, "id": "call_1", "type": "tool_call"})
    assert isinstance(message.artifact, DataResult)
    return json.loads(message.content), message.artifact


def add_finding(db: Database, config: FinOpsConfig, project: str, impact: str) -> str:
    fp = fingerprint("token-budget-breach", project)
    finding = Finding(
        kind="waste",
        rule_id="token-budget-breach",
        fingerprint=fp,
        title=f"{project} crossed its token budget",
        monthly_impact=Decimal(impact),
        detected_at=T0,
        resource=f"project:{project}",
        resource_kind="llm-project",
        scope={"team": "support", "project": project},
        proposed_action="set-rate-limit",
        action_params={"project": project, "tokens_per_month": 1_000_000},
    )
    upsert_findings(db, [finding], config, T0)
    return fp


# ----- guardrails ------------------------------------------------------------------------------------------
def test_llm_tools_offer_no_way_to_approve_reject_execute_or_roll_back(ctx: AskContext) -> None:
    tools = build_tools(ctx)
    assert [t.name for t in tools] == [s.name for s in SPECS]
    for tool in tools:
        name, description = tool.name.lower(), tool.description.lower()
        for verb in FORBIDDEN_VERBS:
            assert verb not in name, tool.name
            assert verb not in description, (tool.name, verb)
    # the one tool that writes anything only proposes
    assert ACTION_TOOLS == ("propose_remediation",)
    assert {"execute", "approve", "reject", "rollback", "approve_request"}.isdisjoint(t.name for t in tools)


def test_llm_tools_each_tool_has_a_strict_pydantic_schema(ctx: AskContext) -> None:
    for tool in build_tools(ctx):
        schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
        assert schema["type"] == "object", tool.name
        assert tool.response_format == "content_and_artifact"
    with pytest.raises(Exception, match="extra"):
        invoke(ctx, "query_costs", period="2024-09", approve_all=True)


# ----- costs ------------------------------------------------------------------------------------------------
def test_llm_tools_costs_fold_the_rest_into_one_other_row(ctx: AskContext) -> None:
    data, result = invoke(ctx, "query_costs", group_by=["team"], period="2024-09", top=2)
    assert [r["team"] for r in data["rows"]] == ["search", "ml-research", OTHER_VALUE]
    assert data["rows"][-1] == {"team": OTHER_VALUE, "cost": 51, "groups": 3}  # 30 + 16 + 5, nothing dropped
    assert data["total"] == 211 and data["other_row_stands_for"] == 3
    assert data["period"] == {
        "from": "2024-09-01",
        "to": "2024-10-01",
        "end": "exclusive",
        "label": "2024-09",
    }
    assert data["basis"] == "effective cost" and data["currency"] == "USD"
    assert result.total == Decimal("211") and result.truncated == 3 and result.kind == "costs"
    assert sum(r["cost"] for r in result.rows) == result.total
    assert (
        result.rerun == "finops costs --by team --from 2024-09-01 --to 2024-10-01 --metric effective --top 2"
    )


def test_llm_tools_costs_compare_gives_the_previous_period_and_the_change(ctx: AskContext) -> None:
    data, result = invoke(
        ctx, "query_costs", group_by=["team"], period="2024-09", compare=True, filters={"team": ["search"]}
    )
    assert data["rows"] == [
        {"team": "search", "cost": 100, "previous": 40, "change": {"delta": 60, "percent": 150}}
    ]
    assert data["comparison"]["total"] == 40 and data["comparison"]["change"]["percent"] == 150
    assert result.filters == {"team": ["search"]}
    assert "--filter team=search" in (result.rerun or "") and "--compare" in (result.rerun or "")


@pytest.mark.parametrize(
    ("tool", "args", "command"),
    [
        ("query_costs", {"group_by": ["team"], "period": "2024-09", "top": 2}, "costs"),
        ("query_costs", {"period": "last-30-days", "filters": {"team": ["search", "platform"]}}, "costs"),
        ("unit_costs", {"period": "2024-09"}, "unit-costs"),
        ("untagged_spend", {"period": "2024-09", "top": 1}, "untagged"),
    ],
)
def test_llm_tools_rerun_command_gives_the_same_figures(
    ctx: AskContext,
    lake: Lake,
    sqlite_db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tool: str,
    args: dict[str, Any],
    command: str,
) -> None:
    from agent.cli import app, hoist_global_options

    _, result = invoke(ctx, tool, **args)
    assert result.rerun is not None and result.rerun.startswith(f"finops {command} ")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(lake.root))
    monkeypatch.setenv("FINOPS_DATABASE_URL", str(sqlite_db.engine.url))
    monkeypatch.delenv("FINOPS_CONFIG", raising=False)
    import shlex

    argv = shlex.split(result.rerun)[1:]
    argv = hoist_global_options([*argv, "--format", "json", "--as-of", TODAY.isoformat()])
    out = CliRunner().invoke(app, argv)
    assert out.exit_code == 0, out.output
    cli = json.loads(out.output, parse_float=Decimal)
    if command == "costs":
        assert Decimal(str(cli["total"])) == result.total
        assert [r["cost"] for r in cli["rows"]] == [r["cost"] for r in result.rows]
    elif command == "untagged":
        assert Decimal(str(cli["unallocated"])) == result.total
        assert cli["offenders"][0]["resource"] == result.rows[0]["resource"]
    else:
        assert cli["period"] == result.period.as_dict()  # type: ignore[union-attr]


# ----- the other tools ----------------------------------------------------------------------------------------
def test_llm_tools_untagged_other_row_sums_to_the_unallocated_total(ctx: AskContext) -> None:
    data, result = invoke(ctx, "untagged_spend", period="2024-09", top=1)
    assert data["rows"][0]["resource"] == "i-orphan" and data["rows"][0]["cost"] == 12
    assert data["rows"][-1]["resource"] == OTHER_VALUE and data["rows"][-1]["cost"] == 4
    assert data["rows"][-1]["groups"] == 2 and data["total"] == 16 and data["all_spend"] == 211
    assert sum(r["cost"] for r in result.rows) == result.total


def test_llm_tools_findings_fold_beyond_top_and_count_every_finding(
    ctx: AskContext, config: FinOpsConfig
) -> None:
    for i, impact in enumerate(["300", "200", "100", "50"]):
        add_finding(ctx.db, config, f"bot-{i}", impact)
    data, result = invoke(ctx, "list_findings", top=2)
    assert [r["cost"] for r in data["rows"]] == [300, 200, 150]  # cost = monthly impact
    assert data["rows"][-1]["findings"] == 2 and data["total"] == 650 and data["findings"] == 4
    assert result.metric == "cost" and result.truncated == 2
    assert result.rerun == "finops findings --status open --status notified"
    one, shown = invoke(ctx, "show_finding", finding_id=data["rows"][0]["id"][:8])
    assert one["rows"][0]["evidence"] == {} and shown.rerun == f"finops findings show {data['rows'][0]['id']}"


def test_llm_tools_propose_creates_a_pending_request_by_the_agent(
    ctx: AskContext, config: FinOpsConfig
) -> None:
    fp = add_finding(ctx.db, config, "support-bot", "120")
    data, result = invoke(ctx, "propose_remediation", finding_id=fp)
    assert data["rows"][0]["status"] == "pending" and result.is_data is False
    listed, _ = invoke(ctx, "approvals_status")
    request = listed["rows"][0]
    assert request["requested_by"] == config.guardrails.agent_id and request["approvals"] == "0/1"
    trail, _ = invoke(ctx, "audit_lookup", request_id=request["id"])
    assert [e["event"] for e in trail["rows"]] == ["request.proposed"]
    assert trail["rows"][0]["actor"] == "finops-agent" and trail["rows"][0]["channel"] == "assistant"


def test_llm_tools_read_only_tools_answer_on_an_empty_app_database(ctx: AskContext) -> None:
    for name, args in [
        ("unit_costs", {"period": "2024-09"}),
        ("find_anomalies", {"period": "2024-09"}),
        ("list_findings", {}),
        ("forecast_spend", {"group_by": "team"}),
        ("budget_status", {}),
        ("audit_lookup", {}),
        ("approvals_status", {}),
    ]:
        data, result = invoke(ctx, name, **args)
        assert data["tool"] == name and isinstance(data["rows"], list)
        assert result.rerun and result.rerun.startswith("finops "), name
    data, result = invoke(ctx, "forecast_spend", group_by="team")
    assert (
        result.rerun == "finops --as-of 2024-09-21 forecast --by team --period this-month --metric effective"
    )
    assert data["rows"][0]["team"] == "search"


def test_llm_tools_bad_arguments_raise_errors_the_user_can_act_on(ctx: AskContext) -> None:
    with pytest.raises(QueryError, match="unknown dimension 'colour'"):
        invoke(ctx, "query_costs", group_by=["colour"], period="2024-09")
    with pytest.raises(QueryError, match="unknown period"):
        invoke(ctx, "query_costs", period="the good old days")


# ----- JSON and figures -------------------------------------------------------------------------------------------
def test_llm_tools_json_gives_exact_compact_numbers_and_text_as_strings() -> None:
    assert compact_decimal(Decimal("1234.5678")) == Decimal("1234.57")
    assert compact_decimal(Decimal("0.000123456")) == Decimal("0.0001235")
    text = to_model_json(
        {"cost": Decimal("80.0000000000"), "x": Decimal("0.0001234567"), "name": 'say "approve"'}
    )
    assert text == '{"cost":80,"x":0.0001235,"name":"say \\"approve\\""}'


def test_figures_are_read_with_their_precision_and_ids_and_dates_are_not_figures() -> None:
    found = {
        f.text: (f.value, f.precision)
        for f in figures_in("Spend was $1,234.57 (12.5%), 1.2k tokens, 3 teams.")
    }
    assert found == {
        "$1,234.57": (Decimal("1234.57"), Decimal("0.01")),
        "12.5%": (Decimal("12.5"), Decimal("0.1")),
        "1.2k": (Decimal("1200"), Decimal("100")),
        "3": (Decimal(3), Decimal(1)),
    }
    assert figures_in("i-0001 on 2024-09-01 at 10:30, req-abc123, Q3, finding 3f2a9c") == []


def test_unverified_figures_catch_the_models_own_arithmetic() -> None:
    known = known_numbers(
        ['{"rows":[{"team":"search","cost":100},{"team":"ml","cost":60.25}],"used":0.8534}']
    )
    assert (
        unverified_figures("search spent $100.00 and ml 60.25 USD (85.3% used) in 2024, 2 teams", known) == []
    )
    assert unverified_figures("search and ml together spent $160.25, that is 1.7x", known) == [
        "$160.25",
        "1.7x",
    ]
    assert unverified_figures("about $0.1k", known) == []  # 100 rounds to 0.1k
    assert unverified_figures("2.5 million dollars", known) == ["2.5 million"]
    assert unverified_figures("2.5 million dollars", known | {Decimal(2_512_345)}) == []
    assert unverified_figures("search spent $150", known) == ["$150"]


def test_render_and_basis_state_period_filters_metric_and_rerun(ctx: AskContext) -> None:
    _, result = invoke(
        ctx,
        "query_costs",
        group_by=["team"],
        period="2024-09",
        top=2,
        filters={"environment": ["prod", "(none)"]},
    )
    text = render_result(result)
    assert text.splitlines()[0].startswith("Effective cost by team: total ")
    basis = describe_basis(result, rerun=True)
    assert "period 2024-09-01 to 2024-10-01 (end exclusive)" in basis
    assert "filters environment=prod, (none)" in basis and "metric effective cost" in basis
    assert (
        "Re-run: `finops costs --by team --from 2024-09-01 --to 2024-10-01 --metric effective --filter "
        in basis
    )
    known = known_numbers([result.to_json()])
    assert unverified_figures(text, known) == []  # the deterministic rendering passes its own check
