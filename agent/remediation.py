"""The remediation graph: detect → propose → request approval → (interrupt) → execute → verify → report.

A LangGraph ``StateGraph`` checkpointed in the app database (``agent.checkpoints``: SqliteSaver on SQLite,
PostgresSaver on PostgreSQL), so a graph started by one process (``finops propose``, the scheduler) is
resumed by another (``finops approvals approve``, a Slack click). Rules (../shared/DESIGN.md, "Approval
architecture"):

- **Thread id = request id.** The request id only exists once the proposal is written, so the proposal is
  made first, by ``ApprovalService.propose`` (one transaction, idempotent: an open request for the same
  finding is returned as it is), and the thread is then started with ``thread_id = request id``. Inside
  the graph ``detect`` and ``propose`` only *read*: the finding behind the request and the stored plan.
  (The other option — a first run under a provisional thread id — would leave two threads per request.)
- **The approval node only interrupts.** ``await_approval`` calls ``interrupt(payload)`` and returns the
  answer; the payload is built from the state, nothing before the call has a side effect. Code before an
  ``interrupt()`` re-runs on resume, so the notification lives in its own earlier node
  (``request_approval``), which a resume does not re-run.
- **Resumption is by interrupt id, after the claim.** ``decide`` (1) checks that the interrupt id the
  caller answers (a Slack button's) is the thread's pending interrupt — a stale button is refused and
  audited, (2) records the decision with ``ApprovalService.approve`` / ``reject``, whose one conditional
  UPDATE lets a single caller win, and (3) only the winner resumes, with ``Command(resume={interrupt_id:
  answer})``. LangGraph itself would let two resumes of one thread both run; the claim stops that, and
  ``execute`` is idempotent besides (``ApprovalService.execute`` claims ``approved → executing``).
- **Two approvals.** A first approval of two is claimed like any other but leaves the request ``pending``:
  the graph is not resumed and stays at the same pause (same interrupt id), so the second approver answers
  that pause; the approval that makes the request ``approved`` resumes it.
- **After a crash or outside decisions.** A request decided without a resume (the process died between
  the claim and the resume, ``approvals approve --no-execute``, expiry, cancel) leaves its thread paused;
  ``settle`` resumes it with the answer the database already holds. That is safe to race: ``execute``
  claims.
- ``verify`` reads back what the service recorded (status, result — the service's ``execute`` already
  re-observed the resource and ran the action's own verification) and ``report`` words the outcome. A
  request superseded at execution (the resource drifted) has a fresh request; its own thread is started
  after the run, waiting for a new approval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from sqlalchemy import update

from approvals import audit
from approvals.machine import explain
from approvals.service import ApprovalService, Outcome, Refused
from approvals.store import get_request
from tools.errors import FinOpsError
from tools.store.models import AuditHead, FindingRow

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph, StateGraph

Decision = Literal["approve", "reject"]
#: delivers the approval request to people; returns what to remember about the delivery (JSON-able)
Notifier = Callable[[ApprovalService, dict[str, Any]], dict[str, Any]]

NODES = ("detect", "propose", "request_approval", "await_approval", "execute", "verify", "report")


class RemediationState(TypedDict, total=False):
    request_id: str
    finding: dict[str, Any] | None
    proposal: dict[str, Any]
    notified: dict[str, Any]
    answer: dict[str, Any]
    outcome: dict[str, Any]
    verified: dict[str, Any]
    report: str


class RemediationError(FinOpsError):
    """The graph did not do what the caller asked (e.g. a resume that did not take)."""


# --- notifiers --------------------------------------------------------------------------------------


def cli_notifier(svc: ApprovalService, proposal: dict[str, Any]) -> dict[str, Any]:
    """The CLI's delivery is the output of ``finops propose`` itself: nothing to send or record."""
    return {"channel": "cli", "approve_with": f"finops approvals approve {proposal['id']} --as <slack id>"}


