"""The remediation graph on SQLite and PostgreSQL, with a real action (``set-rate-limit`` on the app
database): detect → propose → request approval → interrupt → execute → verify → report, checkpointed in
the app database; the approval node re-runs alone on resume; a stale interrupt id is refused; rejection;
two approvals; drift; a start and a resume in different processes; racing decisions and racing resumes
execute once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from agent.remediation import Remediation, audit_notifier, open_remediation
from approvals.service import ApprovalService, Outcome, Refused
from tests.integration.test_approval_service import (
    ADMIN,
    APPROVER,
    OUTSIDER,
    OWNER,
    T0,
    add_finding,
    events,
    limits,
    make_config,
)
from tools import llm_policy
from tools.store.db import Database

ROOT = Path(__file__).resolve().parents[2]
Open = Callable[..., Any]


class CountingNotifier:
    """The audit notifier (a real, durable side effect), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._notify = audit_notifier("test")

    def __call__(self, svc: ApprovalService, proposal: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return self._notify(svc, proposal)


@pytest.fixture
def notifier() -> CountingNotifier:
    return CountingNotifier()


@pytest.fixture
def svc(db: Database) -> ApprovalService:
    return ApprovalService(db, make_config())


@pytest.fixture
def rem(svc: ApprovalService, notifier: CountingNotifier) -> Iterator[Remediation]:
    with open_remediation(svc, notifier=notifier) as remediation:
        yield remediation


def test_happy_path_pauses_for_approval_then_executes_verifies_and_reports(
    rem: Remediation, svc: ApprovalService, db: Database, notifier: CountingNotifier
) -> None:
    fp = add_finding(db, svc.config)
    proposed, view = rem.start(fp)
    request_id = proposed.request_id
    assert proposed.status == "pending" and view.request_id == request_id
    assert view.waiting and view.next == ("await_approval",) and view.interrupt_id
    snapshot = rem.graph.get_state(Remediation.config(request_id))
    (pause,) = snapshot.interrupts
    assert pause.id == view.interrupt_id
    assert pause.value["request_id"] == request_id and pause.value["approvals"] == "0/1"
    assert pause.value["plan_hash"] == svc.show(request_id)["plan_hash"]
    assert view.values["finding"]["fingerprint"] == fp and view.values["proposal"]["status"] == "pending"
    assert events(db, request_id) == ["request.proposed", "request.notified"] and notifier.calls == 1
    tables = set(inspect(db.engine).get_table_names())  # the checkpoints live in the app database
    assert "checkpoints" in tables and "remediation_requests" in tables

    assert rem.start(fp)[1].interrupt_id == view.interrupt_id  # idempotent: same request, same pause

    outcome = rem.decide(request_id, APPROVER, "approve", interrupt_id=view.interrupt_id, comment="ok")
    assert outcome.status == "succeeded" and outcome.action_id and limits(db).monthly_tokens == 1_000_000
    done = rem.view(request_id)
    assert done.finished and not done.waiting
    assert done.values["answer"]["decision"] == "approve" and done.values["answer"]["actor"] == APPROVER
    assert done.values["verified"]["ok"] and done.values["verified"]["action_id"] == outcome.action_id
    assert done.report and "succeeded" in done.report and outcome.action_id in done.report
    assert events(db, request_id) == [
        "request.proposed",
        "request.notified",
        "request.approved",
        "execution.started",
        "execution.succeeded",
    ]
    assert notifier.calls == 1


def test_a_resume_reruns_only_the_approval_node_and_what_follows(
    rem: Remediation, svc: ApprovalService, db: Database, notifier: CountingNotifier
) -> None:
    from langgraph.types import Command

    _, view = rem.start(add_finding(db, svc.config))
    request_id, pause = view.request_id, view.interrupt_id
    assert svc.approve(request_id, OWNER).status == "approved"  # the claim, then the resume by hand
    ran = [
        node
        for update in rem.graph.stream(
            Command(resume={pause: {"decision": "approve", "actor": OWNER, "status": "approved"}}),
            Remediation.config(request_id),
            stream_mode="updates",
        )
        for node in update
    ]
    assert ran == ["await_approval", "execute", "verify", "report"]
    assert notifier.calls == 1 and events(db, request_id).count("request.notified") == 1
    assert events(db, request_id).count("execution.started") == 1
    assert rem.view(request_id).finished


def test_a_stale_or_foreign_interrupt_id_is_refused_and_audited(
    rem: Remediation, svc: ApprovalService, db: Database
) -> None:
    _, first = rem.start(add_finding(db, svc.config))
    _, other = rem.start(add_finding(db, svc.config, project="other-bot"))
    assert first.interrupt_id != other.interrupt_id
    with pytest.raises(Refused, match="old pause"):  # another request's button
        rem.decide(first.request_id, OWNER, "approve", interrupt_id=str(other.interrupt_id))
    assert svc.show(first.request_id)["status"] == "pending" and rem.view(first.request_id).waiting
    assert "request.approved" not in events(db, first.request_id)
    assert events(db, first.request_id)[-1] == "request.refused"

    assert rem.decide(first.request_id, OWNER, "approve", interrupt_id=str(first.interrupt_id)).status == (
        "succeeded"
    )
    with pytest.raises(Refused, match="already been executed"):  # the same button, clicked again
        rem.decide(first.request_id, APPROVER, "reject", interrupt_id=str(first.interrupt_id), reason="x")
    assert events(db, first.request_id).count("execution.started") == 1
    assert svc.show(first.request_id)["status"] == "succeeded"


def test_reject_ends_the_thread_without_executing(
    rem: Remediation, svc: ApprovalService, db: Database
) -> None:
    _, view = rem.start(add_finding(db, svc.config))
    pause = str(view.interrupt_id)
    with pytest.raises(Refused, match="give a reason"):
        rem.decide(view.request_id, OWNER, "reject", interrupt_id=pause, reason=" ")
    with pytest.raises(Refused, match="may not"):
        rem.decide(view.request_id, OUTSIDER, "reject", interrupt_id=pause, reason="no")
    assert rem.view(view.request_id).interrupt_id == pause  # refusals leave the pause as it was
    outcome = rem.decide(view.request_id, OWNER, "reject", interrupt_id=pause, reason="launch week")
    assert outcome.status == "rejected"
    done = rem.view(view.request_id)
    assert done.finished and "outcome" not in done.values and "verified" not in done.values
    assert done.report and "rejected" in done.report and "nothing was executed" in done.report
    assert limits(db) is None and "execution.started" not in events(db, view.request_id)


def test_two_approvals_keep_the_thread_at_the_same_pause_until_the_second(db: Database) -> None:
    svc = ApprovalService(db, make_config())
    with open_remediation(svc) as rem:
        _, view = rem.start(add_finding(db, svc.config, impact="9000"))
        pause = str(view.interrupt_id)
        assert view.values["proposal"]["approvals"] == "0/2"
        first = rem.decide(view.request_id, OWNER, "approve", interrupt_id=pause)
        assert first.status == "pending" and "1 more approval" in first.message
        assert first.details["interrupt_id"] == pause
        still = rem.view(view.request_id)
        assert still.waiting and still.interrupt_id == pause and limits(db) is None
        with pytest.raises(Refused, match="already approved"):
            rem.decide(view.request_id, OWNER, "approve", interrupt_id=pause)
    with open_remediation(svc) as rem:  # the second approver, elsewhere, answers the same pause
        second = rem.decide(view.request_id, ADMIN, "approve", interrupt_id=pause)
        assert second.status == "succeeded" and limits(db).monthly_tokens == 1_000_000
        assert rem.view(view.request_id).finished
    assert events(db, view.request_id).count("request.approved") == 2
    assert events(db, view.request_id).count("execution.started") == 1


def test_drift_supersedes_and_the_fresh_request_gets_its_own_paused_thread(
    rem: Remediation, svc: ApprovalService, db: Database
) -> None:
    _, view = rem.start(add_finding(db, svc.config))
    llm_policy.set_limits(
        db, llm_policy.subject_of("project", "support-bot"), "*", tpm=5000, now=T0, updated_by="someone"
    )
    outcome = rem.decide(view.request_id, OWNER, "approve", interrupt_id=str(view.interrupt_id))
    assert outcome.status == "superseded" and outcome.new_request_id
    assert rem.view(view.request_id).finished and limits(db).monthly_tokens is None
    fresh = rem.view(outcome.new_request_id)
    assert fresh.waiting and fresh.values["proposal"]["id"] == outcome.new_request_id
    assert rem.decide(fresh.request_id, OWNER, "approve", interrupt_id=str(fresh.interrupt_id)).status == (
        "succeeded"
    )


def test_a_claim_without_its_resume_is_settled_from_the_database(
    rem: Remediation, svc: ApprovalService, db: Database
) -> None:
    """A crash between the claim and the resume (or `approve --no-execute`) leaves the thread paused;
    ``settle`` resumes it with the decision the database holds."""
    _, view = rem.start(add_finding(db, svc.config))
    assert rem.settle(view.request_id).interrupt_id == view.interrupt_id  # still pending: nothing to do
    svc.approve(view.request_id, OWNER)
    settled = rem.settle(view.request_id)
    assert settled.finished and settled.values["outcome"]["status"] == "succeeded"
    assert settled.values["answer"]["status"] == "approved"

    _, other = rem.start(add_finding(db, svc.config, project="other-bot"))
    svc.cancel(other.request_id, OWNER, reason="not needed")
    cancelled = rem.settle(other.request_id)
    assert cancelled.finished and "outcome" not in cancelled.values and cancelled.report
    assert "cancelled" in cancelled.report


# --- across processes -------------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from agent.remediation import open_remediation
    from approvals.service import ApprovalService
    from config.loader import parse_config
    from tools.store.db import Database
    from tests.integration.test_approval_service import CONFIG

    command, url, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    db = Database(url)
    with open_remediation(ApprovalService(db, parse_config(CONFIG))) as rem:
        if command == "start":
            outcome, view = rem.start(args[0])
            out = {"request_id": outcome.request_id, "interrupt_id": view.interrupt_id, "next": view.next}
        else:
            request_id, interrupt_id, actor = args
            out = rem.decide(request_id, actor, "approve", interrupt_id=interrupt_id).as_dict()
            out["finished"] = rem.view(request_id).finished
    db.dispose()
    print(json.dumps(out))
    """
)


def in_other_process(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_graph_started_in_one_process_is_resumed_in_another(svc: ApprovalService, db: Database) -> None:
    started = in_other_process("start", db.url, add_finding(db, svc.config))  # that process has exited
    request_id, pause = started["request_id"], started["interrupt_id"]
    assert started["next"] == ["await_approval"] and pause
    with open_remediation(svc) as rem:
        assert rem.view(request_id).interrupt_id == pause
        outcome = rem.decide(request_id, OWNER, "approve", interrupt_id=pause)
        assert outcome.status == "succeeded" and rem.view(request_id).finished
    assert limits(db).monthly_tokens == 1_000_000
    assert events(db, request_id).count("execution.started") == 1


def test_a_graph_started_here_is_resumed_by_another_process(svc: ApprovalService, db: Database) -> None:
    with open_remediation(svc) as rem:
        _, view = rem.start(add_finding(db, svc.config))
    decided = in_other_process("decide", db.url, view.request_id, str(view.interrupt_id), APPROVER)
    assert decided["status"] == "succeeded" and decided["action_id"] and decided["finished"]
    with open_remediation(svc) as rem:
        done = rem.view(view.request_id)
        assert done.finished and done.values["outcome"]["action_id"] == decided["action_id"]
    assert limits(db).monthly_tokens == 1_000_000


# --- races ------------------------------------------------------------------------------------------


def race(n: int, work: Callable[[int], Any]) -> tuple[list[Any], list[Exception]]:
    """Run ``work(k)`` for k < n in n threads released together; their results and exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[Exception] = []

    def one(k: int) -> None:
        barrier.wait()
        try:
            results.append(work(k))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def test_racing_decisions_on_one_pause_execute_once(db: Database) -> None:
    cfg = make_config()
    with open_remediation(ApprovalService(db, cfg)) as rem:
        _, view = rem.start(add_finding(db, cfg))
    pause = str(view.interrupt_id)
    approvers = [OWNER, APPROVER, ADMIN]

    def click(k: int) -> Outcome:
        # each "process" has its own service and checkpointer connection, sharing the databases
        with open_remediation(ApprovalService(db, cfg)) as mine:
            return mine.decide(view.request_id, approvers[k % 3], "approve", interrupt_id=pause)

    outcomes, errors = race(4, click)
    assert [o.status for o in outcomes] == ["succeeded"], errors
    assert len(errors) == 3 and all(isinstance(e, Refused) for e in errors), errors
    assert events(db, view.request_id).count("request.approved") == 1
    assert events(db, view.request_id).count("execution.started") == 1
    assert limits(db).monthly_tokens == 1_000_000
    with open_remediation(ApprovalService(db, cfg)) as rem:
        assert rem.view(view.request_id).finished


def test_racing_resumes_of_one_thread_execute_once(db: Database) -> None:
    """LangGraph lets two resumes of one thread both run: here both reach ``execute``, whose claim lets
    one of them change anything."""
    cfg = make_config()
    svc = ApprovalService(db, cfg)
    with open_remediation(svc) as rem:
        _, view = rem.start(add_finding(db, cfg))
    svc.approve(view.request_id, OWNER)  # the claim; the resume is left to the racers

    def resume(_k: int) -> Any:
        with open_remediation(ApprovalService(db, cfg)) as mine:
            return mine.settle(view.request_id)

    views, errors = race(2, resume)
    assert not errors and len(views) == 2
    assert events(db, view.request_id).count("execution.started") == 1
    assert svc.show(view.request_id)["status"] == "succeeded" and limits(db).monthly_tokens == 1_000_000


# --- the CLI ----------------------------------------------------------------------------------------


def test_cli_propose_starts_the_thread_and_approve_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.cli import app
    from config.loader import load_config
    from config.settings import EXAMPLE_CONFIG

    monkeypatch.chdir(tmp_path)
    for name in ("FINOPS_DATABASE_URL", "FINOPS_CONFIG", "FINOPS_AS_OF"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    db.migrate()
    fp = add_finding(db, load_config(EXAMPLE_CONFIG))

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, ["--db", url, *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    proposed = json.loads(run("propose", fp, "--format", "json"))
    request_id, pause = proposed["request_id"], proposed["details"]["interrupt_id"]
    assert f"pause {pause}" in run("propose", fp)  # idempotent, and the table output names the pause
    svc = ApprovalService(db, load_config(EXAMPLE_CONFIG))
    with open_remediation(svc) as rem:
        assert rem.view(request_id).interrupt_id == pause
    done = json.loads(run("approvals", "approve", request_id, "--as", "U01SUPPRT1", "--format", "json"))
    assert done["status"] == "succeeded" and done["action_id"]
    with open_remediation(svc) as rem:
        assert rem.view(request_id).finished
    assert "already been executed" in run("approvals", "approve", request_id, "--as", "U01SUPPRT1", code=2)
    db.dispose()
