"""`finops propose`, `approvals`, `rollback`, `audit` and `gateway` from the command line: the whole loop on
a real SQLite database with a real action, and `audit verify` failing (exit 1) on a tampered trail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from agent.cli import app
from config.loader import load_config
from config.settings import EXAMPLE_CONFIG
from tests.integration.test_approval_service import add_finding
from tools.store.db import Database

Invoke = Callable[..., str]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def run(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_DATABASE_URL", "FINOPS_CONFIG", "FINOPS_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--db", db_url, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return invoke


@pytest.fixture
def finding(db_url: str) -> str:
    db = Database(db_url)
    db.migrate()
    fp = add_finding(db, load_config(EXAMPLE_CONFIG))  # team support: approver U01SUPPRT1
    db.dispose()
    return fp


def test_cli_full_loop_propose_approve_rollback_and_verify(run: Invoke, finding: str) -> None:
    proposed = json.loads(run("propose", finding[:10], "--format", "json"))
    request_id = proposed["request_id"]
    assert proposed["status"] == "pending"
    listed = json.loads(run("approvals", "--status", "pending", "--format", "json"))
    assert [r["id"] for r in listed] == [request_id]
    shown = run("approvals", "show", request_id)
    assert "blast radius" in shown and "U01SUPPRT1" in shown and "request.proposed" in shown
    refused = run("approvals", "approve", request_id, "--as", "U01SEARCH1", code=2)
    assert "may not approve" in refused
    done = json.loads(run("approvals", "approve", request_id, "--as", "U01SUPPRT1", "--format", "json"))
    assert done["status"] == "succeeded" and done["action_id"]
    gateway = json.loads(run("gateway", "export", "--format", "json"))
    assert gateway["projects"][0]["metadata"]["monthly_tokens"] == 1_000_000
    rolled = run("rollback", done["action_id"], "--as", "U01SUPPRT1", "--reason", "not now")
    assert "rolled_back" in rolled
    assert "already been rolled back" in run("rollback", done["action_id"], "--as", "U01SUPPRT1", code=2)
    audit_rows = json.loads(run("audit", "list", "--format", "json"))
    events = [r["event"] for r in reversed(audit_rows)]
    assert events[0] == "guardrail.changed" and "request.refused" in events
    assert events[-3:] == ["rollback.started", "rollback.succeeded", "request.refused"]
    assert "chain intact" in run("audit", "verify")
    assert json.loads(run("audit", "list", "--actor", "U01SEARCH1", "--format", "json"))[0]["event"] == (
        "request.refused"
    )


def test_cli_audit_export_jsonl_and_csv(run: Invoke, finding: str) -> None:
    run("propose", finding)
    lines = run("audit", "export", "--format", "jsonl").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    csv_text = run("audit", "export", "--format", "csv")
    assert csv_text.splitlines()[0].startswith("seq,at,event,actor") and len(csv_text.splitlines()) == 3


def test_cli_audit_verify_exits_1_naming_the_first_broken_entry(
    run: Invoke, finding: str, db_url: str
) -> None:
    run("propose", finding)
    db = Database(db_url)
    with db.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'U0MALLORY' WHERE seq = 2"))
    db.dispose()
    out = run("audit", "verify", code=1)
    assert "BROKEN at entry 2" in out and "modified" in out
    assert json.loads(run("audit", "verify", "--format", "json", code=1))["broken_seq"] == 2


def test_cli_reject_requires_a_reason_and_is_listed(run: Invoke, finding: str) -> None:
    request_id = json.loads(run("propose", finding, "--format", "json"))["request_id"]
    run("approvals", "reject", request_id, "--as", "U01SUPPRT1", code=2)  # --reason missing
    assert "rejected" in run("approvals", "reject", request_id, "--as", "U01SUPPRT1", "--reason", "planned")
    assert json.loads(run("approvals", "--status", "rejected", "--format", "json"))[0]["id"] == request_id
    assert "never executed" in run("rollback", request_id, "--as", "U01SUPPRT1", code=2)


def test_cli_approvals_list_and_run_execute_what_was_approved_without_executing(
    run: Invoke, finding: str
) -> None:
    request_id = json.loads(run("propose", finding, "--format", "json"))["request_id"]
    assert json.loads(run("approvals", "list", "--format", "json"))[0]["status"] == "pending"
    run("approvals", "approve", request_id, "--as", "U01SUPPRT1", "--no-execute")
    assert (
        json.loads(run("approvals", "list", "--status", "approved", "--format", "json"))[0]["id"]
        == request_id
    )
    out = run("approvals", "run")
    assert f"{request_id}: succeeded" in out
    assert json.loads(run("approvals", "show", request_id, "--format", "json"))["status"] == "succeeded"
    assert "nothing to reconcile" in run("approvals", "reconcile")
    assert f"{request_id}" not in run("approvals", "run")  # nothing left to do: runs are repeatable