def audit_notifier(channel: str) -> Notifier:
    """A notifier that records ``request.notified`` (once per request and channel) in the audit trail —
    what a channel that really sends something (Slack) writes after sending."""

    def notify(svc: ApprovalService, proposal: dict[str, Any]) -> dict[str, Any]:
        with svc.db.session() as s:
            # take the audit head's lock first, as audit.append does: two concurrent notifiers of the same
            # request queue here, and the second sees the first one's entry
            s.execute(update(AuditHead).where(AuditHead.id == 1).values(entries=AuditHead.entries))
            for entry in audit.list_entries(s, request_id=proposal["id"], event="request.notified"):
                if entry.channel == channel:
                    return {"channel": channel, "audit_seq": entry.seq, "repeat": True}
            entry = audit.append(
                s,
                event="request.notified",
                actor=svc.agent,
                at=svc.clock(),
                channel=channel,
                request_id=proposal["id"],
                resource=proposal["resource"],
                details={
                    "summary": proposal["summary"],
                    "approvals": proposal["approvals"],
                    "approvers": proposal["approvers"],
                },
            )
            return {"channel": channel, "audit_seq": entry.seq}

    return notify


# --- the graph --------------------------------------------------------------------------------------


def build_graph(svc: ApprovalService, notifier: Notifier = cli_notifier) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled graph; its nodes call ``svc`` (and ``notifier``) and keep only JSON-able state."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def detect(state: RemediationState) -> dict[str, Any]:
        """Load the finding behind the request (read-only)."""
        with svc.db.session() as s:
            row = get_request(s, state["request_id"])
            found = s.get(FindingRow, row.finding) if row.finding else None
            finding = (
                {
                    "fingerprint": found.fingerprint,
                    "rule_id": found.rule_id,
                    "kind": found.kind,
                    "title": found.title,
                    "resource": found.resource,
                    "team": found.team,
                    "monthly_impact": str(found.monthly_impact),
                    "currency": found.currency,
                }
                if found is not None
                else None
            )
        return {"finding": finding}

    def propose(state: RemediationState) -> dict[str, Any]:
        """The proposal ``ApprovalService.propose`` wrote before the thread started, into the state."""
        shown = svc.show(state["request_id"])
        return {
            "proposal": {
                "id": shown["id"],
                "status": shown["status"],
                "summary": shown["summary"],
                "action": shown["action"],
                "resource": shown["resource"],
                "team": shown["team"],
                "environment": shown["environment"],
                "monthly_savings": str(shown["monthly_savings"]),
                "currency": shown["currency"],
                "blast_radius": shown["plan"].get("blast_radius"),
                "reversible": shown["plan"].get("reversible"),
                "approvals": shown["approvals"],
                "approvers": shown["approvers"],
                "expires_at": shown["expires_at"],
                "plan_hash": shown["plan_hash"],
                "dry_run": shown["dry_run"],
            }
        }

    def request_approval(state: RemediationState) -> dict[str, Any]:
        """Ask the approvers (the notifier is idempotent: a re-run after a crash does not ask twice)."""
        return {"notified": notifier(svc, state["proposal"])}

    def await_approval(state: RemediationState) -> dict[str, Any]:
        # nothing but the interrupt: code before it re-runs on every resume
        answer = interrupt(_pause_payload(state))
        return {"answer": answer}

    def execute(state: RemediationState) -> dict[str, Any]:
        """Execute the approved request; ``ApprovalService.execute`` claims it, so this runs it at most once
        however many resumes race here."""
        request_id = state["request_id"]
        try:
            outcome = svc.execute(request_id)
        except Refused as exc:  # e.g. outside the change window: stays approved for `approvals run`
            with svc.db.session() as s:
                status = get_request(s, request_id).status
            outcome = Outcome(request_id, status, f"not executed now: {exc}")
        return {"outcome": outcome.as_dict()}

    def verify(state: RemediationState) -> dict[str, Any]:
        """Read back what the execution recorded (status, result, action id)."""
        shown = svc.show(state["request_id"])
        return {
            "verified": {
                "status": shown["status"],
                "ok": shown["status"] in ("succeeded", "dry_run"),
                "action_id": shown["action_id"],
                "result": shown["result"],
                "status_reason": shown["status_reason"],
            }
        }

    def report(state: RemediationState) -> dict[str, Any]:
        return {"report": _report(state)}

    graph: StateGraph[Any, Any, Any, Any] = StateGraph(RemediationState)
    graph.add_node("detect", detect)
    graph.add_node("propose", propose)
    graph.add_node("request_approval", request_approval)
    graph.add_node("await_approval", await_approval)
    graph.add_node("execute", execute)
    graph.add_node("verify", verify)
    graph.add_node("report", report)
    graph.add_edge(START, "detect")
    graph.add_edge("detect", "propose")
    graph.add_edge("propose", "request_approval")
    graph.add_edge("request_approval", "await_approval")
    graph.add_conditional_edges("await_approval", _after_answer, {"execute": "execute", "report": "report"})
    graph.add_edge("execute", "verify")
    graph.add_edge("verify", "report")
    graph.add_edge("report", END)
    return graph


