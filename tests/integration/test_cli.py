"""The `finops` command line, run in-process through Typer's runner and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.conftest import FIXTURES
from tests.focus_builder import row, write_focus

LLM = FIXTURES / "llm"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("FINOPS_CONFIG", raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return invoke


def test_cli_init_creates_the_sqlite_database_and_lake(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run("init")
    assert "revision 0005" in out
    assert (tmp_path / ".finops" / "finops.db").exists() and (tmp_path / ".finops" / "lake").is_dir()


def test_cli_ingest_focus_then_costs_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_focus(
        tmp_path / "sept.csv.gz", [row("12.5", tags={"team": "search"}), row("7.5", resource="x")]
    )
    out = run("ingest", "focus", str(path), "--source", "aws-payer")
    assert "2 of 2 rows ingested" in out
    assert "already ingested" in run("ingest", "focus", str(path), "--source", "aws-payer")
    data = json.loads(
        run("costs", "--by", "team", "--from", "2024-09-01", "--to", "2024-10-01", "--format", "json")
    )
    assert data["metric"] == "effective" and data["group_by"] == ["team"]
    assert data["rows"] == [{"team": "search", "cost": 12.5}, {"team": "(none)", "cost": 7.5}]
    assert data["total"] == 20
    csv_out = run("costs", "--by", "team", "--period", "2024-09", "--format", "csv")
    assert csv_out.splitlines()[0] == "team,cost"
    assert "search" in run("costs", "--by", "team", "--period", "2024-09")


def test_cli_every_llm_format_ingests(run) -> None:  # type: ignore[no-untyped-def]
    for kind, name in [
        ("openai-usage", "openai_usage_page.json"),
        ("openai-costs", "openai_costs_page.json"),
        ("anthropic-usage", "anthropic_usage_page.json"),
        ("anthropic-costs", "anthropic_cost_page.json"),
        ("otel", "otel_spans.json"),
        ("otel", "otel_collector.jsonl"),
        ("litellm", "litellm_spend_logs.csv"),
    ]:
        out = json.loads(run("ingest", kind, str(LLM / name), "--format", "json", "--skip-bad-rows"))
        assert out["rows_accepted"] > 0, (kind, name, out)
    log = json.loads(run("ingest", "log", "--format", "json"))
    assert len(log) == 7 and {r["status"] for r in log} == {"succeeded"}


def test_cli_bad_input_exits_2_with_file_line_column(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_focus(tmp_path / "bad.csv", [row("1"), row("1,5")])
    out = run("ingest", "focus", str(path), "--source", "s", code=2)
    assert "bad.csv, line 3, column BilledCost" in out and "--skip-bad-rows" in out


def test_cli_bad_config_exits_2_naming_the_key(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "finops.yaml").write_text("budgets:\n  - name: x\n    amount: zero\n")
    out = run("budgets", code=2)
    assert "finops.yaml:3: budgets[0].amount" in out


def test_cli_unknown_dimension_and_period_are_explained(run) -> None:  # type: ignore[no-untyped-def]
    assert "unknown dimension 'squad'" in run("costs", "--by", "squad", code=2)
    assert "unknown period 'soon'" in run("costs", "--period", "soon", code=2)


def test_cli_budgets_unit_costs_untagged_reconcile_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_focus(tmp_path / "b.csv", [row("100", tags={"team": "search"}), row("5", resource="orphan")])
    run("ingest", "focus", str(path), "--source", "aws")
    run("ingest", "otel", str(LLM / "otel_spans.json"))
    budgets = json.loads(run("--as-of", "2024-09-21", "budgets", "--format", "json"))
    assert {b["name"] for b in budgets["budgets"]} >= {"search-monthly"}
    search = next(b for b in budgets["budgets"] if b["name"] == "search-monthly")
    assert search["actual"] == 100 and search["period"] == {"from": "2024-09-01", "to": "2024-10-01"}
    untagged = json.loads(run("untagged", "--period", "2024-09", "--format", "json"))
    assert untagged["unallocated"] == 5 and untagged["offenders"][0]["resource"] == "orphan"
    units = json.loads(
        run("unit-costs", "--by", "feature", "--from", "2020-01-01", "--to", "2030-01-01", "--format", "json")
    )
    assert units["rows"] and all("cost_per_1m_tokens" in r for r in units["rows"])
    json.loads(run("reconcile", "--format", "json"))


def test_cli_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, agent.cli\n"
        "heavy = {'langgraph', 'langchain_core', 'langchain_openai', 'boto3', 'botocore', 'slack_sdk',"
        " 'slack_bolt', 'duckdb', 'sqlalchemy', 'genai_prices', 'alembic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_runs_as_a_console_script() -> None:
    exe = Path(sys.executable).with_name("finops")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "ingest" in out.stdout and "costs" in out.stdout


def test_cli_global_options_may_follow_the_command(tmp_path: Path) -> None:
    from agent.cli import hoist_global_options

    assert hoist_global_options(
        ["costs", "--by", "team", "--db", "sqlite:///x.db", "--as-of=2024-09-21"]
    ) == ["--db", "sqlite:///x.db", "--as-of=2024-09-21", "costs", "--by", "team"]
    exe = Path(sys.executable).with_name("finops")
    db = tmp_path / "elsewhere.db"
    out = subprocess.run(
        [str(exe), "init", "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert "revision" in out.stdout and db.exists()
