"""CLI of the approvals: propose, approvals list/show/approve/reject/cancel/run/expire/reconcile, rollback,
audit list/verify/export. Every command calls ``approvals.service`` — the same functions Slack calls;
``propose``, ``approvals approve`` and ``approvals reject`` go through the remediation graph
(``agent.remediation``): propose starts the request's thread up to its approval pause, a decision claims the
request and then resumes that pause by its interrupt id."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from agent.cli_context import Context, FormatOpt, _check_format, _ctx, _fail, _parse_date, run_guarded

if TYPE_CHECKING:
    from approvals.service import ApprovalService, Outcome

approvals_app = typer.Typer(
    help="Remediation requests: list, show, approve, reject, run, reconcile.", invoke_without_command=True
)
audit_app = typer.Typer(help="The audit trail: list, verify the hash chain, export.", no_args_is_help=True)

ActorOpt = Annotated[str, typer.Option("--as", help="Your Slack user id (the approver), e.g. U012ABC")]


def service(c: Context) -> ApprovalService:
    from approvals.service import ApprovalService

    svc = ApprovalService(c.database(), c.config())
    svc.record_guardrails()  # a changed guardrail in finops.yaml is an audit event
    return svc


def _refresh_slack(c: Context, request_ids: list[str | None]) -> None:
    """With Slack configured, update the messages of requests decided here, so no message keeps buttons for
    a request that is no longer pending. Best effort: the decision stands either way."""
    settings = c.settings()
    ids = [i for i in request_ids if i]
    if not ids or settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        return
    try:
        from agent.slack.app import refresh_messages
        from agent.slack.client import make_client

        refresh_messages(c.database(), c.config(), settings, make_client(settings), ids)
    except Exception as exc:
        typer.echo(
            f"note: the Slack messages of {', '.join(ids)} were not updated ({type(exc).__name__})", err=True
        )


def _report(c: Context, outcome: Outcome, fmt: str) -> None:
    _print_outcome(outcome, fmt)
    _refresh_slack(c, [outcome.request_id, outcome.new_request_id])


def _print_outcome(outcome: Outcome, fmt: str) -> None:
    from agent.output import dumps_json

    if fmt == "json":
        print(dumps_json(outcome.as_dict()))
        return
    line = f"{outcome.request_id}: {outcome.status} — {outcome.message}"
    if outcome.action_id:
        line += f"\n  action id {outcome.action_id} (roll back with `finops rollback {outcome.action_id} --as ...`)"
    if outcome.new_request_id:
        line += (
            f"\n  fresh request {outcome.new_request_id}: `finops approvals show {outcome.new_request_id}`"
        )
    print(line)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(audit_app, name="audit")
    app.command("propose")(propose)
    app.command("rollback")(rollback)


def propose(
    ctx: typer.Context,
    finding_id: Annotated[str, typer.Argument(help="Finding id (or unique prefix) from `finops findings`")],
    actor: Annotated[str | None, typer.Option("--as", help="Who asks (default: the assistant)")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Turn a finding into a remediation request with its plan, waiting for approval."""
    _check_format(fmt)

    def go() -> None:
        from agent.remediation import open_remediation

        with open_remediation(service(_ctx(ctx))) as remediation:
            outcome, view = remediation.start(finding_id, requested_by=actor)
        if view.interrupt_id:
            outcome.details = {**outcome.details, "interrupt_id": view.interrupt_id}
        _print_outcome(outcome, fmt)
        if view.interrupt_id and fmt != "json":
            print(
                f"  waiting for approval (pause {view.interrupt_id}): "
                f"`finops approvals approve {outcome.request_id} --as <slack id>`"
            )

    run_guarded(go)


def _decide(
    c: Context,
    request_id: str,
    actor: str,
    decision: Literal["approve", "reject"],
    *,
    comment: str | None = None,
    reason: str | None = None,
) -> Outcome:
    """Answer the request's approval pause through the remediation graph (claim, then resume by interrupt
    id). The CLI looks the pending interrupt up itself (a Slack button carries it); a pending request that
    has no thread yet (proposed before the graph existed, or by a superseded execution) gets one first. A
    request that is not waiting is left to the service, which refuses with the reason."""
    from agent.remediation import open_remediation

    svc = service(c)
    with open_remediation(svc) as remediation:
        view = remediation.start_request(request_id)
        if view.interrupt_id is not None:
            return remediation.decide(
                view.request_id,
                actor,
                decision,
                interrupt_id=view.interrupt_id,
                comment=comment,
                reason=reason,
            )
    if decision == "approve":
        return svc.approve_and_execute(request_id, actor, comment=comment)
    return svc.reject(request_id, actor, reason=reason or "")


