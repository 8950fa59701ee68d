"""The Slack app's Block Kit layer: what each message says and offers, Slack's limits (checked by
slack_sdk.models and by us), escaping of untrusted data, and the app manifest.

Inputs have the shapes the product produces: ``finding_dict(row, full=True)``, ``ApprovalService.show``,
``audit.entry_dict``, budget statuses and ``Answer`` (see the factories below)."""

from __future__ import annotations

import copy
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from agent.answer import OTHER, Answer
from agent.slack import blocks as B
from agent.slack import texts
from agent.slack.blocks import Message
from tools.budgets import BudgetStatus, TokenBudgetStatus
from tools.periods import Period

REPO = Path(__file__).resolve().parents[2]
OWNER, SECOND, ADMIN = "U0SUPPORT1", "U0SUPPORT2", "U0FINOPS01"
EVIL = "<!channel> <https://evil.example|click here> & <@U0EVIL0001>"
FINDING_ID = "d2566dd5681eff5838125bdd"
REQUEST_ID = "req-dff117ee0d8f"


# --- factories (shapes copied from the real functions' output) -----------------------------------


def make_finding(**over: Any) -> dict[str, Any]:
    finding: dict[str, Any] = {
        "id": FINDING_ID,
        "kind": "waste",
        "rule": "idle-gpu-instance",
        "title": "Idle GPU instance",
        "status": "open",
        "severity": "high",
        "team": "ml-research",
        "resource": "i-0abc1234def567890",
        "monthly_impact": Decimal("1234.500000"),
        "currency": "USD",
        "proposed_action": "ec2-stop-instance",
        "last_seen": "2024-09-21T08:00:00+00:00",
        "resource_kind": "ec2-instance",
        "account": "111122223333",
        "scope": {"team": "ml-research", "environment": "dev"},
        "owner_reason": "tag team=ml-research",
        "evidence": {
            "instance_type": "g5.xlarge",
            "state": "running",
            "running_days": 40,
            "cpu_max_daily": 0.8,
            "hourly_price": "1.006",
        },
        "action_params": {"instance_id": "i-0abc1234def567890"},
        "recommendation": None,
        "first_seen": "2024-09-20T08:00:00+00:00",
        "times_seen": 2,
        "resolved_at": None,
        "snoozed_until": None,
    }
    finding.update(over)
    return finding


def make_request(status: str = "pending", **over: Any) -> dict[str, Any]:
    summary = "Stop EC2 instance i-0abc1234def567890 (g5.xlarge, team ml-research)"
    request: dict[str, Any] = {
        "id": REQUEST_ID,
        "kind": "remediation",
        "status": status,
        "action": "ec2-stop-instance",
        "summary": summary,
        "resource": "i-0abc1234def567890",
        "resource_kind": "ec2-instance",
        "team": "ml-research",
        "environment": "dev",
        "monthly_savings": Decimal("734.38"),
        "currency": "USD",
        "approvals": "0/1",
        "requested_by": "finops-agent",
        "created_at": "2024-09-21T08:00:00+00:00",
        "expires_at": "2024-09-24T08:00:00+00:00",
        "finding": FINDING_ID,
        "action_id": None,
        "plan_hash": "7504d1d9",
        "status_reason": None,
        "supersedes": None,
        "dry_run": False,
        "plan": {
            "action": "ec2-stop-instance",
            "summary": summary,
            "changes": [
                {
                    "resource": "i-0abc1234def567890",
                    "attribute": "state",
                    "before": "running",
                    "after": "stopped",
                }
            ],
            "blast_radius": "Only this instance stops; its EBS volumes and data are kept.",
            "monthly_savings": "734.380000",
            "currency": "USD",
            "reversible": True,
            "observed": {"exists": True, "state": "running", "attributes": {}, "tags": {}},
        },
        "approvers": [ADMIN, OWNER],
        "decisions": [],
        "captured": None,
        "applied": None,
        "result": None,
        "history": [],
    }
    request.update(over)
    return request


def approve(actor: str = OWNER, at: str = "2024-09-21T09:00:00+00:00") -> dict[str, Any]:
    return {"actor": actor, "decision": "approve", "channel": "slack", "comment": None, "at": at}


