"""The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) over the demo
organisation, served by uvicorn on 127.0.0.1.

Without /usr/bin/chromium these tests skip with the reason; under CI=true they fail instead (.ci/run
installs Debian's chromium first). Screenshots of every page land in tests/e2e/artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.demo_org import DemoOrg
from tests.e2e.dashboard_server import serving
from tests.integration.test_dashboard import tampered_copy
from tools.costs import CostQuery, query_costs
from tools.periods import Period

CHROMIUM = os.environ.get("FINOPS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "browser-test-token-91c2"
PAGES = {
    "overview": "/?from=2024-09-01&to=2024-09-21&by=team",
    "unit-economics": "/unit-economics",
    "budgets": "/budgets",
    "findings": "/findings",
    "approvals": "/approvals",
    "audit": "/audit",
}


def _chromium_unavailable(reason: str) -> None:
    message = f"headless Chromium is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: the browser tests must run; .ci/run installs Debian's chromium)")
    pytest.skip(message + "; install it with `apt-get install chromium`")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _chromium_unavailable(f"{CHROMIUM} does not exist")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        _chromium_unavailable(f"playwright is not installed ({exc})")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def site(demo_org: DemoOrg) -> Iterator[str]:
    with serving(demo_org, token=TOKEN) as url:
        yield url


class Page:
    """A browser tab signed in once with ?token= (the HttpOnly cookie), recording console errors."""

    def __init__(self, browser: Any, url: str, width: int = 1280, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.url = url
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}/?token={TOKEN}")

    def open(self, path: str) -> Any:
        response = self.page.goto(self.url + path)
        assert response is not None and response.status == 200, path
        return self.page

    def cells(self, table: str, column: str) -> dict[str, Decimal]:
        rows = self.page.eval_on_selector_all(
            f'table[data-table="{table}"] tbody tr',
            "rows => rows.map(r => [r.querySelector('th') && r.querySelector('th').textContent.trim(),"
            f" r.querySelector('td[data-col=\"{column}\"]') &&"
            f" r.querySelector('td[data-col=\"{column}\"]').dataset.value])",
        )
        return {str(label): Decimal(value) for label, value in rows if label and value}

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, site: str) -> Iterator[Page]:
    t = Page(browser, site)
    yield t
    t.close()


def _sept_by(org: DemoOrg, by: str, **filters: list[str]) -> dict[str, Decimal]:
    with org.costs() as con:
        result = query_costs(
            con,
            CostQuery(Period(date(2024, 9, 1), date(2024, 9, 21), "x"), (by,), filters=filters),
            org.config.currency,
        )
    return {str(r[by]): r["cost"] for r in result.rows}


def test_browser_every_page_loads_without_console_errors(tab: Page) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, path in PAGES.items():
        page = tab.open(path)
        assert page.locator("h1").count() == 1
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert tab.errors == []


def test_browser_overview_shows_the_query_figures_and_a_filter_changes_them(
    tab: Page, demo_org: DemoOrg
) -> None:
    page = tab.open(PAGES["overview"])
    assert tab.cells("totals", "cost") == _sept_by(demo_org, "team")
    # keyboard-reachable controls: choose team "search" and apply with the button
    page.get_by_label("Team", exact=True).select_option("search")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r".*team=search.*"))
    assert tab.cells("totals", "cost") == _sept_by(demo_org, "team", team=["search"])
    page.get_by_label("Stack by").select_option("environment")
    page.get_by_role("button", name="Apply").press("Enter")
    page.wait_for_url(re.compile(r".*by=environment.*"))
    assert tab.cells("totals", "cost") == _sept_by(demo_org, "environment", team=["search"])
    assert "team = search" in page.get_by_test_id("filters").inner_text()
    assert tab.errors == []


def test_browser_phone_width_has_no_horizontal_page_scroll(browser: Any, site: str) -> None:
    phone = Page(browser, site, width=390, height=844)
    try:
        for name, path in PAGES.items():
            page = phone.open(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (name, width)
            if name in ("overview", "audit"):
                page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"))
        assert phone.errors == []
    finally:
        phone.close()


def test_browser_audit_page_shows_a_tampered_chain_as_broken(
    browser: Any, demo_org: DemoOrg, tmp_path: Path
) -> None:
    db = tampered_copy(demo_org, tmp_path)
    try:
        with serving(demo_org, token=TOKEN, db=db) as url:
            t = Page(browser, url)
            try:
                page = t.open("/audit")
                banner = page.get_by_role("alert")
                assert "BROKEN" in banner.inner_text() and "entry 1" in banner.inner_text()
                page.screenshot(path=str(ARTIFACTS / "audit-tampered.png"), full_page=True)
                assert t.errors == []
            finally:
                t.close()
    finally:
        db.dispose()
