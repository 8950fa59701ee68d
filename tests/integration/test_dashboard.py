"""The read-only dashboard (agent/web) over the demo organisation, through Starlette's TestClient.

Figures are checked against the product's own query functions and against `finops costs --format json`
for the same period and filters; the exact values are read from the tables' ``data-value`` attributes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient
from typer.testing import CliRunner

from agent.output import money
from agent.web import DashboardError, build_dashboard, check_exposure
from config.settings import Settings
from tests.demo_org import DemoOrg
from tools.costs import CostQuery, UnitCostQuery, query_costs, unit_costs
from tools.periods import Period
from tools.store.db import Database

TOKEN = "dashboard-test-token-5b7e"
SEPT = "from=2024-09-01&to=2024-09-21"
PAGES = ("/", "/unit-economics", "/budgets", "/findings", "/approvals", "/audit")


def make_client(org: DemoOrg, db: Database | None = None, **access: str | None) -> TestClient:
    app = build_dashboard(
        db or org.db,
        org.lake,
        org.config,
        Settings(as_of=org.today),
        token=access.get("token", TOKEN),
        proxy_header=access.get("proxy_header"),
    )
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"} if access.get("token", TOKEN) else {})


@pytest.fixture(scope="module")
def client(demo_org: DemoOrg) -> Iterator[TestClient]:
    with make_client(demo_org) as c:
        yield c


def cells(html: str, table: str, column: str) -> dict[str, Decimal]:
    """Row label -> exact value of ``column`` in the table named ``table``."""
    body = html.split(f'data-table="{table}"', 1)[1].split("</tbody>", 1)[0]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        label = re.search(r'<th scope="row">(?:<svg.*?</svg> )?(.*?)</th>', row, re.S)
        value = re.search(rf'data-col="{column}" data-value="([^"]*)"', row)
        if label and value and value.group(1):
            out[label.group(1).strip()] = Decimal(value.group(1))
    return out


def test_dashboard_every_page_answers(client: TestClient, demo_org: DemoOrg) -> None:
    for path in (*PAGES, f"/approvals/{demo_org.request_id}"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert ("<h1>" in r.text and 'aria-current="page"' in r.text) or path.startswith("/approvals/")
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert client.get("/static/style.css").status_code == 200


def test_dashboard_overview_figures_equal_query_costs(client: TestClient, demo_org: DemoOrg) -> None:
    html = client.get(f"/?{SEPT}&by=team").text
    period = Period(*_sept(), "x")
    with demo_org.costs() as con:
        expected = query_costs(con, CostQuery(period, ("team",)), demo_org.config.currency)
    shown = cells(html, "totals", "cost")
    assert shown == {r["team"]: r["cost"] for r in expected.rows}
    assert f'data-testid="total" data-value="{expected.total.normalize():f}"' in html
    assert money(expected.total) in html
    assert "2024-09-01 to 2024-09-21" in html


def test_dashboard_overview_equals_finops_costs_json(
    client: TestClient, demo_org: DemoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli import app

    monkeypatch.setenv("FINOPS_LAKE_DIR", str(demo_org.lake.root))
    result = CliRunner().invoke(
        app,
        ["--db", str(demo_org.db.engine.url), "--as-of", "2024-09-21", "costs", "--by", "model",
         "--from", "2024-09-01", "--to", "2024-09-21", "--filter", "team=search", "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output, parse_float=Decimal)
    html = client.get(f"/?{SEPT}&by=model&team=search").text
    assert cells(html, "totals", "cost") == {r["model"]: Decimal(r["cost"]) for r in cli["rows"]}
    assert Decimal(re.search(r'data-testid="total" data-value="([^"]+)"', html).group(1)) == cli["total"]  # type: ignore[union-attr]


def test_dashboard_filters_and_switch_change_the_figures(client: TestClient) -> None:
    everyone = client.get(f"/?{SEPT}&by=team").text
    search = client.get(f"/?{SEPT}&by=team&team=search").text
    by_env = client.get(f"/?{SEPT}&by=environment").text
    all_teams, one = cells(everyone, "totals", "cost"), cells(search, "totals", "cost")
    assert list(one) == ["search"] and one["search"] == all_teams["search"]
    assert set(cells(by_env, "totals", "cost")) >= {"prod"}
    assert "team = search" in search
    assert 'option value="search" selected' in search


def test_dashboard_overview_csv_equals_the_cli_csv(client: TestClient, demo_org: DemoOrg) -> None:
    r = client.get(f"/?{SEPT}&by=team&format=csv&table=totals")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    with demo_org.costs() as con:
        expected = query_costs(con, CostQuery(Period(*_sept(), "x"), ("team",)), demo_org.config.currency)
    assert {row["team"]: Decimal(row["cost"]) for row in rows} == {
        e["team"]: e["cost"] for e in expected.rows
    }
    series = list(csv.DictReader(io.StringIO(client.get(f"/?{SEPT}&by=team&format=csv").text)))
    assert list(series[0]) == ["period_start", "team", "cost"]
    assert sum(Decimal(s["cost"]) for s in series) == expected.total


def _sept() -> tuple[date, date]:
    return date(2024, 9, 1), date(2024, 9, 21)


def test_dashboard_unit_economics_equal_unit_costs(client: TestClient, demo_org: DemoOrg) -> None:
    html = client.get(f"/unit-economics?{SEPT}").text
    with demo_org.costs() as con:
        expected = unit_costs(con, UnitCostQuery(Period(*_sept(), "x")), demo_org.config.currency)
    shown = cells(html, "features", "cost_per_1m_tokens")
    assert shown == {r["feature"]: r["cost_per_1m_tokens"] for r in expected.rows if r["cost_per_1m_tokens"]}
    assert "Model mix" in html
    narrowed = client.get(f"/unit-economics?{SEPT}&feature=support-chat").text
    assert list(cells(narrowed, "features", "cost")) == ["support-chat"]


def test_dashboard_budgets_show_status_and_burn(client: TestClient, demo_org: DemoOrg) -> None:
    from tools.budgets import budget_status

    html = client.get("/budgets").text
    with demo_org.costs() as con:
        expected = budget_status(con, demo_org.config, demo_org.today)
    assert cells(html, "budgets", "actual") == {b.name: b.actual for b in expected}
    assert html.count('class="chart"') == len(expected)
    assert client.get("/budgets?format=csv").text.splitlines()[0].startswith("budget,scope,period,amount")


def test_dashboard_findings_filter_by_team_and_impact(client: TestClient, demo_org: DemoOrg) -> None:
    from tools.findings_store import list_findings

    everything = client.get("/findings").text
    search = client.get("/findings?team=search").text
    total = sum((Decimal(f.monthly_impact) for f in list_findings(demo_org.db, limit=100_000)), Decimal(0))
    mine = sum((Decimal(f.monthly_impact) for f in list_findings(demo_org.db, team="search")), Decimal(0))
    assert f'data-testid="impact" data-value="{total.normalize():f}"' in everything
    assert f'data-testid="impact" data-value="{mine.normalize():f}"' in search
    assert mine < total
    rows = list(csv.DictReader(io.StringIO(client.get("/findings?team=search&format=csv").text)))
    assert rows and {r["team"] for r in rows} == {"search"}


def test_dashboard_approvals_list_and_detail(client: TestClient, demo_org: DemoOrg) -> None:
    assert demo_org.request_id is not None
    html = client.get("/approvals").text
    assert f'href="/approvals/{demo_org.request_id}"' in html
    detail = client.get(f"/approvals/{demo_org.request_id}").text
    assert "pending" in detail and "Plan hash" in detail and "May approve" in detail
    assert client.get("/approvals/req-nope").status_code == 404


def test_dashboard_audit_verifies_and_exports(client: TestClient, demo_org: DemoOrg) -> None:
    html = client.get("/audit").text
    assert 'data-testid="chain" data-ok="true"' in html
    lines = client.get("/audit/export?format=jsonl").text.splitlines()
    assert lines and all(json.loads(line)["hash"] for line in lines)
    assert client.get("/audit/export?format=csv").text.startswith("seq,at,event")
    mine = client.get(f"/audit?actor=U01PLATFM1&request={demo_org.request_id}").text
    assert "actor = U01PLATFM1" in mine and 'href="/audit/export?actor=U01PLATFM1' in mine


def test_dashboard_audit_shows_a_tampered_chain_as_broken(demo_org: DemoOrg, tmp_path: Path) -> None:
    db = tampered_copy(demo_org, tmp_path)
    try:
        with make_client(demo_org, db) as c:
            html = c.get("/audit").text
        assert 'data-testid="chain" data-ok="false"' in html and "BROKEN at entry 1" in html
        assert 'role="alert"' in html
    finally:
        db.dispose()


def tampered_copy(org: DemoOrg, directory: Path) -> Database:
    """A copy of the demo database whose first audit entry was edited behind the application's back."""
    import sqlite3

    copy = directory / "tampered.db"
    source = sqlite3.connect(org.directory / "finops.db")
    target = sqlite3.connect(copy)
    try:
        source.backup(target)  # consistent, whatever the journal mode
    finally:
        source.close()
        target.close()
    db = Database(f"sqlite:///{copy}")
    with db.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET details = replace(details, '}', ', \"x\": 1}') WHERE seq = 1"))
    return db