def executed(status: str = "succeeded", **over: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "approvals": "1/1",
        "action_id": "act-924a3372f117",
        "decisions": [approve()],
        "captured": {"state": "running"},
        "result": {"detail": "instance stopped", "after": {"exists": True, "state": "stopped"}},
        "history": [
            {"event": "execution.succeeded", "actor": "finops-agent", "at": "2024-09-21T09:01:00+00:00"}
        ],
    }
    return make_request(status, **{**values, **over})


def make_answer(**over: Any) -> Answer:
    answer = Answer(
        question="spend by team last month",
        text="Spend (effective cost), no filter, last month (2024-08-01 to 2024-08-31): $756.00.",
        kind="costs",
        period=Period(date(2024, 8, 1), date(2024, 9, 1), "last month"),
        filters={"environment": ["prod"]},
        group_by=("team",),
        metric="cost",
        rows=[
            {"team": "ml-research", "cost": Decimal("500.0000000000")},
            {"team": "search", "cost": Decimal("115.0000000000")},
            {"team": OTHER, "cost": Decimal("141.0000000000")},
        ],
        total=Decimal("756.0000000000"),
        truncated=4,
        rerun="finops costs --by team --from 2024-08-01 --to 2024-09-01 --top 2 --filter environment=prod",
    )
    for key, value in over.items():
        setattr(answer, key, value)
    return answer


def budget_status(**over: Any) -> BudgetStatus:
    values: dict[str, Any] = {
        "name": "ml-research-monthly",
        "scope": {"team": "ml-research"},
        "period": Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09"),
        "amount": Decimal("40000"),
        "actual": Decimal("30000.5"),
        "forecast": Decimal("45000.75"),
        "days_elapsed": 20,
        "thresholds": [Decimal("0.8"), Decimal("1")],
        "crossed": ["80%"],
        "status": "warning",
        "forecast_status": "over",
        "responder": OWNER,
        "runs_out_on": date(2024, 9, 27),
    }
    values.update(over)
    return BudgetStatus(**values)


def audit_entry(seq: int = 1, **over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": seq,
        "at": "2024-09-21T09:00:00+00:00",
        "event": "request.approved",
        "actor": OWNER,
        "channel": "slack",
        "request_id": REQUEST_ID,
        "resource": "i-0abc1234def567890",
        "details": {"approval": "1 of 1"},
        "prev_hash": "0" * 64,
        "hash": "a" * 64,
    }
    entry.update(over)
    return entry


# --- helpers ----------------------------------------------------------------------------------------


def assert_valid(msg: Message) -> None:
    """A fallback text, at most 50 blocks, and every block survives slack_sdk's parse + validation."""
    assert msg.text.strip()
    assert 0 < len(msg.blocks) <= B.MAX_MESSAGE_BLOCKS
    assert [b.to_dict() for b in Block.parse_all(msg.blocks)] == msg.blocks
    for block in msg.blocks:
        for field in block.get("fields") or ():
            assert len(field["text"]) <= B.FIELD_TEXT_MAX


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def action_ids(msg: Message) -> list[str]:
    return [e["action_id"] for e in buttons(msg.blocks)]


def mrkdwn_texts(value: Any) -> list[str]:
    """Every string Slack parses as mrkdwn (text objects of type mrkdwn) under ``value``."""
    out: list[str] = []
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            out.append(value["text"])
        for item in value.values():
            out += mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            out += mrkdwn_texts(item)
    return out


def all_text(msg: Message) -> str:
    return "\n".join([msg.text, *mrkdwn_texts(msg.blocks)])


_OWN_TOKEN = re.compile(r"<!date\^\d+\^[^|>]*\|[^>]*>|<@(U0SUPPORT1|U0SUPPORT2|U0FINOPS01)>")


def assert_no_injected_markup(text: str) -> None:
    """No Slack control sequence other than the ones we put there ourselves (dates, known users)."""
    stripped = _OWN_TOKEN.sub("", text)
    assert "<" not in stripped and ">" not in stripped, stripped
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U0EVIL0001>" not in text


# --- formatting ---------------------------------------------------------------------------------------


def test_money_usd_has_a_dollar_sign_and_thousands_separators() -> None:
    assert B.money(Decimal("1234.56")) == "$1,234.56"
    assert B.money(Decimal("1234567.5")) == "$1,234,567.50"
    assert B.money(Decimal("-42.1")) == "-$42.10"
    assert B.money(7) == "$7.00"
    assert B.money("0.005") == "$0.01"  # half up
    assert B.money(Decimal("-0.001")) == "$0.00"


