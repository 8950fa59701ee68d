"""Exactly once, on PostgreSQL: 20 threads approving one request execute it once; a worker process killed
between the change and its final write is finished by reconcile from the real state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from approvals import audit
from approvals.service import ApprovalService, Outcome, Refused
from tests.integration.test_approval_service import (
    ADMIN,
    APPROVER,
    OWNER,
    Clock,
    add_finding,
    events,
    limits,
    make_config,
)
from tools.store.db import Database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    db.migrate()
    yield db
    db.dispose()


def test_twenty_concurrent_approvals_execute_exactly_once(pg: Database) -> None:
    cfg = make_config()
    clock = Clock()
    request_id = ApprovalService(pg, cfg, clock=clock).propose(add_finding(pg, cfg)).request_id
    barrier = threading.Barrier(20)
    outcomes: list[Outcome] = []
    refusals: list[str] = []
    approvers = [OWNER, APPROVER, ADMIN]

    def click(k: int) -> None:
        svc = ApprovalService(pg, cfg, clock=clock)  # one service per "process", sharing the database
        barrier.wait()
        try:
            outcomes.append(svc.approve_and_execute(request_id, approvers[k % 3], channel="slack"))
        except Refused as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=click, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) + len(refusals) == 20
    assert [o.status for o in outcomes].count("succeeded") == 1
    assert events(pg, request_id).count("execution.started") == 1
    assert events(pg, request_id).count("request.approved") == 1
    assert events(pg, request_id).count("request.refused") == len(refusals) == 19 - (len(outcomes) - 1)
    assert limits(pg).monthly_tokens == 1_000_000
    with pg.session() as s:
        assert audit.verify(s).ok


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from approvals.service import ApprovalService
    from config.loader import parse_config
    from tools.store.db import Database
    from tests.integration.test_approval_service import CONFIG, OWNER

    url, request_id, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def stall(_request_id):
        marker.write_text("applied")
        time.sleep(120)  # killed here, between the change and the final write

    db = Database(url)
    ApprovalService(db, parse_config(CONFIG), after_apply=stall).approve_and_execute(request_id, OWNER)
    """
)


def test_worker_killed_between_executing_and_succeeded_is_reconciled(pg: Database, tmp_path: Path) -> None:
    cfg = make_config()
    request_id = ApprovalService(pg, cfg).propose(add_finding(pg, cfg)).request_id
    marker = tmp_path / "applied"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, pg.url, request_id, str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert worker.poll() is None, "the worker exited before applying the change"
            assert time.monotonic() < deadline, "the worker never applied the change"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    svc = ApprovalService(pg, cfg)
    assert svc.show(request_id)["status"] == "executing"
    assert svc.reconcile(stale_after=timedelta(minutes=15)) == []  # a live worker might still be on it
    (outcome,) = svc.reconcile(stale_after=timedelta(0))
    assert outcome.status == "succeeded" and "in effect" in outcome.message
    assert limits(pg).monthly_tokens == 1_000_000
    assert events(pg, request_id).count("execution.started") == 1
    assert events(pg, request_id)[-1] == "execution.reconciled"
    with pg.session() as s:
        assert audit.verify(s).ok