StatusOpt = Annotated[
    list[str] | None,
    typer.Option("--status", help="pending, approved, succeeded, failed, rolled_back, ... (repeatable)"),
]
TeamOpt = Annotated[str | None, typer.Option("--team", help="Owner team")]


def _list_requests(ctx: typer.Context, status: list[str] | None, team: str | None, fmt: str) -> None:
    _check_format(fmt)

    def go() -> None:
        from agent.output import dumps_json, print_table, to_csv

        rows = service(_ctx(ctx)).list_requests(status=status, team=team)
        for r in rows:
            r["expires_at"] = r["expires_at"][:16].replace("T", " ")
        cols = ["id", "status", "action", "resource", "team", "monthly_savings", "approvals", "expires_at"]
        if fmt == "json":
            print(dumps_json(rows))
        elif fmt == "csv":
            print(to_csv(rows, cols), end="")
        else:
            print_table(
                rows,
                cols,
                title="Remediation requests",
                money_columns=["monthly_savings"],
                caption="times UTC",
            )

    run_guarded(go)


@approvals_app.callback()
def approvals_default(
    ctx: typer.Context, status: StatusOpt = None, team: TeamOpt = None, fmt: FormatOpt = "table"
) -> None:
    """Remediation requests (`finops approvals` = `finops approvals list`)."""
    if ctx.invoked_subcommand is None:
        _list_requests(ctx, status, team, fmt)


@approvals_app.command("list")
def approvals_list(
    ctx: typer.Context, status: StatusOpt = None, team: TeamOpt = None, fmt: FormatOpt = "table"
) -> None:
    """List remediation requests, newest first."""
    _list_requests(ctx, status, team, fmt)


@approvals_app.command("show")
def approvals_show(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id or action id")],
    fmt: FormatOpt = "table",
) -> None:
    """Plan, blast radius, estimated savings, required approvers and history of one request."""

    def go() -> None:
        from agent.output import dumps_json

        data = service(_ctx(ctx)).show(request_id)
        if fmt == "json":
            print(dumps_json(data))
            return
        _print_request(data)

    run_guarded(go)


def _print_request(d: dict[str, Any]) -> None:
    plan = d["plan"]
    print(f"{d['id']}  [{d['status']}]  {plan['summary']}")
    print(f"  action        {d['action']} on {d['resource_kind']} {d['resource']}")
    print(f"  team / env    {d['team'] or '-'} / {d['environment'] or '-'}")
    print(f"  savings       {d['monthly_savings']} {d['currency']} per month (estimate)")
    print(f"  blast radius  {plan['blast_radius']}")
    for change in plan["changes"]:
        print(
            f"  change        {change['resource']} {change['attribute']}: {change['before']!r} -> {change['after']!r}"
        )
    print(f"  reversible    {'yes' if plan['reversible'] else 'NO'}")
    print(
        f"  approvals     {d['approvals']} given; may approve: {', '.join(d['approvers']) or 'no one configured'}"
    )
    print(f"  requested     by {d['requested_by']} at {d['created_at']}; expires {d['expires_at']}")
    print(f"  plan hash     {d['plan_hash']}")
    if d["finding"]:
        print(f"  finding       {d['finding']}")
    if d["status_reason"]:
        print(f"  reason        {d['status_reason']}")
    if d["action_id"]:
        print(f"  action id     {d['action_id']}")
    if d["dry_run"]:
        print("  dry-run       yes: approved requests are planned and audited, never executed")
    print("  history:")
    for e in d["history"]:
        detail = e["details"].get("reason") or e["details"].get("detail") or e["details"].get("summary") or ""
        print(f"    {e['seq']:>5}  {e['at'][:19]}  {e['event']:<20} {e['actor']:<14} {detail}")