def test_money_other_currencies_put_the_code_after_the_amount() -> None:
    assert B.money(Decimal("1234.56"), "EUR") == "1,234.56 EUR"
    assert B.money(Decimal("-3"), "GBP") == "-3.00 GBP"
    assert B.money(None) == texts.NOT_AVAILABLE


def test_money_refuses_floats() -> None:
    with pytest.raises(TypeError):
        B.money(1.1)  # type: ignore[arg-type]


def test_unit_money_keeps_four_decimals_below_one() -> None:
    assert B.unit_money(Decimal("0.025")) == "$0.0250"
    assert B.unit_money(Decimal("5.000000")) == "$5.00"


def test_escape_turns_slack_control_characters_into_entities() -> None:
    assert B.escape("<!channel>") == "&lt;!channel&gt;"
    assert B.escape("<https://evil|click>") == "&lt;https://evil|click&gt;"
    assert B.escape("a & b") == "a &amp; b"
    assert B.escape(None) == ""


def test_inline_collapses_newlines_so_data_cannot_fake_lines() -> None:
    assert B.inline("team\n*Approved by* boss", 200) == "team *Approved by* boss"
    assert B.inline("x" * 50, 10) == "x" * 9 + "…"


def test_fit_never_cuts_inside_an_entity_or_a_token() -> None:
    text = "a" * 95 + "&amp;&lt;"
    cut = B.fit(text, 100)
    assert len(cut) <= 100 and not re.search(r"&[a-z]*$", cut.rstrip("…"))
    cut = B.fit("x" * 90 + "<!date^1^{time}|fallback>", 100)
    assert "<!date" not in cut


def test_person_mentions_slack_ids_and_escapes_anything_else() -> None:
    assert B.person(OWNER) == f"<@{OWNER}>"
    assert B.person("alice") == "alice"
    assert B.person("<!here>") == "&lt;!here&gt;"


# --- a finding and its request ------------------------------------------------------------------------


def test_finding_message_shows_what_evidence_amount_team_and_plan() -> None:
    msg = B.finding_message(make_finding(), make_request())
    assert_valid(msg)
    text = all_text(msg)
    assert msg.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Idle GPU instance", "emoji": True},
    }
    assert "$1,234.50" in text  # $ per month
    assert "$734.38" in text  # est. savings of the plan
    assert "ml-research" in text and "dev" in text
    assert "instance_type: g5.xlarge" in text
    assert "`i-0abc1234def567890` state: running → stopped" in text
    assert "Only this instance stops" in text
    assert "0 of 1 given" in text
    assert "<!date^1727164800^" in text  # expiry, shown in the reader's time zone
    assert "$1,234.50/month" in msg.text


def test_finding_buttons_carry_only_the_request_or_finding_id() -> None:
    msg = B.finding_message(make_finding(), make_request())
    by_action = {e["action_id"]: e for e in buttons(msg.blocks)}
    assert list(by_action) == [B.APPROVE_ACTION, B.REJECT_ACTION, B.SNOOZE_ACTION, B.NOT_WASTE_ACTION]
    assert by_action[B.APPROVE_ACTION]["value"] == REQUEST_ID
    assert by_action[B.REJECT_ACTION]["value"] == REQUEST_ID
    assert by_action[B.SNOOZE_ACTION]["value"] == FINDING_ID
    assert by_action[B.NOT_WASTE_ACTION]["value"] == FINDING_ID
    assert by_action[B.APPROVE_ACTION]["style"] == "primary"
    assert by_action[B.APPROVE_ACTION]["confirm"]["style"] == "primary"
    assert by_action[B.REJECT_ACTION]["style"] == "danger"
    assert set(B.ACTION_IDS) >= set(by_action)


def test_finding_without_a_proposed_fix_offers_only_snooze_and_not_waste() -> None:
    finding = make_finding(proposed_action=None, recommendation="Buy a savings plan for steady usage")
    msg = B.finding_message(finding, None)
    assert_valid(msg)
    assert action_ids(msg) == [B.SNOOZE_ACTION, B.NOT_WASTE_ACTION]
    assert "Buy a savings plan" in all_text(msg)


