"""`finops scan`, `findings`, `anomalies` and `forecast` from the command line, on a small real lake."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from tests.focus_builder import row, write_focus


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_DATABASE_URL", "FINOPS_CONFIG", "FINOPS_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--as-of", "2024-09-21", *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    rows = []
    day = date(2024, 7, 1)
    while day < date(2024, 9, 21):
        weekday = day.weekday() < 5
        cost = "100" if weekday else "60"
        rows.append(
            row(
                cost,
                start=f"{day}T00:00:00Z",
                resource="i-web",
                period=f"{day:%Y-%m}",
                tags={"team": "search", "environment": "prod"},
            )
        )
        if day == date(2024, 9, 16):
            rows.append(
                row(
                    "900",
                    start=f"{day}T00:00:00Z",
                    resource="i-runaway",
                    period=f"{day:%Y-%m}",
                    tags={"team": "search", "environment": "prod"},
                )
            )
        day += timedelta(days=1)
    invoke("ingest", "focus", str(write_focus(tmp_path / "bill.csv", rows)), "--source", "aws")
    return invoke


def test_anomalies_json_rows_name_the_spike_and_its_root_cause(run) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(run("anomalies", "--from", "2024-09-01", "--to", "2024-10-01", "--format", "json"))
    spike = next(r for r in rows if r["dimension"] == "team" and r["key"] == "search")
    assert {
        "id",
        "start",
        "end",
        "dimension",
        "key",
        "actual",
        "expected",
        "lower",
        "upper",
        "impact",
        "severity",
        "root_cause",
    } <= set(spike)
    assert spike["start"] == "2024-09-16" and spike["impact"] > 800
    assert spike["root_cause"][0]["key"] == "i-runaway" and spike["root_cause"][0]["share"] > 0.9


def test_scan_stores_findings_and_feedback_suppresses_them(run) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(run("scan", "--no-cloud", "--format", "json"))
    assert out["errors"] == {} and out["by_rule"].get("cost-anomaly", 0) >= 1
    findings = json.loads(run("findings", "--kind", "anomaly", "--format", "json"))
    target = next(f for f in findings if "search" in f["title"])
    shown = json.loads(run("findings", "show", target["id"][:8], "--format", "json"))
    assert shown["evidence"]["root_cause"][0]["key"] == "i-runaway" and shown["team"] == "search"
    assert "suppressed" in run("findings", "feedback", target["id"], "expected", "--as", "U01SEARCH1")
    again = json.loads(run("scan", "--no-cloud", "--format", "json"))
    assert again["stored"]["new"] == 0
    statuses = {f["id"]: f["status"] for f in json.loads(run("findings", "--format", "json"))}
    assert statuses[target["id"]] == "suppressed"
    anomalies = json.loads(run("anomalies", "--from", "2024-09-01", "--to", "2024-10-01", "--format", "json"))
    assert target["id"] not in {a["id"] for a in anomalies}


def test_findings_errors_are_explained(run) -> None:  # type: ignore[no-untyped-def]
    assert "no finding" in run("findings", "show", "abcdef123", code=2)
    assert "unknown status" in run("findings", "--status", "closed", code=2)


def test_forecast_by_team_json(run) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(run("forecast", "--by", "team", "--format", "json"))
    (search,) = [r for r in out["rows"] if r["team"] == "search"]
    assert search["forecast"] >= search["actual_to_date"] > 0
    assert out["period"] == {"from": "2024-09-01", "to": "2024-10-01"}