@approvals_app.command("approve")
def approvals_approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id")],
    actor: ActorOpt,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    no_execute: Annotated[
        bool,
        typer.Option("--no-execute", help="Record the approval only; execute later with `approvals run`"),
    ] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Approve; when it is the last approval needed, the change is executed, verified and audited."""

    def go() -> None:
        c = _ctx(ctx)
        if no_execute:  # the claim only; the thread stays paused until `Remediation.settle`
            _report(c, service(c).approve(request_id, actor, comment=comment), fmt)
        else:
            _report(c, _decide(c, request_id, actor, "approve", comment=comment), fmt)

    run_guarded(go)


@approvals_app.command("reject")
def approvals_reject(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id")],
    actor: ActorOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (goes into the audit trail)")],
    fmt: FormatOpt = "table",
) -> None:
    """Reject a pending request."""
    c = _ctx(ctx)
    run_guarded(lambda: _report(c, _decide(c, request_id, actor, "reject", reason=reason), fmt))


@approvals_app.command("cancel")
def approvals_cancel(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id")],
    actor: ActorOpt,
    reason: Annotated[str, typer.Option("--reason")],
    fmt: FormatOpt = "table",
) -> None:
    """Withdraw a pending or approved request before it runs."""
    c = _ctx(ctx)
    run_guarded(lambda: _report(c, service(c).cancel(request_id, actor, reason=reason), fmt))


@approvals_app.command("run")
def approvals_run(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """Reconcile interrupted executions, expire overdue requests, execute approved ones (at most
    guardrails.max_actions_per_run) and finish their remediation graphs. Safe to run repeatedly."""

    def go() -> None:
        from agent.remediation import open_remediation

        svc = service(_ctx(ctx))
        for outcome in svc.reconcile():
            _print_outcome(outcome, fmt)
        for request_id in svc.expire_due():
            print(f"{request_id}: expired")
        for outcome in svc.execute_approved():
            _print_outcome(outcome, fmt)
        # let the remediation graphs of decided requests run to their report (execution is claimed once)
        with open_remediation(svc) as remediation:
            for row in svc.list_requests(
                status=["succeeded", "failed", "dry_run", "expired", "cancelled", "rejected", "superseded"]
            ):
                remediation.settle(row["id"])

    run_guarded(go)


@approvals_app.command("reconcile")
def approvals_reconcile(
    ctx: typer.Context,
    stale_minutes: Annotated[
        int, typer.Option("--stale-minutes", help="Treat executions older than this as interrupted")
    ] = 15,
    fmt: FormatOpt = "table",
) -> None:
    """Finish executions a crash left in `executing`, from the real state of the resources."""

    def go() -> None:
        outcomes = service(_ctx(ctx)).reconcile(stale_after=timedelta(minutes=stale_minutes))
        if not outcomes and fmt != "json":
            print("nothing to reconcile")
        for outcome in outcomes:
            _print_outcome(outcome, fmt)

    run_guarded(go)


def rollback(
    ctx: typer.Context,
    action_id: Annotated[str, typer.Argument(help="Action id (act-...) or request id")],
    actor: ActorOpt,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Undo an executed remediation from its saved state; approved by you, audited and verified."""
    c = _ctx(ctx)
    run_guarded(lambda: _report(c, service(c).rollback(action_id, actor, reason=reason), fmt))


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    day: date = _parse_date(text, "--since")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    resource: Annotated[str | None, typer.Option("--resource", help="Resource id")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Slack user id or finops-agent")] = None,
    request: Annotated[str | None, typer.Option("--request", help="Request id")] = None,
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD (UTC)")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Newest N entries")] = 50,
    fmt: FormatOpt = "table",
) -> None:
    """Audit entries, newest first."""
    _check_format(fmt)

    def go() -> None:
        from agent.output import dumps_json, print_table, to_csv
        from approvals import audit

        with _ctx(ctx).database().session() as s:
            entries = audit.list_entries(
                s,
                resource=resource,
                actor=actor,
                request_id=request,
                since=_since(since),
                limit=limit,
                newest_first=True,
            )
            rows = [audit.entry_dict(e) for e in entries]
        if fmt == "json":
            print(dumps_json(rows))
            return
        for r in rows:
            r["summary"] = _summary(r["details"])
            r["at"] = r["at"][:19]
        cols = ["seq", "at", "event", "actor", "request_id", "resource", "summary"]
        if fmt == "csv":
            print(to_csv(rows, cols), end="")
        else:
            print_table(rows, cols, title="Audit trail (newest first)")

    run_guarded(go)


def _summary(details: dict[str, Any]) -> str:
    for key in ("summary", "reason", "detail", "approval", "drift", "note"):
        if details.get(key):
            return str(details[key])[:100]
    return ""


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, fmt: FormatOpt = "table") -> None:
    """Recompute the hash chain; exit 1 and name the first broken entry if the trail was tampered with."""

    def go() -> int:
        from agent.output import dumps_json
        from approvals import audit

        with _ctx(ctx).database().session() as s:
            result = audit.verify(s)
        if fmt == "json":
            print(dumps_json(result.as_dict()))
        elif result.ok:
            print(f"audit trail OK: {result.entries} entries, chain intact; head {result.last_hash}")
        else:
            print(f"audit trail BROKEN at entry {result.broken_seq}: {result.problem}", file=sys.stderr)
        return 0 if result.ok else 1

    code = run_guarded(go)
    if code:
        raise typer.Exit(code)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv")] = "jsonl",
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD (UTC)")] = None,
) -> None:
    """Write every entry (with its hashes) to stdout: `finops audit export --format jsonl > trail.jsonl`."""
    if fmt not in ("jsonl", "csv"):
        _fail(f"--format {fmt!r}: choose jsonl or csv")

    def go() -> None:
        from approvals import audit

        with _ctx(ctx).database().session() as s:
            for line in audit.export_lines(audit.list_entries(s, since=_since(since)), fmt):
                sys.stdout.write(line)

    run_guarded(go)
