"""The LangGraph checkpointer for a database URL: checkpoints live in the app database itself.

- SQLite (``sqlite:///path/finops.db``): ``SqliteSaver`` on its own ``sqlite3`` connection to the *same file*
  as the app database (its tables ``checkpoints`` and ``writes`` sit beside the app's). The connection is
  opened with ``check_same_thread=False`` (the saver serialises its own use with a lock) and a 30 s busy
  timeout, so several processes (a CLI approving, the Slack worker) can share the file; the saver switches
  the file to WAL, as the app engine does.
- PostgreSQL (``postgresql[+psycopg]://...``): ``PostgresSaver`` on one psycopg 3 connection opened the way
  its docs require (``autocommit=True``, ``prepare_threshold=0``, ``row_factory=dict_row``). The URL's query
  is kept, so ``options=-csearch_path=...`` (the test fixture's per-test schema, or a production schema)
  puts the checkpoint tables in that schema too. ``setup()`` runs only when the schema lacks a migration,
  under an advisory lock: two processes starting at once would otherwise race on ``CREATE TABLE`` / the
  migration rows.

Both savers' ``setup()`` are idempotent and cheap once the tables exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import StoreError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

#: pg_advisory_lock key serialising PostgresSaver.setup() across processes ("finops-checkpoints")
_SETUP_LOCK = 0x46_49_4E_4F_50_53_43_4B


@contextmanager
def open_checkpointer(database_url: str) -> Iterator[BaseCheckpointSaver[str]]:
    """A ready (set-up) checkpointer in the database ``database_url`` names; closed on exit."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StoreError(
            f"database URL {database_url!r} is not a SQLAlchemy URL; use sqlite:///path/finops.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        with _sqlite(url.database or ":memory:") as saver:
            yield saver
    elif backend == "postgresql":
        if url.drivername not in ("postgresql", "postgresql+psycopg"):
            raise StoreError(
                f"the checkpointer needs psycopg 3 (postgresql+psycopg://), not {url.drivername}"
            )
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with _postgres(conninfo) as saver:
            yield saver
    else:
        raise StoreError(f"no LangGraph checkpointer for {backend!r} databases; use SQLite or PostgreSQL")


@contextmanager
def _sqlite(path: str) -> Iterator[BaseCheckpointSaver[str]]:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


@contextmanager
def _postgres(conninfo: str) -> Iterator[BaseCheckpointSaver[str]]:
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    try:
        conn = psycopg.Connection.connect(
            conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row, connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot open the checkpoint database: {str(exc).strip().splitlines()[0]}") from None
    with conn:
        saver = PostgresSaver(conn)
        if _migrated(conn) < len(saver.MIGRATIONS) - 1:
            _with_setup_lock(conn, saver.setup)
        yield saver


def _migrated(conn: Any) -> int:
    """The newest checkpoint migration applied in this schema, -1 before the first."""
    import psycopg

    try:
        row = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()
    except psycopg.errors.UndefinedTable:
        return -1
    return int(row["v"]) if row and row["v"] is not None else -1


def _with_setup_lock(conn: Any, setup: Callable[[], None]) -> None:
    """Run ``setup`` holding a session advisory lock, polled with pg_try_advisory_lock: a blocking
    pg_advisory_lock would deadlock with the other process's ``CREATE INDEX CONCURRENTLY`` (in the saver's
    migrations), which waits for every open transaction — the blocked lock call included."""
    deadline = time.monotonic() + 120
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SETUP_LOCK,)).fetchone()["ok"]:
        if time.monotonic() > deadline:
            raise StoreError("timed out waiting for another process to set up the checkpoint tables")
        time.sleep(0.05)
    try:
        setup()
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