def test_finding_with_a_fix_not_yet_proposed_names_the_propose_command() -> None:
    msg = B.finding_message(make_finding(), None)
    assert action_ids(msg) == [B.SNOOZE_ACTION, B.NOT_WASTE_ACTION]
    assert f"`finops propose {FINDING_ID}`" in all_text(msg)


@pytest.mark.parametrize(
    "status",
    [
        "approved",
        "executing",
        "succeeded",
        "failed",
        "dry_run",
        "rolling_back",
        "rolled_back",
        "rollback_failed",
        "rejected",
        "expired",
        "cancelled",
        "superseded",
    ],
)
def test_no_approve_or_reject_button_once_decided(status: str) -> None:
    request = executed(status) if status in ("succeeded", "failed") else make_request(status)
    msg = B.decided_message(make_finding(), request)
    assert_valid(msg)
    assert B.APPROVE_ACTION not in action_ids(msg) and B.REJECT_ACTION not in action_ids(msg)
    assert B.SNOOZE_ACTION not in action_ids(msg)  # the decision is made: no snoozing it any more
    assert status.replace("_", " ") in msg.text


def test_approved_message_says_who_and_when() -> None:
    msg = B.decided_message(make_finding(), make_request("approved", approvals="1/1", decisions=[approve()]))
    text = all_text(msg)
    assert f"Approved by <@{OWNER}> <!date^1726909200^" in text
    assert action_ids(msg) == []


def test_first_of_two_approvals_keeps_the_buttons_for_the_second_approver() -> None:
    request = make_request("pending", approvals="1/2", decisions=[approve()])
    msg = B.decided_message(make_finding(), request)
    assert action_ids(msg)[:2] == [B.APPROVE_ACTION, B.REJECT_ACTION]
    assert f"Approved by <@{OWNER}> (1 of 2)" in all_text(msg)


def test_rejected_message_gives_the_reason() -> None:
    decision = {**approve(SECOND), "decision": "reject", "comment": "needed for the demo"}
    msg = B.decided_message(make_finding(), make_request("rejected", decisions=[decision]))
    assert f"Rejected by <@{SECOND}>" in all_text(msg) and "needed for the demo" in all_text(msg)


def test_superseded_and_expired_messages_say_nothing_changed_or_why() -> None:
    superseded = make_request("superseded", status_reason="state 'running' -> 'stopped'")
    assert "state 'running' -&gt; 'stopped'" in all_text(B.decided_message(make_finding(), superseded))
    expired = B.decided_message(make_finding(), make_request("expired"))
    assert "Expired <!date^1727164800^" in all_text(expired)


def test_executed_message_shows_the_verified_state_and_a_roll_back_button() -> None:
    msg = B.executed_message(make_finding(), executed())
    assert_valid(msg)
    (button,) = buttons(msg.blocks)
    assert button["action_id"] == B.ROLLBACK_ACTION and button["value"] == REQUEST_ID
    assert button["confirm"]["style"] == "danger"
    assert "Verified state: *stopped*" in all_text(msg)
    assert "instance stopped" in all_text(msg)


def test_no_roll_back_button_when_nothing_was_saved_or_the_change_is_irreversible() -> None:
    failed_early = executed("failed", captured=None)
    assert action_ids(B.executed_message(make_finding(), failed_early)) == []
    failed_late = executed("failed")
    assert action_ids(B.executed_message(make_finding(), failed_late)) == [B.ROLLBACK_ACTION]
    plan = {**make_request()["plan"], "reversible": False}
    irreversible = B.executed_message(make_finding(), executed(plan=plan))
    assert action_ids(irreversible) == []
    assert texts.NOT_REVERSIBLE in all_text(irreversible)


def test_rolled_back_message_says_who_rolled_back_and_has_no_buttons() -> None:
    request = executed(
        "rolled_back",
        result={"rollback": "instance running again", "undone": {}},
        history=[{"event": "rollback.succeeded", "actor": SECOND, "at": "2024-09-21T10:00:00+00:00"}],
    )
    msg = B.rolled_back_message(make_finding(), request)
    assert_valid(msg)
    assert action_ids(msg) == []
    assert f"Rolled back by <@{SECOND}>" in all_text(msg) and "instance running again" in all_text(msg)


def test_snoozed_finding_says_until_when_and_by_whom() -> None:
    finding = make_finding(status="snoozed", snoozed_until="2024-09-28T08:00:00+00:00")
    msg = B.finding_message(finding, None, feedback_by=OWNER)
    assert action_ids(msg) == []
    assert f"Snoozed by <@{OWNER}> until <!date^" in all_text(msg)


