"""Every sentence the Slack app shows a user, in one place (as slack_bolt/logger/messages.py does).

The functions only arrange words. Their arguments are already formatted for Slack mrkdwn by
``agent.slack.blocks`` (data values escaped, amounts formatted, dates as Slack date tokens), so wording can
change here without touching escaping or layout.
"""

from __future__ import annotations

# --- buttons and confirmation dialogs (plain text; buttons: at most 75 characters) ------------------

APPROVE = "Approve"
REJECT = "Reject"
SNOOZE = "Snooze 7 days"
NOT_WASTE = "Not waste"
ROLLBACK = "Roll back"

APPROVE_CONFIRM_TITLE = "Approve this change?"
APPROVE_CONFIRM_YES = "Approve"
ROLLBACK_CONFIRM_TITLE = "Roll back this change?"
ROLLBACK_CONFIRM_YES = "Roll back"
CONFIRM_NO = "Cancel"
ROLLBACK_CONFIRM_TEXT = "The state saved before the change is restored and checked afterwards."


def approve_confirm(summary: str) -> str:
    return f"{summary}\nThe resource is read again before anything runs; you can roll back afterwards."


# --- a finding --------------------------------------------------------------------------------------

LABEL_WHAT = "What"
LABEL_EVIDENCE = "Evidence"
LABEL_MONTHLY = "$ per month"
LABEL_TEAM = "Team"
LABEL_OWNER = "Owner"
LABEL_ENVIRONMENT = "Environment"
LABEL_SEVERITY = "Severity"
LABEL_PROPOSED_FIX = "Proposed fix"
LABEL_CHANGES = "Changes"
LABEL_BLAST_RADIUS = "Blast radius"
LABEL_SAVINGS = "Est. savings per month"
LABEL_APPROVALS = "Approvals"
LABEL_EXPIRES = "Expires"
NOT_SET = "not set"
NOT_AVAILABLE = "n/a"
UNKNOWN = "unknown"
NO_TEAM = "no team"


def per_month(amount: str) -> str:
    return f"{amount}/month"


def resource_line(resource: str, kind: str | None) -> str:
    return f"Resource {resource} ({kind})" if kind else f"Resource {resource}"


def evidence_cut(command: str) -> str:
    return f"_Evidence shortened; {command} shows all of it._"


def more_changes(count: int) -> str:
    return f"… and {count} more change{'s' if count != 1 else ''}"


def approvals_given(given: str, required: str) -> str:
    return f"{given} of {required} given"


def approvers(names: str) -> str:
    return f"Who may approve: {names}"


def recommendation_only(recommendation: str) -> str:
    return f"No automatic fix; recommendation: {recommendation}"


def fix_not_proposed(action: str, command: str) -> str:
    return f"A fix ({action}) can be proposed: {command}"


NO_FIX = "No automatic fix for this finding."
DRY_RUN = ":test_tube: Dry run: approving plans and audits the change; nothing in the cloud is touched."
NOT_REVERSIBLE = ":warning: This change cannot be rolled back automatically."
FINDING_ID = "Finding"
REQUEST_ID = "Request"


def finding_fallback(title: str, amount: str) -> str:
    return f"FinOps finding: {title} ({amount}/month)"


def request_fallback(title: str, status: str) -> str:
    return f"FinOps: {title}: {status}"


# --- the state of a finding (snooze, not waste ...) ----------------------------------------------------


def finding_snoozed(until: str, by: str | None) -> str:
    who = f" by {by}" if by else ""
    return f":zzz: Snoozed{who} until {until}."


def finding_not_waste(by: str | None) -> str:
    who = f" by {by}" if by else ""
    return f":ok_hand: Marked not waste{who}; this finding will not be raised again."


RESOLVED = ":broom: Resolved: the last scan no longer sees this waste."


# --- the state of a remediation request ------------------------------------------------------------


def status_pending(given: str, required: str, by: str | None) -> str:
    if by:
        return f":hourglass: Approved by {by} ({given} of {required}); waiting for another approver."
    return f":hourglass: Waiting for approval ({given} of {required} given)."


def _at(when: str) -> str:
    return f" {when}" if when else ""


def status_approved(by: str, when: str) -> str:
    return f":white_check_mark: Approved by {by}{_at(when)}. Executing…"


EXECUTING = ":gear: Executing the approved change…"