def test_dashboard_needs_the_token(demo_org: DemoOrg) -> None:
    app = build_dashboard(
        demo_org.db,
        demo_org.lake,
        demo_org.config,
        Settings(as_of=demo_org.today),
        token=TOKEN,
        proxy_header=None,
    )
    with TestClient(app, follow_redirects=False) as c:
        assert c.get("/").status_code == 401
        assert c.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.get("/audit/export").status_code == 401
        assert c.get("/?token=wrong").status_code == 403
        r = c.get(f"/findings?team=search&token={TOKEN}")
        assert r.status_code == 303 and r.headers["location"] == "/findings?team=search"
        assert (
            "httponly" in r.headers["set-cookie"].lower()
            and "samesite=strict" in r.headers["set-cookie"].lower()
        )
        assert c.get("/findings?team=search").status_code == 200  # the cookie


def test_dashboard_proxy_header_and_loopback_only(demo_org: DemoOrg) -> None:
    args = (demo_org.db, demo_org.lake, demo_org.config, Settings(as_of=demo_org.today))
    with TestClient(build_dashboard(*args, token=None, proxy_header="X-Forwarded-User")) as c:
        assert c.get("/findings").status_code == 403
        assert c.get("/findings", headers={"X-Forwarded-User": "ana@example.com"}).status_code == 200
    open_app = build_dashboard(*args, token=None, proxy_header=None)
    with TestClient(open_app, client=("10.0.0.7", 5000)) as c:
        assert c.get("/findings").status_code == 403
    with TestClient(open_app, client=("127.0.0.1", 5000)) as c:
        assert c.get("/findings").status_code == 200
    check_exposure("127.0.0.1", token=None, proxy_header=None)
    check_exposure("0.0.0.0", token="t", proxy_header=None)
    with pytest.raises(DashboardError, match="FINOPS_DASHBOARD_TOKEN"):
        check_exposure("0.0.0.0", token=None, proxy_header=None)


def test_dashboard_bad_parameters_are_400_with_the_reason(client: TestClient) -> None:
    r = client.get("/?from=2024-13-01")
    assert r.status_code == 400 and "YYYY-MM-DD" in r.text
    assert "not a dimension" in client.get("/?by=colour").text
    assert client.get("/findings?status=bogus").status_code == 400
    assert client.post("/").status_code == 405  # read-only