def test_request_without_a_finding_still_renders() -> None:
    msg = B.decided_message(None, make_request("approved", decisions=[approve()]))
    assert_valid(msg)
    assert msg.blocks[0]["text"]["text"].startswith("Stop EC2 instance")


def test_long_evidence_is_cut_with_a_note_naming_the_show_command() -> None:
    evidence = {f"metric_{i}": {"daily": [["2024-09-01", 0.1]] * 50} for i in range(20)}
    msg = B.finding_message(make_finding(evidence=evidence), None)
    assert_valid(msg)
    text = all_text(msg)
    assert f"`finops findings show {FINDING_ID}` shows all of it" in text
    assert "metric_7" in text and "metric_8" not in text


def test_long_titles_and_summaries_fit_slacks_limits() -> None:
    long = "very long title " * 100
    request = make_request(summary=long * 3)
    msg = B.finding_message(make_finding(title=long, recommendation=long * 10), request)
    assert_valid(msg)
    assert len(msg.blocks[0]["text"]["text"]) <= B.HEADER_MAX
    approve_button = buttons(msg.blocks)[0]
    assert len(approve_button["confirm"]["text"]["text"]) <= B.CONFIRM_TEXT_MAX


def test_untrusted_values_never_become_mentions_or_links() -> None:
    finding = make_finding(
        title=EVIL,
        team=EVIL,
        resource=EVIL,
        resource_kind=EVIL,
        recommendation=EVIL,
        scope={"team": EVIL, "environment": EVIL, "owner": EVIL},
        evidence={EVIL: EVIL, "tags": {"Name": EVIL}},
    )
    plan = {
        **make_request()["plan"],
        "changes": [{"resource": EVIL, "attribute": EVIL, "before": EVIL, "after": EVIL}],
        "blast_radius": EVIL,
    }
    decision = {**approve("<!here>"), "decision": "reject", "comment": EVIL}
    cases = [
        B.finding_message(finding, make_request(summary=EVIL, plan=plan, approvers=[EVIL])),
        B.decided_message(finding, make_request("rejected", summary=EVIL, decisions=[decision])),
        B.executed_message(finding, executed(result={"detail": EVIL, "after": {"state": EVIL}})),
        B.digest_message([finding], {FINDING_ID: make_request(summary=EVIL)}),
        B.list_message("findings", [finding]),
        B.list_message("audit", [audit_entry(actor=EVIL, resource=EVIL, event=EVIL)]),
        B.answer_message(make_answer(text=EVIL, rows=[{"team": EVIL, "cost": Decimal(1)}], rerun=EVIL)),
        B.refusal_ephemeral(EVIL),
        B.help_message([EVIL]),
    ]
    for msg in cases:
        assert_valid(msg)
        assert_no_injected_markup(all_text(msg))
        assert "&lt;!channel&gt;" in all_text(msg)
    assert all(t.get("verbatim") for t in _text_objects(cases[0].blocks) if t["type"] == "mrkdwn")


