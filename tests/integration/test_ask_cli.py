"""`finops ask`: the offline planner from the command line, its re-run commands giving the same figures, and
the fallback from the LLM graph."""

from __future__ import annotations

import json
import shlex
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from config.model import FinOpsConfig
from tests.fakes.openai_server import FakeOpenAI, text_reply, tool_reply
from tests.unit.planner_fixture import build
from tools.ingest.service import Ingestor
from tools.store.db import Database
from tools.store.lake import Lake


@pytest.fixture
def run(
    ingestor: Ingestor,
    lake: Lake,
    sqlite_db: Database,
    config: FinOpsConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):  # type: ignore[no-untyped-def]
    build(ingestor, lake, sqlite_db, config, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(lake.root))
    monkeypatch.delenv("FINOPS_CONFIG", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    db_url = str(sqlite_db.engine.url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> tuple[str, str]:
        result = runner.invoke(app, ["--db", db_url, "--as-of", "2024-09-21", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.stdout, result.stderr

    return invoke


def test_ask_cli_text_answer_table_and_rerun(run) -> None:  # type: ignore[no-untyped-def]
    out, err = run("ask", "top 2 teams by spend this month")
    assert "no OPENAI_API_KEY; answered by the offline planner" in err
    assert "Top 2 of" in out and "ml-research" in out and "(other)" in out
    assert "re-run: finops costs --by team --from 2024-09-01 --to 2024-10-01 --top 2" in out


def test_ask_cli_words_without_quotes(run) -> None:  # type: ignore[no-untyped-def]
    out, _ = run("ask", "search", "team", "spend", "last", "week")
    assert "team=search" in out and "$115.00" in out


@pytest.mark.parametrize(
    "question",
    [
        "How much did the search team spend last week?",
        "top 2 teams by spend this month vs last month",
        "spend by service in August",
        "daily spend for the data team this month",
        "billed cost by provider since 2024-09-01",
    ],
)
def test_ask_cli_rerun_gives_the_same_figures(run, question: str) -> None:  # type: ignore[no-untyped-def]
    out, _ = run("ask", question, "--format", "json")
    answer = json.loads(out, parse_float=Decimal)
    assert answer["understood"] and answer["source"] == "offline"
    argv = shlex.split(answer["rerun"])
    assert argv[:2] == ["finops", "costs"]
    rerun, _ = run(*argv[1:], "--format", "json")
    again = json.loads(rerun, parse_float=Decimal)
    assert Decimal(str(again["total"])) == Decimal(str(answer["total"]))
    key = answer["group_by"][0] if answer["group_by"] else None
    if key and not answer["comparison"]:
        mine = {r[key]: Decimal(str(r["cost"])) for r in answer["rows"]}
        theirs = {r[key]: Decimal(str(r["cost"])) for r in again["rows"] if r[key] in mine}
        assert theirs == {k: v for k, v in mine.items() if k in theirs}


def test_ask_cli_unit_costs_rerun(run) -> None:  # type: ignore[no-untyped-def]
    out, _ = run("ask", "tokens by feature this month", "--format", "json")
    answer = json.loads(out)
    assert answer["kind"] == "unit-costs" and answer["total"] == 4_000_000
    rerun, _ = run(*shlex.split(answer["rerun"])[1:], "--format", "json")
    assert json.loads(rerun)["totals"]["tokens"] == 4_000_000


def test_ask_cli_help_for_a_question_it_cannot_answer(run) -> None:  # type: ignore[no-untyped-def]
    out, _ = run("ask", "what is the weather in Paris?", "--format", "json")
    answer = json.loads(out)
    assert answer["understood"] is False and answer["kind"] == "help" and len(answer["examples"]) == 3
    assert answer["rerun"] is None and answer["total"] is None


def test_ask_cli_rejects_an_unknown_format(run) -> None:  # type: ignore[no-untyped-def]
    run("ask", "spend", "--format", "xml", code=2)


def _point_at(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("FINOPS_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("FINOPS_LLM_MAX_RETRIES", "0")


def test_ask_cli_uses_the_llm_graph_over_http_when_a_key_is_set(
    run, monkeypatch: pytest.MonkeyPatch, sqlite_db: Database
) -> None:  # type: ignore[no-untyped-def]
    script = [
        tool_reply(("query_costs", {"group_by": ["team"], "period": "2024-09", "top": 2})),
        text_reply("Spend by team in September 2024 (effective cost): see the rows."),
    ]
    with FakeOpenAI(script) as server:
        _point_at(server, monkeypatch)
        out, err = run("ask", "spend by team in September", "--format", "json")
    answer = json.loads(out)
    assert answer["source"] == "llm" and "offline planner" not in err
    assert [r.path for r in server.received] == ["/v1/chat/completions"] * 2
    assert answer["text"].startswith("Spend by team in September 2024")
    # the assistant metered its own two calls into the database and lake this command used
    from sqlalchemy import text as sa_text

    with sqlite_db.engine.connect() as conn:
        sources = {r[0] for r in conn.execute(sa_text("SELECT source FROM ingested_files"))}
    assert "finops-agent" in sources, sources


def test_ask_cli_falls_back_to_the_offline_planner_when_the_model_server_fails(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with FakeOpenAI([]) as server:  # no scripted reply: every call fails with a server error
        _point_at(server, monkeypatch)
        out, err = run("ask", "spend last month")
    assert "answered by the offline planner" in err and "LLM question graph failed" in err
    assert "re-run: finops costs" in out
    assert "sk-test-not-a-real-key" not in out + err
