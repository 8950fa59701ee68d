"""Shared fixtures: real SQLite and PostgreSQL app databases, a temporary lake, the shipped config."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.loader import load_config
from config.model import FinOpsConfig
from config.settings import EXAMPLE_CONFIG

# the demo organisation, built once per test session (per xdist worker): `demo_org` in any test module
from tests.demo_org import demo_org_fixture  # noqa: F401
from tools.ingest.service import Ingestor
from tools.store.db import Database
from tools.store.lake import Lake

POSTGRES_URL = os.environ.get("FINOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIXTURES = Path(__file__).parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema, dropped afterwards."""
    import psycopg

    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        admin = psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _postgres_unavailable(str(exc).strip().splitlines()[0])
        raise
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'finops.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'finops.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def config() -> FinOpsConfig:
    return load_config(EXAMPLE_CONFIG)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2024, 9, 21, 8, 0, tzinfo=UTC))


@pytest.fixture
def ingestor(sqlite_db: Database, lake: Lake, config: FinOpsConfig, clock: FixedClock) -> Ingestor:
    return Ingestor(sqlite_db, lake, config, clock)