def _text_objects(value: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text"):
            out.append(value)
        for item in value.values():
            out += _text_objects(item)
    elif isinstance(value, list):
        for item in value:
            out += _text_objects(item)
    return out


def test_home_view_escapes_untrusted_values() -> None:
    view = B.home_view(
        [make_request(summary=EVIL)],
        [budget_status(name=EVIL, scope={"team": EVIL})],
        [audit_entry(resource=EVIL)],
        "<!channel>",
    )
    assert_no_injected_markup("\n".join(mrkdwn_texts(view["blocks"])))


# --- digest -----------------------------------------------------------------------------------------


def many_findings(n: int, team: str = "search") -> list[dict[str, Any]]:
    return [
        make_finding(
            id=f"f{i:03d}", title=f"Idle volume {i}", team=team, monthly_impact=Decimal(i) + Decimal("0.10")
        )
        for i in range(n)
    ]


def test_digest_shows_the_count_the_total_and_the_largest_first() -> None:
    findings = many_findings(3)
    requests = {"f002": make_request(id="req-2", finding="f002")}
    msg = B.digest_message(findings, requests)
    assert_valid(msg)
    text = all_text(msg)
    assert "*3* new findings for team *search*: *$3.30/month* at stake" in text
    assert text.index("Idle volume 2") < text.index("Idle volume 1") < text.index("Idle volume 0")
    by_finding = [(e["action_id"], e["value"]) for e in buttons(msg.blocks)]
    assert (B.APPROVE_ACTION, "req-2") in by_finding and (B.REJECT_ACTION, "req-2") in by_finding
    assert (B.SNOOZE_ACTION, "f000") in by_finding and (B.NOT_WASTE_ACTION, "f001") in by_finding
    assert [v for a, v in by_finding if a == B.APPROVE_ACTION] == ["req-2"]
    assert "more" not in text


def test_digest_never_exceeds_50_blocks_and_says_how_many_were_left_out() -> None:
    msg = B.digest_message(many_findings(40), {}, limit=100)
    assert_valid(msg)
    shown = {e["value"] for e in buttons(msg.blocks)}
    assert len(msg.blocks) <= 50
    assert f"… and {40 - len(shown)} more findings, see `finops findings --team search`" in all_text(msg)
    assert "*40* new findings" in all_text(msg)


def test_digest_limit_cuts_with_a_note() -> None:
    msg = B.digest_message(many_findings(12), {}, limit=10)
    assert len({e["value"] for e in buttons(msg.blocks)}) == 10
    assert "… and 2 more findings" in all_text(msg)


def test_digest_totals_each_currency_apart() -> None:
    findings = [make_finding(id="a", monthly_impact=Decimal("10")), make_finding(id="b", currency="EUR")]
    assert "$10.00 + 1,234.50 EUR" in all_text(B.digest_message(findings, {}))


def test_digest_of_several_teams_names_the_plain_command() -> None:
    findings = many_findings(12) + many_findings(1, team="growth")
    assert "see `finops findings`" in all_text(B.digest_message(findings, {}, limit=5))


# --- answers ----------------------------------------------------------------------------------------


def test_working_message_is_a_valid_placeholder() -> None:
    msg = B.working_message()
    assert_valid(msg)
    assert msg.text == texts.WORKING_FALLBACK and buttons(msg.blocks) == []


def test_answer_message_has_text_table_and_the_rerun_command() -> None:
    msg = B.answer_message(make_answer())
    assert_valid(msg)
    text = all_text(msg)
    assert "$756.00" in msg.text
    table = next(t for t in mrkdwn_texts(msg.blocks) if t.startswith("```"))
    assert "ml-research  $500.00" in table and "(other)" in table and "$141.00" in table
    context = mrkdwn_texts([b for b in msg.blocks if b["type"] == "context"])
    assert any("last month (2024-08-01 to 2024-08-31)" in c for c in context)
    assert any("environment=prod" in c for c in context)
    assert any("cost (USD)" in c for c in context)
    assert "`finops costs --by team --from 2024-08-01" in text


def test_answer_table_with_a_comparison_shows_previous_and_change() -> None:
    rows = [{"team": "search", "cost": Decimal(115), "previous": Decimal(50), "change": Decimal(65)}]
    msg = B.answer_message(make_answer(rows=rows))
    table = next(t for t in mrkdwn_texts(msg.blocks) if t.startswith("```"))
    assert "previous" in table and "$50.00" in table and "$65.00" in table


def test_answer_with_many_rows_is_cut_with_a_note() -> None:
    rows = [{"team": f"team-{i:03d}-" + "x" * 20, "cost": Decimal(i)} for i in range(200)]
    msg = B.answer_message(make_answer(rows=rows))
    assert_valid(msg)
    table = next(t for t in mrkdwn_texts(msg.blocks) if t.startswith("```"))
    assert len(table) <= B.SECTION_TEXT_MAX
    assert f"{200 - B.TABLE_ROWS} more rows not shown; `finops costs" in table


def test_answer_with_wide_cells_keeps_the_table_under_3000_characters() -> None:
    wide = "&" * 500  # cut to a cell of 32 characters, each 5 characters once escaped
    rows = [{"team": wide, "service": wide, "cost": Decimal(i)} for i in range(15)]
    msg = B.answer_message(make_answer(rows=rows, group_by=("team", "service")))
    assert_valid(msg)
    table = next(t for t in mrkdwn_texts(msg.blocks) if t.startswith("```"))
    shown = table.count("$")
    assert len(table) <= B.SECTION_TEXT_MAX and 0 < shown < 15
    assert f"{15 - shown} more rows not shown" in table


def test_a_very_long_answer_text_is_split_then_cut_with_a_note() -> None:
    text = "\n".join(f"line {i} " + "y" * 200 for i in range(100))
    msg = B.answer_message(make_answer(text=text))
    assert_valid(msg)
    sections = [b for b in msg.blocks if b["type"] == "section" and not b["text"]["text"].startswith("```")]
    assert len(sections) == B.ANSWER_SECTIONS
    assert all(len(s["text"]["text"]) <= B.SECTION_TEXT_MAX for s in sections)
    assert "Answer shortened; `finops costs" in sections[-1]["text"]["text"]
    assert len(msg.text) <= B.FALLBACK_MAX


def test_a_question_not_understood_lists_example_questions() -> None:
    answer = make_answer(
        understood=False, kind="help", rows=[], group_by=(), period=None, rerun=None, examples=["Top 5 teams"]
    )
    msg = B.answer_message(answer)
    assert_valid(msg)
    assert "• Top 5 teams" in all_text(msg)


def test_answer_without_a_table_for_text_only_kinds() -> None:
    msg = B.answer_message(make_answer(kind="budgets"))
    assert not any(t.startswith("```") for t in mrkdwn_texts(msg.blocks))


# --- lists, help, refusals ----------------------------------------------------------------------


def test_list_findings_compact_lines() -> None:
    msg = B.list_message("findings", [make_finding()])
    assert_valid(msg)
    assert "*$1,234.50/month* Idle GPU instance on `i-0abc1234def567890` · ml-research · open" in all_text(
        msg
    )


def test_list_is_cut_to_top_n_with_a_note() -> None:
    msg = B.list_message("findings", many_findings(30), limit=20)
    assert_valid(msg)
    assert "… and 10 more, see `finops findings`" in all_text(msg)


def test_list_budgets_from_statuses_and_dicts() -> None:
    status = budget_status(unconverted={"EUR": Decimal("12.5")})
    token = TokenBudgetStatus(
        "support-bot",
        Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09"),
        1000,
        500,
        750,
        [],
        "ok",
        "on-track",
        None,
    )
    msg = B.list_message("budgets", [status, status.as_dict(), token])
    assert_valid(msg)
    text = all_text(msg)
    assert "*ml-research-monthly* (team=ml-research, 2024-09): $30,000.50 of $40,000.00 (75.0%)" in text
    assert "forecast $45,000.75, over budget" in text and "12.50 EUR not converted" in text
    assert "2024-09-01 to 2024-10-01" in text  # the dict form has no label
    assert "500 tokens of 1,000 tokens (50.0%)" in text


def test_list_approvals_and_audit() -> None:
    approvals = B.list_message("approvals", [make_request()])
    assert_valid(approvals)
    assert f"`{REQUEST_ID}` Stop EC2 instance" in all_text(approvals) and "saves $734.38/month" in all_text(
        approvals
    )
    trail = B.list_message("audit", [audit_entry(seq=i) for i in range(25)])
    assert_valid(trail)
    assert f"*request.approved* by <@{OWNER}>" in all_text(trail)
    assert "… and 5 more, see `finops audit list`" in all_text(trail)


@pytest.mark.parametrize("kind", ["findings", "budgets", "approvals", "audit"])
def test_empty_lists_say_so(kind: B.ListKind) -> None:
    msg = B.list_message(kind, [])
    assert_valid(msg)
    assert texts.LIST_EMPTY[kind] in all_text(msg)


def test_unknown_list_kind_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="approvals, audit, budgets, findings"):
        B.list_message("costs", [])  # type: ignore[arg-type]


