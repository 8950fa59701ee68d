"""`finops serve` as a process: start-up errors that name the missing variable, the health endpoint, JSON logs
without secrets, graceful shutdown on SIGTERM; and the pieces it is made of."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent.serve import JsonFormatter, RedactingFilter, ServeError, redact_text, slack_mode
from config.settings import Settings
from tests.integration.slack_harness import free_port

FINOPS = str(Path(sys.executable).parent / "finops")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FINOPS_", "OPENAI_"))}
    env.update({"FINOPS_HOME": str(tmp_path / ".finops"), **extra})
    return env


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1-2-abc"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN"),
    ],
)
def test_slack_mode_names_the_missing_variable(
    variables: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    for k, v in variables.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ServeError, match=named):
        slack_mode(Settings())


def test_slack_mode_http_socket_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "secret")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    assert slack_mode(Settings()).mode == "http"
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-abc")
    assert slack_mode(Settings()).mode == "socket"
    assert slack_mode(Settings(), no_slack=True).mode == "off"


def test_log_lines_are_json_and_never_carry_a_secret() -> None:
    record = logging.LogRecord(
        "finops",
        logging.INFO,
        __file__,
        1,
        "token %s and %s",
        ("xoxb-123-456-abcdef", "Bearer sk-abcdefghijkl"),
        None,
    )
    assert RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and "xoxb" not in line["message"] and "sk-abc" not in line["message"]
    assert redact_text("AKIAABCDEFGHIJKLMNOP xapp-1-A-b") == "[redacted] [redacted]"
    assert (
        redact_text("postgresql+psycopg://finops:hunter2@db/finops")
        == "postgresql+psycopg://finops:[redacted]@db/finops"
    )
    assert "abc" not in redact_text("xoxe.xoxp-1-abc xoxe-1-abc signing_secret=abc password: abc")


def test_finops_serve_without_slack_variables_exits_naming_them(tmp_path: Path) -> None:
    proc = subprocess.run([FINOPS, "serve"], env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "SLACK_BOT_TOKEN" in proc.stderr and "--no-slack" in proc.stderr


@pytest.mark.slow
def test_finops_serve_health_json_logs_and_graceful_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [FINOPS, "serve", "--no-slack", "--port", str(port), "--host", "127.0.0.1"],
        env=_env(tmp_path, OPENAI_API_KEY="sk-should-never-be-logged-123"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        body = None
        while body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read() if proc.stderr else "no output") from None
                time.sleep(0.2)
        assert body["status"] == "ok" and body["slack"] == "off"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:  # the dashboard, loopback
            assert r.status == 200 and "text/html" in r.headers["content-type"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    messages = " ".join(line["message"] for line in lines)
    assert "start-up recovery" in messages and "scheduler started" in messages and "stopped" in messages


def test_the_dashboard_is_not_served_to_the_network_without_access_control(tmp_path: Path) -> None:
    from agent.serve import _dashboard
    from config.model import FinOpsConfig
    from tools.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    db.migrate()
    settings = Settings(home=tmp_path)
    assert _dashboard(settings, db, FinOpsConfig(), "0.0.0.0") is None  # Slack and the jobs still start
    assert _dashboard(settings, db, FinOpsConfig(), "127.0.0.1") is not None
    assert (
        _dashboard(
            settings.model_copy(update={"dashboard_proxy_header": "X-Forwarded-User"}),
            db,
            FinOpsConfig(),
            "0.0.0.0",
        )
        is not None
    )
    db.dispose()