def approved_by(who: str, when: str) -> str:
    return f"Approved by {who}{_at(when)}."


def status_succeeded(when: str, detail: str, state: str | None) -> str:
    verified = f" Verified state: *{state}*." if state else ""
    return f":white_check_mark: Done{_at(when)}: {detail}.{verified}"


def status_failed(when: str, detail: str) -> str:
    return f":x: Execution failed{_at(when)}: {detail}"


DRY_RUN_DONE = ":test_tube: Dry run: the change was planned and audited; nothing was changed."
ROLLING_BACK = ":leftwards_arrow_with_hook: Rolling back…"


def status_rolled_back(by: str, when: str, detail: str) -> str:
    return f":leftwards_arrow_with_hook: Rolled back by {by}{_at(when)}. {detail}".rstrip()


def status_rollback_failed(when: str, detail: str) -> str:
    return f":rotating_light: Rollback failed{_at(when)}: {detail}. The FinOps team has to look at it."


def status_rejected(by: str, when: str, reason: str | None) -> str:
    why = f": {reason}" if reason else "."
    return f":no_entry_sign: Rejected by {by}{_at(when)}{why}"


def status_expired(when: str) -> str:
    return f":alarm_clock: Expired{_at(when)} without enough approvals; nothing was changed."


def status_cancelled(by: str, when: str, reason: str | None) -> str:
    why = f": {reason}" if reason else "."
    return f":heavy_multiplication_x: Cancelled by {by}{_at(when)}{why}"


def status_superseded(reason: str | None) -> str:
    why = f" ({reason})" if reason else ""
    return (
        f":arrows_counterclockwise: Not executed: the resource changed since the approval{why}. "
        "A fresh request needs a new approval."
    )


def status_other(status: str) -> str:
    return f"Status: {status}"


# --- digest ----------------------------------------------------------------------------------------


def digest_header(count: int) -> str:
    return f"{count} new FinOps finding{'s' if count != 1 else ''}"


def digest_summary(count: int, total: str, team: str | None) -> str:
    whose = f" for team *{team}*" if team else ""
    return f"*{count}* new finding{'s' if count != 1 else ''}{whose}: *{total}/month* at stake."


def digest_top(shown: int, count: int) -> str:
    return f"The {shown} largest, by $ per month:" if shown < count else "Largest first:"


def digest_more(count: int, command: str) -> str:
    return f"… and {count} more finding{'s' if count != 1 else ''}, see {command}"


def digest_fallback(count: int, total: str, team: str | None) -> str:
    whose = f" for team {team}" if team else ""
    return f"{count} new FinOps finding{'s' if count != 1 else ''}{whose}: {total}/month at stake"


# --- answers to cost questions -------------------------------------------------------------------

WORKING = ":hourglass_flowing_sand: Working on it…"
WORKING_FALLBACK = "Working on it…"
LABEL_PERIOD = "Period"
LABEL_FILTERS = "Filters"
LABEL_METRIC = "Metric"
LABEL_BY = "By"
LABEL_RERUN = "Re-run"
NO_FILTER = "none"
NOT_UNDERSTOOD = "I could not read that question. Questions I can answer:"


def text_cut(command: str | None) -> str:
    return f"_Answer shortened; {command} gives all of it._" if command else "_Answer shortened._"


def table_more(count: int, command: str | None) -> str:
    where = f"; {command} lists them" if command else ""
    return f"_… {count} more row{'s' if count != 1 else ''} not shown{where}._"


def period(start: str, last_day: str, label: str) -> str:
    return f"{label} ({start} to {last_day})" if label else f"{start} to {last_day}"


# --- /finops lists -------------------------------------------------------------------------------

LIST_TITLES = {
    "findings": "Findings",
    "budgets": "Budgets",
    "approvals": "Remediation requests",
    "audit": "Audit trail",
}
LIST_EMPTY = {
    "findings": "No findings. :tada:",
    "budgets": "No budgets are configured (`budgets:` in finops.yaml).",
    "approvals": "No remediation requests.",
    "audit": "No audit entries.",
}


def list_more(count: int, command: str) -> str:
    return f"… and {count} more, see {command}"


def list_fallback(title: str, count: int) -> str:
    return f"{title}: {count}"


def budget_line(name: str, scope: str, period: str, actual: str, amount: str, used: str) -> str:
    return f"*{name}* ({scope}, {period}): {actual} of {amount} ({used})"


