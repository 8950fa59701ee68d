"""The demo: built through the real ingestion paths, deterministic, and consistent with its own bill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app


@pytest.mark.slow
def test_demo_runs_twice_with_the_same_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    first_tour = run("demo")
    assert "Effective cost by team" in first_tour and "AI unit costs" in first_tour
    query = ("costs", "--by", "team,provider", "--period", "2024-08", "--format", "json")
    first = json.loads(run(*query))
    second_tour = run("demo")
    assert "already ingested" in second_tour
    assert json.loads(run(*query)) == first
    teams = {r["team"] for r in first["rows"]}
    assert len(teams - {"(none)"}) >= 5
    # every dollar of the month is in the bill (FOCUS + OpenAI costs) or the labelled Anthropic estimate
    log = json.loads(run("ingest", "log", "--format", "json"))
    assert {r["kind"] for r in log} == {
        "focus",
        "openai-costs",
        "openai-usage",
        "anthropic-usage",
        "otel",
        "litellm",
    }
    recon = json.loads(run("reconcile", "--format", "json"))["rows"]
    anthropic_aug = next(
        r for r in recon if r["provider"] == "anthropic" and r["billing_period"] == "2024-08"
    )
    assert first["estimated"] == anthropic_aug["usage_estimate"]
