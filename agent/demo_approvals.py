"""The demo's approval loop on the local AWS: finding → request → a refused approver → approval by the
owner → execution → verification → rollback → `audit verify`. Real service, real boto3, moto server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.model import FinOpsConfig
from tools.store.db import Database

if TYPE_CHECKING:
    from tools.demo_aws import DemoAws

#: the demo organisation's people (config/finops.example.yaml)
OWNER = "U01MLRSCH1"  # ml-research's owner and approver
OUTSIDER = "U01SEARCH1"  # search's owner: may not approve ml-research's changes


@dataclass
class LoopResult:
    request_id: str
    action_id: str
    executed_state: str
    rolled_back_state: str
    audit_ok: bool
    refusal: str


def instance_state(world: DemoAws, instance_id: str) -> str:
    import boto3

    ec2 = boto3.client("ec2", endpoint_url=world.url, region_name=world.aws.regions[0])
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def run_approval_loop(db: Database, config: FinOpsConfig, world: DemoAws) -> LoopResult:
    """Run the loop on the idle GPU notebook and print each step."""
    from rich.console import Console

    from agent.output import print_table
    from approvals import audit
    from approvals.actions.aws_clients import AwsClients
    from approvals.service import ApprovalService, Refused
    from tools.findings_store import list_findings

    console = Console()
    console.rule("[bold]Approval loop: nothing changes without a recorded approval")
    notebook = world.resource("idle_gpu_notebook")
    (finding,) = [f for f in list_findings(db, rule="idle-gpu-instance") if f.resource == notebook.id]
    live = world.scan_config(config).model_copy(update={"aws": world.aws})
    svc = ApprovalService(db, live, aws=AwsClients(world.aws, poll_seconds=0.2))
    svc.record_guardrails()

    proposed = svc.propose(finding.fingerprint)
    shown = svc.show(proposed.request_id)
    plan = shown["plan"]
    console.print(
        f"1. propose {finding.fingerprint[:10]} -> request {proposed.request_id}: {plan['summary']}\n"
        f"   blast radius: {plan['blast_radius']}\n"
        f"   savings {shown['monthly_savings']} {shown['currency']}/month; needs {shown['approvals']} approval(s) "
        f"from {', '.join(shown['approvers'])}; plan hash {shown['plan_hash'][:16]}...",
        soft_wrap=True,
    )
    try:
        svc.approve(proposed.request_id, OUTSIDER)
        refusal = ""
    except Refused as exc:
        refusal = str(exc)
    console.print(f"2. {OUTSIDER} clicks Approve: refused — {refusal}", soft_wrap=True)
    executed = svc.approve_and_execute(proposed.request_id, OWNER, comment="notebook not needed this week")
    state = instance_state(world, notebook.id)
    console.print(
        f"3. {OWNER} approves -> {executed.status}: {executed.message}\n"
        f"   EC2 says {notebook.id} is now {state}; action id {executed.action_id}",
        soft_wrap=True,
    )
    rolled = svc.rollback(executed.action_id or proposed.request_id, OWNER, reason="experiment resumes")
    state_after = instance_state(world, notebook.id)
    console.print(
        f"4. {OWNER} clicks Roll back -> {rolled.status}: {rolled.message}\n"
        f"   EC2 says {notebook.id} is {state_after} again",
        soft_wrap=True,
    )
    with db.session() as s:
        check = audit.verify(s)
        entries = [audit.entry_dict(e) for e in audit.list_entries(s, request_id=proposed.request_id)]
    print_table(
        [
            {
                "seq": e["seq"],
                "event": e["event"],
                "actor": e["actor"],
                "what": (
                    e["details"].get("reason")
                    or e["details"].get("summary")
                    or e["details"].get("detail")
                    or e["details"].get("approval")
                    or ""
                ),
                "hash": e["hash"][:12],
            }
            for e in entries
        ],
        ["seq", "event", "actor", "what", "hash"],
        title=f"Audit trail of {proposed.request_id}",
    )
    console.print(
        f"5. audit verify: {'OK' if check.ok else 'BROKEN'} — {check.entries} entries, hash chain "
        f"{'intact' if check.ok else check.problem}\n"
        "   Afterwards: finops approvals list · finops approvals show "
        f"{proposed.request_id} · finops audit list · finops audit verify",
        soft_wrap=True,
    )
    return LoopResult(proposed.request_id, executed.action_id or "", state, state_after, check.ok, refusal)