def test_help_lists_commands_and_examples() -> None:
    msg = B.help_message(["What did team search spend last week?"])
    assert_valid(msg)
    text = all_text(msg)
    assert "`/finops findings`" in text and "• What did team search spend last week?" in text


def test_refusal_is_a_short_ephemeral_with_the_reason() -> None:
    msg = B.refusal_ephemeral("U0SEARCH01 may not approve changes of team ml-research")
    assert_valid(msg)
    assert buttons(msg.blocks) == []
    assert "may not approve changes of team ml-research" in msg.text


# --- App Home ----------------------------------------------------------------------------------------


def test_home_view_with_empty_sections_is_valid_and_says_so() -> None:
    view = B.home_view([], [], [], OWNER)
    View(**{k: v for k, v in view.items() if k != "type"}, type="home").validate_json()
    text = "\n".join(mrkdwn_texts(view["blocks"]))
    assert view["type"] == "home"
    assert texts.HOME_APPROVALS_EMPTY in text and texts.HOME_BUDGETS_EMPTY in text
    assert texts.HOME_AUDIT_EMPTY in text and f"<@{OWNER}>" in text


def test_home_view_pending_approvals_have_approve_and_reject() -> None:
    view = B.home_view([make_request()], [budget_status()], [audit_entry()], OWNER)
    assert [(e["action_id"], e["value"]) for e in buttons(view["blocks"])] == [
        (B.APPROVE_ACTION, REQUEST_ID),
        (B.REJECT_ACTION, REQUEST_ID),
    ]
    text = "\n".join(mrkdwn_texts(view["blocks"]))
    assert "$30,000.50 of $40,000.00" in text and "forecast $45,000.75" in text
    assert "*request.approved*" in text