def budget_forecast(forecast: str, status: str) -> str:
    return f"forecast {forecast}, {status}"


def budget_unconverted(amounts: str) -> str:
    return f"plus {amounts} not converted (no rate in finops.yaml)"


ALL_SPEND = "all spend"
FORECAST_STATUS = {"on-track": "on track", "over": "over budget"}


def tokens(count: str) -> str:
    return f"{count} tokens"


def audit_line(when: str, event: str, actor: str, resource: str | None, request: str | None) -> str:
    on = f" on {resource}" if resource else ""
    req = f" ({request})" if request else ""
    return f"{when} *{event}* by {actor}{on}{req}"


def request_line(request: str, summary: str, savings: str, status: str, approvals: str) -> str:
    return f"{request} {summary}: saves {savings}/month · {status} ({approvals})"


def finding_line(amount: str, title: str, resource: str | None, team: str, status: str, ident: str) -> str:
    on = f" on {resource}" if resource else ""
    return f"*{amount}/month* {title}{on} · {team} · {status} · {ident}"


# --- help, refusals --------------------------------------------------------------------------------

HELP_TITLE = "FinOps assistant"
HELP_INTRO = "Ask about cloud and AI spend in plain words, or use a command:"
HELP_COMMANDS = (
    ("/finops [question]", "a cost question, e.g. what did team search spend last week?"),
    ("/finops findings", "open findings, largest first"),
    ("/finops budgets", "budgets: month to date vs amount, with the forecast"),
    ("/finops approvals", "remediation requests waiting for a decision"),
    ("/finops audit [resource | @user | last 20]", "the audit trail"),
    ("/finops help", "this help"),
)
HELP_EXAMPLES = "Questions to try:"
HELP_FALLBACK = (
    "FinOps assistant: ask a cost question or use /finops findings, budgets, approvals, audit, help"
)


def refusal(reason: str) -> str:
    return f":no_entry: Not done: {reason}"


def refusal_fallback(reason: str) -> str:
    return f"Not done: {reason}"


# --- App Home ------------------------------------------------------------------------------------

HOME_TITLE = "FinOps"


def home_greeting(user: str) -> str:
    return f"Hello {user}. What waits for you, your team's spend and what happened lately."


HOME_APPROVALS = "Waiting for your approval"
HOME_APPROVALS_EMPTY = "Nothing waits for your approval."
HOME_BUDGETS = "Your team's spend, month to date"
HOME_BUDGETS_EMPTY = "No budget covers your team yet (`budgets:` in finops.yaml)."
HOME_AUDIT = "Latest on your resources"
HOME_AUDIT_EMPTY = "Nothing happened on your resources yet."


def home_more(count: int, command: str) -> str:
    return f"… and {count} more, see {command}"


REJECT_MODAL_TITLE = "Reject the change"
REJECT_REASON_LABEL = "Why? (recorded in the audit trail)"


def reject_modal_intro(summary: str) -> str:
    return f"Reject *{summary}*? Nothing will be changed."


INTAKE_TITLE = "Register an AI service"
INTAKE_SUBMIT = "Register"
INTAKE_INTRO = (
    "Register a feature that calls LLMs, so its spend has an owner and a budget. "
    "Usage from unregistered features is flagged by the unregistered-feature rule."
)
INTAKE_FEATURE = "Feature"
INTAKE_FEATURE_HINT = "Its name as in usage tags, e.g. support-chat"
INTAKE_ENVIRONMENT = "Environment"
INTAKE_ENVIRONMENT_HINT = "prod, staging, dev … or * for every environment"
INTAKE_TEAM = "Team"
INTAKE_TEAM_HINT = "The owning team"
INTAKE_OWNER = "Owner"
INTAKE_USE_CASE = "Use case"
INTAKE_USE_CASE_HINT = "What the feature does with the models"
INTAKE_MODELS = "Models"
INTAKE_MODELS_HINT = "Comma-separated, e.g. gpt-4o-mini, claude-3-5-haiku"
INTAKE_SPEND = "Estimated monthly spend"


def intake_done(feature: str, environment: str, team: str, created: bool) -> str:
    verb = "Registered" if created else "Updated"
    return f":white_check_mark: {verb} *{feature}* ({environment}) for team {team}."
