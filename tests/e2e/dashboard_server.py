"""Serve the dashboard with uvicorn on 127.0.0.1 in a thread (as `finops serve` would mount it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agent.web import build_dashboard
from config.settings import Settings
from tests.demo_org import DemoOrg
from tests.integration.slack_harness import free_port
from tools.store.db import Database


@contextmanager
def serving(org: DemoOrg, *, token: str | None = None, db: Database | None = None) -> Iterator[str]:
    """Yield the base URL of the dashboard over ``org`` (its database, or ``db``) until the block ends."""
    import uvicorn

    app = build_dashboard(
        db or org.db, org.lake, org.config, Settings(as_of=org.today), token=token, proxy_header=None
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="finops-dashboard-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the dashboard test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
