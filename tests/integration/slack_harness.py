"""`finops serve`'s HTTP app on 127.0.0.1 with the real Bolt app, talking to the fake Slack Web API.

``running_app(deps)`` serves ``agent.serve.build_web_app`` with uvicorn on a free port in a thread (exactly
what ``finops serve`` runs, minus the signal handlers of the main thread) and yields a ``Served`` with its
URL and a ``SignedClient`` that signs requests with the app's signing secret.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.slack.app import SlackDeps, build_app
from agent.slack.client import make_client
from config.model import FinOpsConfig
from config.settings import Settings
from tests.fakes.slack_requests import SignedClient
from tests.fakes.slack_server import BOT_TOKEN, TEAM_ID, FakeSlack
from tools.store.db import Database
from tools.store.lake import Lake

SIGNING_SECRET = "test-signing-secret-8f3a"


@dataclass
class Served:
    url: str
    slack: SignedClient
    deps: SlackDeps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_deps(
    fake: FakeSlack,
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    *,
    today: str = "2024-09-21",
    now: datetime | None = None,
    aws: object = None,
    home: Path | None = None,
) -> SlackDeps:
    settings = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.base_url,
        as_of=today,
        lake_dir=lake.root,
        database_url=str(db.engine.url),
        **({"home": home} if home else {}),
    )
    client = make_client(settings)
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return SlackDeps(
        db=db, lake=lake, config=config, settings=settings, client=client, team_id=TEAM_ID, now=clock, aws=aws
    )


@contextmanager
def running_app(deps: SlackDeps) -> Iterator[Served]:
    import uvicorn

    from agent.serve import SLACK_PATH, build_web_app

    web = build_web_app(deps.db, build_app(deps, signing_secret=SIGNING_SECRET), "http")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(web, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="finops-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the test server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Served(url, SignedClient(url + SLACK_PATH, SIGNING_SECRET), deps)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
