"""The demo organisation's stores, built once per test session: files, ingestion, a scan, one request.

``build_demo_org(directory)`` does what ``finops demo`` does up to its AWS part (agent/demo.py ``run_demo``):
``generate_demo_files`` writes the exports, ``agent.ingest_cli.ingest`` ingests them through the real paths
(no side door), and ``tools.scan.run_scan`` (as of 2024-09-21 00:00 UTC, no cloud inventory) stores the
findings. Then, when a finding proposes an action that needs no cloud (an LLM policy change), one
remediation request is proposed for it through ``approvals.service.ApprovalService`` so that there is a
pending approval and an audit trail to ask about.

tests/conftest.py registers the fixture (one build per session and xdist worker);
tests then ask for ``demo_org`` (a ``DemoOrg``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from config.loader import load_config
from config.model import FinOpsConfig
from config.settings import EXAMPLE_CONFIG
from tools.store.db import Database
from tools.store.lake import Lake

#: the demo's "today": data runs through 2024-09-20
DEMO_TODAY = date(2024, 9, 21)
DEMO_NOW = datetime(2024, 9, 21, tzinfo=UTC)
#: actions that change only the product's own LLM policy (no cloud call)
NO_CLOUD_ACTIONS = ("set-rate-limit", "switch-llm-model")
#: who proposes the demo's request: the FinOps admin of config/finops.example.yaml
REQUESTER = "U01PLATFM1"


@dataclass
class DemoOrg:
    """The demo organisation's stores. ``costs()`` opens a fresh DuckDB connection over the lake."""

    directory: Path
    db: Database
    lake: Lake
    config: FinOpsConfig
    today: date
    #: the remediation request proposed on a no-cloud finding (None when no finding proposes one)
    request_id: str | None = None
    #: the finding that request is for
    request_finding: str | None = None

    def costs(self) -> duckdb.DuckDBPyConnection:
        from tools.costs import open_costs

        return open_costs(self.lake, self.config)


def build_demo_org(directory: Path) -> DemoOrg:
    """Write, ingest and scan the demo organisation under ``directory`` (a fresh, empty folder)."""
    from agent.ingest_cli import ingest
    from tools.costs import open_costs
    from tools.demo_data import generate_demo_files
    from tools.scan import run_scan

    directory.mkdir(parents=True, exist_ok=True)
    config = load_config(EXAMPLE_CONFIG)
    db = Database(f"sqlite:///{directory / 'finops.db'}")
    db.migrate()
    lake = Lake(directory / "lake")
    files = generate_demo_files(directory / "data")
    plan: list[tuple[str, str, list[Path]]] = [
        *(("focus", source, paths) for source, paths in sorted(files.focus.items())),
        ("openai-costs", "openai-costs", [files.openai_costs]),
        ("openai-usage", "openai-usage", [files.openai_usage]),
        ("anthropic-usage", "anthropic-usage", [files.anthropic_usage]),
        ("otel", "otel", [files.otel_spans]),
        ("litellm", "litellm", [files.litellm_spend_logs]),
    ]
    for kind, source, paths in plan:
        ingest(db, lake, config, kind, paths, source)
    con = open_costs(lake, config)
    try:
        run_scan(db, con, config, DEMO_NOW)
    finally:
        con.close()
    org = DemoOrg(directory, db, lake, config, DEMO_TODAY)
    _propose_one(org)
    return org


def _propose_one(org: DemoOrg) -> None:
    """Record the guardrails in force (an audit entry), then propose a remediation for the open finding with
    the largest monthly impact whose action needs no cloud, if there is one.

    The service's clock is the real one, so the request is still pending (not expired) when the tests read
    it; a proposal the policy refuses is skipped (the audit trail then holds the refusal)."""
    from approvals.service import ApprovalService, Refused
    from tools.findings_store import list_findings

    svc = ApprovalService(org.db, org.config)
    svc.record_guardrails()
    for finding in list_findings(org.db, status=["open", "notified"]):  # largest impact first
        if finding.proposed_action not in NO_CLOUD_ACTIONS:
            continue
        try:
            outcome = svc.propose(finding.fingerprint, requested_by=REQUESTER)
        except Refused:
            continue
        org.request_id, org.request_finding = outcome.request_id, finding.fingerprint
        return


@pytest.fixture(scope="session", name="demo_org")
def demo_org_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoOrg]:
    """The demo organisation (see ``build_demo_org``), built once for the whole session."""
    org = build_demo_org(tmp_path_factory.mktemp("demo-org"))
    try:
        yield org
    finally:
        org.db.dispose()