def test_home_view_stays_within_100_blocks_and_notes_what_it_leaves_out() -> None:
    requests = [make_request(id=f"req-{i}") for i in range(60)]
    view = B.home_view(requests, [budget_status()] * 30, [audit_entry(i) for i in range(80)], OWNER)
    assert len(view["blocks"]) <= B.MAX_VIEW_BLOCKS
    View(**{k: v for k, v in view.items() if k != "type"}, type="home").validate_json()
    text = "\n".join(mrkdwn_texts(view["blocks"]))
    assert "… and 50 more, see `finops approvals list`" in text
    assert "… and 70 more, see `finops audit list`" in text


# --- our own checks of the limits slack_sdk leaves unchecked -----------------------------------------


def test_more_than_50_blocks_is_refused() -> None:
    from slack_sdk.models.blocks import DividerBlock

    with pytest.raises(SlackObjectFormationError, match="at most 50 blocks"):
        B._message("x", [DividerBlock()] * 51)


def test_messages_are_frozen() -> None:
    msg = B.working_message()
    with pytest.raises(AttributeError):
        msg.text = "changed"  # type: ignore[misc]
    assert copy.deepcopy(msg) == msg
    assert msg.as_kwargs() == {"text": msg.text, "blocks": msg.blocks}


# --- the app manifest -------------------------------------------------------------------------------

#: what the Slack code calls or receives → the bot scope it needs
NEEDED_SCOPES = {
    "chat.postMessage / chat.update / chat.postEphemeral": "chat:write",
    "/finops slash command": "commands",
    "app_mention event": "app_mentions:read",
    "message.im event (DM questions)": "im:history",
    "the DM channel with a user": "im:read",
    "conversations.open (DM an owner)": "im:write",
    "users.info": "users:read",
    "users.lookupByEmail (owner from the email tag)": "users:read.email",
    "files.uploadV2 (long tables)": "files:write",
    "the team channel by name": "channels:read",
    "conversations.history of a team channel (an unrecorded message after a crash)": "channels:history",
    "conversations.history of a private team channel": "groups:history",
}
EVENTS_URL = "https://finops.example.com/slack/events"


def manifest() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config" / "slack_manifest.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_manifest_lists_every_scope_the_code_needs() -> None:
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    missing = {why: s for why, s in NEEDED_SCOPES.items() if s not in scopes}
    assert not missing
    assert len(scopes) == len(set(scopes))


def test_manifest_declares_the_command_events_home_and_interactivity() -> None:
    m = copy.deepcopy(manifest())
    assert 1 <= len(m["display_information"]["name"]) <= 35
    assert len(m["display_information"]["description"]) <= 140
    assert 174 <= len(m["display_information"]["long_description"]) <= 4000
    (command,) = m["features"]["slash_commands"]
    assert command["command"] == "/finops" and command["url"] == EVENTS_URL and command["usage_hint"]
    assert m["features"]["app_home"]["home_tab_enabled"] and m["features"]["app_home"]["messages_tab_enabled"]
    assert m["features"]["bot_user"]["display_name"]
    settings = m["settings"]
    assert settings["event_subscriptions"]["request_url"] == EVENTS_URL
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_mention",
        "message.im",
        "app_home_opened",
    }
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert settings["socket_mode_enabled"] is False
