"""The audit trail on SQLite and PostgreSQL: a hash chain that verify() recomputes; editing, deleting,
reordering or truncating entries is detected at the first broken entry; PostgreSQL refuses changes
outright; secrets never land in it; concurrent appends still form one chain."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from approvals import audit
from tools.store.db import Database

T0 = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)


def write(db: Database, n: int) -> None:
    for i in range(n):
        with db.session() as s:
            audit.append(
                s,
                event="request.approved" if i % 2 else "request.proposed",
                actor=f"U0ACTOR{i}",
                at=T0 + timedelta(minutes=i),
                channel="cli",
                request_id=f"req-{i}",
                resource=f"i-{i:04d}",
                details={"n": i, "plan_hash": "ab" * 32},
            )


@pytest.fixture
def trail(db: Database) -> Iterator[Database]:
    write(db, 5)
    yield db


def tamper(db: Database, *statements: str) -> None:
    """What someone with write access to the database could do behind the application's back."""
    with db.engine.begin() as c:
        postgres = c.dialect.name == "postgresql"
        if postgres:
            c.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        for sql in statements:
            c.execute(text(sql))
        if postgres:
            c.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


def verify(db: Database) -> audit.Verification:
    with db.session() as s:
        return audit.verify(s)


def test_audit_chain_of_untouched_trail_verifies(trail: Database) -> None:
    result = verify(trail)
    assert result.ok and result.entries == 5 and result.problem is None
    with trail.session() as s:
        entries = audit.list_entries(s)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS and entries[1].prev_hash == entries[0].hash
    assert result.last_hash == entries[-1].hash


def test_audit_verify_finds_an_edited_entry(trail: Database) -> None:
    tamper(trail, "UPDATE audit_log SET actor = 'U0MALLORY' WHERE seq = 3")
    result = verify(trail)
    assert not result.ok and result.broken_seq == 3 and "modified" in (result.problem or "")


def test_audit_verify_finds_edited_details(trail: Database) -> None:
    tamper(trail, "UPDATE audit_log SET details = replace(details, '2', '9') WHERE seq = 3")
    assert verify(trail).broken_seq == 3


def test_audit_verify_finds_a_deleted_entry(trail: Database) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq = 2")
    result = verify(trail)
    assert not result.ok and result.broken_seq == 2 and "deleted" in (result.problem or "")


def test_audit_verify_finds_reordered_entries(trail: Database) -> None:
    tamper(
        trail,
        "UPDATE audit_log SET seq = 100 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 100",
    )
    result = verify(trail)
    assert not result.ok and result.broken_seq == 2


def test_audit_verify_finds_a_truncated_tail(trail: Database) -> None:
    tamper(trail, "DELETE FROM audit_log WHERE seq >= 4")
    result = verify(trail)
    assert not result.ok and result.broken_seq == 4 and "truncated" in (result.problem or "")


def test_audit_appends_after_verification_keep_the_chain(trail: Database) -> None:
    write(trail, 2)
    assert verify(trail).entries == 7 and verify(trail).ok


def test_audit_never_stores_secrets(db: Database) -> None:
    with db.session() as s:
        audit.append(
            s,
            event="request.notified",
            actor="finops-agent",
            at=T0,
            details={
                "slack_token": "xoxb-1234-5678-abcdefgh",
                "message": "posted with xoxb-1234-5678-abcdefgh via Bearer abcdef123456",
                "nested": {
                    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG",
                    "key_id": "AKIAIOSFODNN7EXAMPLE",
                },
                "channel": "C0123",
            },
        )
    with db.session() as s:
        (entry,) = audit.list_entries(s)
        raw = entry.details
    assert (
        "xoxb" not in raw
        and "wJalr" not in raw
        and "AKIAIOSFODNN7EXAMPLE" not in raw
        and "abcdef123456" not in raw
    )
    assert '"channel":"C0123"' in raw and verify(db).ok


def test_audit_export_jsonl_and_csv_carry_every_entry_with_hashes(trail: Database) -> None:
    import csv
    import io
    import json

    with trail.session() as s:
        entries = audit.list_entries(s)
        lines = list(audit.export_lines(entries, "jsonl"))
        table = "".join(audit.export_lines(entries, "csv"))
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert json.loads(lines[-1])["hash"] == verify(trail).last_hash
    rows = list(csv.DictReader(io.StringIO(table)))
    assert (
        len(rows) == 5 and rows[0]["prev_hash"] == audit.GENESIS and json.loads(rows[2]["details"])["n"] == 2
    )


def test_audit_filters_by_resource_actor_and_time(trail: Database) -> None:
    with trail.session() as s:
        assert [e.seq for e in audit.list_entries(s, resource="i-0002")] == [3]
        assert [e.seq for e in audit.list_entries(s, actor="U0ACTOR4")] == [5]
        assert [e.seq for e in audit.list_entries(s, since=T0 + timedelta(minutes=3))] == [4, 5]
        assert [e.seq for e in audit.list_entries(s, limit=2, newest_first=True)] == [5, 4]


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"]
)
def test_audit_postgres_refuses_update_delete_and_truncate(postgres_url: str, statement: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    write(db, 2)
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as c:
        c.execute(text(statement))
    assert verify(db).ok and verify(db).entries == 2
    db.dispose()


def test_audit_concurrent_appends_on_postgres_form_one_chain(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(5):
                with db.session() as s:
                    audit.append(s, event="request.notified", actor=f"w{k}", at=T0, details={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = verify(db)
    assert result.ok and result.entries == 40
    db.dispose()


def test_audit_keeps_figures_whose_key_merely_contains_token() -> None:
    """A rate limit's ``monthly_tokens`` or ``tokens_per_minute`` is a figure, not a secret; a key that names a
    secret (``bot_token``, ``slack_token``, ``api_key``) is still redacted."""
    kept = {"monthly_tokens": 1_500_000_000, "tokens_per_minute": 20000, "tpm_limit": 5, "max_tokens": 10}
    assert audit.redact(kept) == kept
    hidden = audit.redact(
        {"bot_token": "abc", "slack_token": "x", "api_key": "k", "token": "t", "client_secret": "s"}
    )
    assert set(hidden.values()) == {audit.REDACTED}