def _pause_payload(state: RemediationState) -> dict[str, Any]:
    p = state["proposal"]
    return {
        "request_id": state["request_id"],
        "summary": p["summary"],
        "action": p["action"],
        "resource": p["resource"],
        "monthly_savings": p["monthly_savings"],
        "currency": p["currency"],
        "approvals": p["approvals"],
        "approvers": p["approvers"],
        "expires_at": p["expires_at"],
        "plan_hash": p["plan_hash"],
    }


def _after_answer(state: RemediationState) -> str:
    return "execute" if state.get("answer", {}).get("decision") == "approve" else "report"


def _report(state: RemediationState) -> str:
    request_id, summary = state["request_id"], state["proposal"]["summary"]
    answer = state.get("answer", {})
    outcome = state.get("outcome")
    if outcome is None:
        who = f" by {answer['actor']}" if answer.get("actor") else ""
        return f"{request_id} ({summary}): {answer.get('status', 'not approved')}{who}; nothing was executed"
    line = f"{request_id} ({summary}): {outcome['status']} — {outcome['message']}"
    if outcome.get("action_id"):
        line += f"; action id {outcome['action_id']}"
    if outcome.get("new_request_id"):
        line += f"; fresh request {outcome['new_request_id']} waits for approval"
    return line


# --- running it -------------------------------------------------------------------------------------


@dataclass
class RemediationView:
    """Where a request's thread is: not started, paused at ``interrupt_id``, or finished."""

    request_id: str
    started: bool
    interrupt_id: str | None
    next: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def waiting(self) -> bool:
        return self.interrupt_id is not None

    @property
    def finished(self) -> bool:
        return self.started and not self.next

    @property
    def report(self) -> str | None:
        value = self.values.get("report")
        return str(value) if value is not None else None


class Remediation:
    """Start, inspect, decide and settle remediation threads (one ``ApprovalService``, one checkpointer)."""

    def __init__(
        self,
        svc: ApprovalService,
        checkpointer: BaseCheckpointSaver[str],
        *,
        notifier: Notifier = cli_notifier,
    ) -> None:
        self.svc = svc
        self.checkpointer = checkpointer
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_graph(svc, notifier).compile(
            checkpointer=checkpointer
        )

    @staticmethod
    def config(request_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": request_id}}

    def _request(self, request_id: str) -> tuple[str, str, str]:
        """(request id, status, resource) — accepts an action id too, as the service does."""
        with self.svc.db.session() as s:
            row = get_request(s, request_id)
            return row.id, row.status, row.resource

    # --- start ------------------------------------------------------------------------------------

    def start(
        self, finding_id: str, *, requested_by: str | None = None, channel: str = "cli"
    ) -> tuple[Outcome, RemediationView]:
        """Propose (idempotent) and run the request's thread up to its approval pause."""
        proposed = self.svc.propose(finding_id, requested_by=requested_by, channel=channel)
        return proposed, self.start_request(proposed.request_id)

    def start_request(self, request_id: str) -> RemediationView:
        """Run the thread of an existing *pending* request up to its pause (nothing if it already has a
        thread, or is no longer pending). Two starts racing on one request both run to a pause (the
        notifier stays idempotent); the later checkpoint is the thread's head, so the other pause's id is
        refused as stale by ``decide`` — a refusal, never a wrong answer."""
        request_id, status, _ = self._request(request_id)
        config = self.config(request_id)
        if status == "pending" and self.checkpointer.get_tuple(config) is None:
            self.graph.invoke({"request_id": request_id}, config, durability="sync")
        return self.view(request_id)

    def view(self, request_id: str) -> RemediationView:
        snapshot = self.graph.get_state(self.config(request_id))
        interrupts = snapshot.interrupts
        return RemediationView(
            request_id=request_id,
            started=snapshot.created_at is not None,
            interrupt_id=interrupts[0].id if interrupts else None,
            next=tuple(snapshot.next),
            values=dict(snapshot.values),
        )

    # --- decide -----------------------------------------------------------------------------------

    def decide(
        self,
        request_id: str,
        actor: str,
        decision: Decision,
        *,
        interrupt_id: str,
        comment: str | None = None,
        reason: str | None = None,
        channel: str = "cli",
    ) -> Outcome:
        """Answer the pause ``interrupt_id`` of the request's thread: refuse a stale one, claim the decision
        in the database, and — only if this caller's claim decided the request — resume the thread, which
        executes, verifies and reports. Returns the decision's outcome (for a final approval, the
        execution's)."""
        if decision not in ("approve", "reject"):
            raise ValueError(f"decision must be 'approve' or 'reject', not {decision!r}")
        request_id, status, resource = self._request(request_id)
        pending = self.view(request_id).interrupt_id
        if pending is None or pending != interrupt_id:
            now_at = f"it waits at pause {pending}" if pending else explain(status)
            raise self.svc.refuse(
                f"this {decision} answers an old pause ({interrupt_id}) of request {request_id}: {now_at}; "
                f"use the latest message or `finops approvals show {request_id}`",
                actor=actor,
                channel=channel,
                request_id=request_id,
                resource=resource,
                what=f"{decision} at pause {interrupt_id}",
            )
        if decision == "approve":
            outcome = self.svc.approve(request_id, actor, comment=comment, channel=channel)
        else:
            outcome = self.svc.reject(request_id, actor, reason=reason or "", channel=channel)
        # here this caller's claim won (a lost race or a refusal raised Refused above)
        if outcome.status == "pending":  # one approval of several: the thread stays at the same pause
            outcome.details = {**outcome.details, "interrupt_id": interrupt_id}
            return outcome
        answer = {"decision": decision, "actor": actor, "channel": channel, "status": outcome.status}
        view = self._resume(request_id, interrupt_id, answer)
        executed = view.values.get("outcome")
        return _outcome(executed) if decision == "approve" and executed else outcome

    def _resume(self, request_id: str, interrupt_id: str, answer: dict[str, Any]) -> RemediationView:
        from langgraph.types import Command

        self.graph.invoke(Command(resume={interrupt_id: answer}), self.config(request_id), durability="sync")
        view = self.view(request_id)
        if view.interrupt_id == interrupt_id:
            raise RemediationError(f"request {request_id}: the answer to pause {interrupt_id} was not taken")
        fresh = (view.values.get("outcome") or {}).get("new_request_id")
        if fresh:
            self.start_request(fresh)
        return view

    def settle(self, request_id: str) -> RemediationView:
        """Resume a thread whose request was decided without a resume (a crash between claim and resume,
        ``--no-execute``, expiry, cancel) with the decision the database holds. Nothing when the request
        is still pending or the thread is not paused."""
        request_id, status, _ = self._request(request_id)
        view = self.view(request_id)
        if view.interrupt_id is None or status == "pending":
            return view
        decision = "reject" if status in ("rejected", "expired", "cancelled") else "approve"
        answer = {"decision": decision, "actor": self.svc.agent, "channel": None, "status": status}
        return self._resume(request_id, view.interrupt_id, answer)


def _outcome(d: dict[str, Any]) -> Outcome:
    return Outcome(
        request_id=d["request_id"],
        status=d["status"],
        message=d["message"],
        action_id=d.get("action_id"),
        new_request_id=d.get("new_request_id"),
        details=dict(d.get("details") or {}),
    )


@contextmanager
def open_remediation(svc: ApprovalService, *, notifier: Notifier = cli_notifier) -> Iterator[Remediation]:
    """A ``Remediation`` checkpointed in ``svc``'s own database."""
    from agent.checkpoints import open_checkpointer

    with open_checkpointer(svc.db.url) as saver:
        yield Remediation(svc, saver, notifier=notifier)
