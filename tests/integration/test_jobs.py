"""The operational jobs (``agent.jobs``) called with an injected clock: ingestion from a local folder and
from S3 (moto over HTTP, real boto3) with every file ingested once across runs and a folder taken as one
delivery; the weekly digest posted once per team channel per week to the fake Slack (real ``WebClient``),
with its figures computed independently; the scan's budget alerts once per period; approval expiry and
reconcile; owner outreach without Slack; and ``finops jobs list|run`` through typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from slack_sdk.models.blocks import Block
from typer.testing import CliRunner

from agent.jobs import (
    JOBS,
    JobError,
    JobSpec,
    JobUnavailable,
    daily_scan,
    expire_approvals,
    ingest_sources,
    notify_owners,
    reconcile,
    resolve_ref,
    weekly_digest,
)
from agent.jobs_base import JobContext
from agent.scheduler import JobRunner, cron_trigger
from agent.slack.client import make_client
from approvals.service import ApprovalService
from config.loader import parse_config
from config.model import FinOpsConfig
from config.settings import Settings
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.focus_builder import row, total, write_focus
from tests.moto_server import moto_endpoint_fixture  # noqa: F401
from tools.costs import CostQuery, open_costs, query_costs
from tools.findings import Finding, fingerprint
from tools.findings_store import upsert_findings
from tools.periods import Period
from tools.store.db import Database
from tools.store.lake import Lake

T0 = datetime(2024, 9, 23, 8, 0, tzinfo=UTC)  # Monday of ISO week 2024-W39
ALL_TIME = Period(date(2024, 1, 1), date(2025, 1, 1), "2024")


def ctx_for(
    db: Database,
    lake: Lake,
    config: FinOpsConfig,
    period: str,
    *,
    now: datetime = T0,
    slack: Any = None,
    settings: Settings | None = None,
) -> JobContext:
    return JobContext(
        db, lake, config, settings or Settings(), now, period, slack, approvals_clock=lambda: now
    )


def spend(lake: Lake, config: FinOpsConfig) -> Decimal:
    con = open_costs(lake, config)
    try:
        return query_costs(con, CostQuery(ALL_TIME, metric="billed")).total
    finally:
        con.close()


def rows_for(month: str, *costs: str, resource: str = "i-1") -> list[dict[str, Any]]:
    return [
        row(c, start=f"{month}-{i + 1:02d}T00:00:00Z", period=month, resource=f"{resource}-{i}")
        for i, c in enumerate(costs)
    ]


# --- the registry ------------------------------------------------------------------------------------------------


def test_jobs_registry_is_complete_and_lazy() -> None:
    assert list(JOBS) == [
        "ingest",
        "price-check",
        "scan",
        "notify",
        "expire-approvals",
        "reconcile",
        "weekly-digest",
        "monthly-review",
        "quarterly-review",
    ]
    for spec in JOBS.values():
        cron_trigger(spec.cron)
        if spec.ref.startswith("agent.jobs:"):
            assert callable(spec.resolve())
    # listing or scheduling never imports the jobs written elsewhere
    code = (
        "import sys, agent.jobs, agent.scheduler, agent.jobs_cli; "
        "assert 'agent.report_jobs' not in sys.modules, 'imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
    with pytest.raises(JobUnavailable, match=r"cannot import 'agent\.no_such_module' \(ModuleNotFoundError"):
        resolve_ref("agent.no_such_module:job", job="x")
    with pytest.raises(JobUnavailable, match="has no function 'nope'"):
        resolve_ref("agent.jobs:nope")


# --- ingestion ---------------------------------------------------------------------------------------------------


def test_jobs_ingest_local_folder_ingests_each_file_once_and_a_folder_as_one_delivery(
    sqlite_db: Database, lake: Lake, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    config = parse_config(
        f"operations: {{sources: [{{name: aws-payer, kind: focus, path: '{exports}', pattern: '*.csv'}}]}}"
    )
    aug = rows_for("2024-08", "10", "20")
    write_focus(exports / "BILLING_PERIOD=2024-08" / "part-1.csv", aug)
    (exports / "BILLING_PERIOD=2024-08" / "manifest.json").write_text("{}")  # not the pattern
    (exports / "BILLING_PERIOD=2024-08" / ".part-2.csv").write_text("being written")  # hidden

    first = ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T08"))
    (src,) = first["sources"]
    assert (src["files_seen"], src["files_new"], src["files_ingested"]) == (1, 1, 1)
    assert spend(lake, config) == total(aug)

    again = ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T09"))
    assert (again["sources"][0]["files_new"], again["files_ingested"]) == (0, 0)

    # a new period's folder: only it is read
    sept_1 = rows_for("2024-09", "5", "7")
    write_focus(exports / "BILLING_PERIOD=2024-09" / "part-1.csv", sept_1)
    third = ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T10"))
    assert third["files_ingested"] == 1
    assert [f["folder"].rsplit("/", 1)[1] for f in third["sources"][0]["folders"]] == [
        "BILLING_PERIOD=2024-09"
    ]
    assert spend(lake, config) == total(aug) + total(sept_1)

    # the export adds a second part to September: the folder goes in whole (no part lost, none counted twice)
    sept_2 = rows_for("2024-09", "100", resource="i-2")
    write_focus(exports / "BILLING_PERIOD=2024-09" / "part-2.csv", sept_2)
    fourth = ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T11"))
    assert (fourth["sources"][0]["files_new"], fourth["files_ingested"]) == (1, 2)
    assert spend(lake, config) == total(aug) + total(sept_1) + total(sept_2)

    # a restated part (rewritten in place) replaces what it said before
    restated = rows_for("2024-09", "6", "8")
    write_focus(exports / "BILLING_PERIOD=2024-09" / "part-1.csv", restated)
    ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T12"))
    assert spend(lake, config) == total(aug) + total(restated) + total(sept_2)
    assert ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T13"))["files_ingested"] == 0

    # a bad file fails its folder only; the run fails naming it, the next run retries it
    write_focus(exports / "BILLING_PERIOD=2024-10" / "part-1.csv", [row("oops", period="2024-10")])
    write_focus(exports / "BILLING_PERIOD=2024-11" / "part-1.csv", rows_for("2024-11", "3"))
    with pytest.raises(JobError, match="ingestion failed for source\\(s\\) aws-payer") as failed:
        ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T14"))
    (err,) = failed.value.detail["sources"][0]["errors"]
    assert err["folder"].endswith("BILLING_PERIOD=2024-10") and "part-1.csv" in err["error"]
    assert failed.value.detail["files_ingested"] == 1  # November went in


def test_jobs_ingest_does_not_read_a_local_file_unchanged_since_it_was_ingested(
    sqlite_db: Database, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.jobs
    import tools.ingest.service

    exports = tmp_path / "exports"
    write_focus(exports / "a" / "part-1.csv", rows_for("2024-08", "10"))
    config = parse_config(f"operations: {{sources: [{{name: aws-payer, kind: focus, path: '{exports}'}}]}}")
    assert ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T08"))["files_ingested"] == 1
    hashed: list[Path] = []
    real = tools.ingest.service.file_checksum

    def spy(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(tools.ingest.service, "file_checksum", spy)
    # just written: changed too close to the run that read it, so its content decides (hashed, not ingested)
    assert ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T09"))["files_ingested"] == 0
    assert len(hashed) == 1
    # long unchanged (as if the run had been later than the margin): not even read
    monkeypatch.setattr(agent.jobs, "CHANGE_MARGIN", timedelta(hours=-1))
    assert ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T10"))["files_ingested"] == 0
    assert len(hashed) == 1


def test_jobs_ingest_missing_folder_says_which_key_to_fix(
    sqlite_db: Database, lake: Lake, tmp_path: Path
) -> None:
    config = parse_config(f"operations: {{sources: [{{name: a, kind: focus, path: '{tmp_path / 'nope'}'}}]}}")
    with pytest.raises(JobError) as failed:
        ingest_sources(ctx_for(sqlite_db, lake, config, "2024-09-23T08"))
    assert "operations.sources[0].path" in failed.value.detail["sources"][0]["error"]
    assert ingest_sources(ctx_for(sqlite_db, lake, parse_config("{}"), "2024-09-23T08"))["sources"] == []


def test_jobs_ingest_s3_prefix_downloads_and_ingests_each_object_once(
    sqlite_db: Database, lake: Lake, tmp_path: Path, moto_endpoint: str
) -> None:
    bucket = f"billing-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    config = parse_config(
        f"""
aws: {{endpoint_url: "{moto_endpoint}", regions: [us-east-1]}}
operations:
  sources: [{{name: aws-payer, kind: focus, s3: "s3://{bucket}/focus/", pattern: "*.csv.gz"}}]
"""
    )

    def put(key: str, rows: list[dict[str, Any]]) -> None:
        path = write_focus(tmp_path / "upload" / uuid.uuid4().hex / "f.csv.gz", rows)
        s3.upload_file(str(path), bucket, f"focus/{key}")

    aug, sept_1 = rows_for("2024-08", "10", "20"), rows_for("2024-09", "5")
    put("data/BILLING_PERIOD=2024-08/export-00001.csv.gz", aug)
    put("data/BILLING_PERIOD=2024-09/export-00001.csv.gz", sept_1)
    s3.put_object(Bucket=bucket, Key="focus/metadata/Manifest.json", Body=b"{}")  # not the pattern
    s3.put_object(Bucket=bucket, Key="other/x.csv.gz", Body=b"")  # outside the prefix

    def run(hour: int) -> dict[str, Any]:
        result: dict[str, Any] = ingest_sources(ctx_for(sqlite_db, lake, config, f"2024-09-23T{hour:02d}"))
        return dict(result["sources"][0])

    first = run(8)
    assert (first["files_seen"], first["downloaded"], first["files_ingested"]) == (2, 2, 2)
    assert spend(lake, config) == total(aug) + total(sept_1)

    second = run(9)  # nothing new: nothing downloaded, nothing ingested
    assert (second["files_new"], second["downloaded"], second["files_ingested"]) == (0, 0, 0)

    # a second part of September arrives: it and its sibling are downloaded and go in together
    sept_2 = rows_for("2024-09", "100", resource="i-2")
    put("data/BILLING_PERIOD=2024-09/export-00002.csv.gz", sept_2)
    third = run(10)
    assert (third["files_new"], third["downloaded"], third["files_ingested"]) == (1, 2, 2)
    assert spend(lake, config) == total(aug) + total(sept_1) + total(sept_2)

    # the export rewrites August in place: re-ingested, replacing the period
    aug_restated = rows_for("2024-08", "11", "21")
    put("data/BILLING_PERIOD=2024-08/export-00001.csv.gz", aug_restated)
    fourth = run(11)
    assert (fourth["files_new"], fourth["files_ingested"]) == (1, 1)
    assert spend(lake, config) == total(aug_restated) + total(sept_1) + total(sept_2)
    assert run(12)["downloaded"] == 0
    assert not any(lake.tmp_dir().iterdir())  # downloads are removed

    missing = parse_config(
        f"""
aws: {{endpoint_url: "{moto_endpoint}"}}
operations: {{sources: [{{name: gone, kind: focus, s3: "s3://no-such-bucket-{uuid.uuid4().hex[:6]}/x/"}}]}}
"""
    )
    with pytest.raises(JobError) as failed:
        ingest_sources(ctx_for(sqlite_db, lake, missing, "2024-09-23T13"))
    assert "ListObjectsV2 s3://no-such-bucket" in failed.value.detail["sources"][0]["error"]


# --- weekly digest ------------------------------------------------------------------------------------------------

DIGEST_CONFIG = """
teams:
  - {name: search, slack_channel: "#team-search"}
  - {name: support, slack_channel: "#team-support"}
  - {name: data}
"""
EC2, S3, BEDROCK, LAMBDA = "Amazon EC2", "Amazon S3", "Amazon Bedrock", "AWS Lambda"


@pytest.fixture
def digest_world(
    sqlite_db: Database, lake: Lake, tmp_path: Path
) -> Iterator[tuple[Database, Lake, FinOpsConfig]]:
    from agent.ingest_cli import ingest

    config = parse_config(DIGEST_CONFIG)

    def r(cost: str, day: str, team: str, service: str) -> dict[str, Any]:
        return row(
            cost,
            start=f"2024-09-{day}T00:00:00Z",
            service=service,
            resource=f"{team}-{service}-{day}",
            tags={"team": team},
        )

    rows = [
        # week before (Sep 9-15) and last week (Sep 16-22) of the digest sent on Monday Sep 23 (2024-W39)
        r("60", "10", "search", EC2),
        r("30", "11", "search", S3),
        r("100", "16", "search", EC2),
        r("30", "18", "search", S3),
        r("80", "12", "support", BEDROCK),
        r("5", "13", "support", LAMBDA),
        r("50", "17", "support", BEDROCK),
        r("1000", "05", "search", EC2),  # earlier: in neither week
        r("999", "23", "search", EC2),  # the digest's own week: not yet
        r("40", "17", "data", EC2),  # a team without a channel
    ]
    ingest(sqlite_db, lake, config, "focus", [write_focus(tmp_path / "focus.csv", rows)], "aws-payer")
    upsert_findings(
        sqlite_db,
        [
            Finding(
                kind="waste",
                rule_id="idle-gpu-instance",
                fingerprint=fingerprint("t", str(i)),
                title=f"finding {i}",
                monthly_impact=Decimal(amount),
                detected_at=T0,
                scope={"team": "search"},
            )
            for i, amount in enumerate(["100", "20.50"])
        ],
        config,
        T0,
    )
    yield sqlite_db, lake, config


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_jobs_weekly_digest_posts_once_per_team_channel_per_week(
    digest_world: tuple[Database, Lake, FinOpsConfig], slack: FakeSlack
) -> None:
    db, lake, config = digest_world
    settings = Settings(slack_bot_token=BOT_TOKEN, slack_api_url=slack.base_url)
    client = make_client(settings)
    ctx = ctx_for(db, lake, config, "2024-W39", slack=client, settings=settings)

    summary = weekly_digest(ctx)
    assert summary["sent"] == ["search", "support"] and summary["no_channel"] == ["data"]
    assert summary["week"] == "2024-09-16 to 2024-09-22"
    posts = {c.params["channel"]: c.params for c in slack.calls("chat.postMessage")}
    assert set(posts) == {"#team-search", "#team-support"}
    search = posts["#team-search"]["text"]
    # last week 100 + 30 = 130 against 60 + 30 = 90 the week before: +40 (+44.4%); 2 findings, 120.50 a month
    assert "$130.00 from Sep 16 to Sep 22 (+$40.00 (+44.4%) on the week before); 2 open finding(s)" in search
    support = posts["#team-support"]["text"]
    assert "$50.00 from Sep 16 to Sep 22 (-$35.00 (-41.2%) on the week before); 0 open finding(s)" in support
    for post in posts.values():  # Block Kit that Slack accepts
        for block in post["blocks"]:
            Block.parse(block).validate_json()  # type: ignore[union-attr]
    search_blocks = json.dumps(posts["#team-search"]["blocks"])
    assert "Amazon EC2: $100.00 (+$40.00 (+66.7%))" in search_blocks  # the only mover
    assert "Amazon S3" not in search_blocks
    assert "2, worth $120.50 a month" in search_blocks
    support_blocks = json.dumps(posts["#team-support"]["blocks"])
    assert support_blocks.index("Amazon Bedrock") < support_blocks.index("AWS Lambda")  # largest change first

    # the same week again (a retry, a takeover, a forced re-run): nothing more is posted
    again = weekly_digest(ctx)
    assert again["sent"] == [] and again["already_sent"] == ["search", "support"]
    assert len(slack.calls("chat.postMessage")) == 2

    # the next week: one channel fails; the run fails, and its retry sends only that one
    slack.fail_next("chat.postMessage", "not_in_channel")
    runner = JobRunner(
        db, config, settings, holder="t", clock=lambda: T0 + timedelta(days=7), lake=lake, slack=client
    )
    failed = runner.run("weekly-digest")
    assert failed.status == "failed" and failed.period == "2024-W40"
    assert "#team-search: not_in_channel" in str(failed.error) and failed.summary["sent"] == ["support"]
    retried = runner.run("weekly-digest")
    assert retried.status == "succeeded" and retried.summary["sent"] == ["search"]
    week_40 = [(c.params["channel"], c.response["ok"]) for c in slack.calls("chat.postMessage")[2:]]
    assert week_40 == [("#team-search", False), ("#team-support", True), ("#team-search", True)]


def test_jobs_without_slack_skip_sending_and_say_so(sqlite_db: Database, lake: Lake) -> None:
    config = parse_config(DIGEST_CONFIG)
    for job in (notify_owners, weekly_digest):
        out = job(ctx_for(sqlite_db, lake, config, "2024-W39"))
        assert out["skipped"] is True and "SLACK_BOT_TOKEN is not set" in out["note"]


# --- scan, approvals -------------------------------------------------------------------------------------------------


def test_jobs_daily_scan_fires_a_budget_alert_once_per_budget_period(
    sqlite_db: Database, lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.ingest_cli import ingest

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)  # no cloud inventory in this test
    for key in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(key, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = parse_config(
        "teams: [{name: search}]\n"
        "budgets: [{name: search-monthly, scope: {team: search}, amount: 100, thresholds: [0.5, 1.0]}]"
    )
    rows = [
        row("60", start=f"2024-09-{d:02d}T00:00:00Z", resource=f"i-{d}", tags={"team": "search"})
        for d in (1, 2)
    ]
    ingest(sqlite_db, lake, config, "focus", [write_focus(tmp_path / "f.csv", rows)], "aws-payer")

    first = daily_scan(
        ctx_for(sqlite_db, lake, config, "2024-09-21", now=datetime(2024, 9, 21, 6, tzinfo=UTC))
    )
    assert "no AWS credentials" in first["cloud"]
    assert len(first["new_alerts"]) == 2 and all("search-monthly" in t for t in first["new_alerts"])
    second = daily_scan(
        ctx_for(sqlite_db, lake, config, "2024-09-22", now=datetime(2024, 9, 22, 6, tzinfo=UTC))
    )
    assert second["new_alerts"] == []  # the next day's scan fires nothing again


def test_jobs_expire_approvals_and_reconcile(sqlite_db: Database, lake: Lake) -> None:
    config = parse_config(
        "teams: [{name: support, owners: [{slack_id: U0SUPPORT1}], approvers: [U0SUPPORT2]}]"
    )
    fp = fingerprint("token-budget-breach", "support-bot")
    finding = Finding(
        kind="waste",
        rule_id="token-budget-breach",
        fingerprint=fp,
        title="support-bot crossed its token budget",
        monthly_impact=Decimal("120"),
        detected_at=T0,
        resource="project:support-bot",
        resource_kind="llm-project",
        scope={"team": "support", "project": "support-bot"},
        proposed_action="set-rate-limit",
        action_params={"project": "support-bot", "tokens_per_month": 1_000_000},
    )
    upsert_findings(sqlite_db, [finding], config, T0)
    request_id = ApprovalService(sqlite_db, config, clock=lambda: T0).propose(fp).request_id

    soon = expire_approvals(
        ctx_for(sqlite_db, lake, config, "2024-09-23T08:15", now=T0 + timedelta(minutes=15))
    )
    assert soon["expired"] == []
    later = T0 + timedelta(days=30)
    assert expire_approvals(ctx_for(sqlite_db, lake, config, "2024-10-23T08:00", now=later))["expired"] == [
        request_id
    ]
    assert ApprovalService(sqlite_db, config).show(request_id)["status"] == "expired"
    assert reconcile(ctx_for(sqlite_db, lake, config, "2024-10-23T08:00", now=later)) == {
        "reconciled": [],
        "settled": 0,
        "messages_updated": 0,
    }


# --- finops jobs list | run ---------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, list[str]]:
    """The `finops` app with the jobs commands (registered by agent.cli, or here on a fresh app until then),
    and the global options pointing at a fresh database and a config with one local source."""
    from agent import cli as cli_module
    from agent.jobs_cli import register

    app = cli_module.app
    if not any(g.name == "jobs" for g in app.registered_groups):
        app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
        app.callback()(cli_module.main_callback)
        register(app)
    exports = tmp_path / "exports"
    write_focus(exports / "p" / "part-1.csv", rows_for("2024-09", "5", "7"))
    config = tmp_path / "finops.yaml"
    config.write_text(
        f"operations:\n  sources: [{{name: aws-payer, kind: focus, path: '{exports}'}}]\n"
        '  schedules: {scan: "30 7 * * *", weekly-digest: "off"}\n'
    )
    monkeypatch.setenv("FINOPS_HOME", str(tmp_path / "home"))
    for key in ("SLACK_BOT_TOKEN", "FINOPS_SLACK_BOT_TOKEN", "FINOPS_AS_OF", "FINOPS_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return app, ["--db", f"sqlite:///{tmp_path / 'finops.db'}", "--config", str(config)]


def test_jobs_cli_list_shows_schedules_runs_availability_and_the_lease(
    cli: tuple[typer.Typer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, opts = cli
    runner = CliRunner()
    monkeypatch.setitem(
        JOBS, "broken", JobSpec("broken", "agent.no_such_module:job", "daily", "0 4 * * *", "not written yet")
    )
    assert runner.invoke(app, [*opts, "jobs", "run", "ingest", "--period", "2024-09-23T08"]).exit_code == 0

    out = runner.invoke(app, [*opts, "--as-of", "2024-09-23", "jobs", "list", "--format", "json"])
    assert out.exit_code == 0, out.output
    listing = json.loads(out.output)
    jobs = {j["name"]: j for j in listing["jobs"]}
    assert set(jobs) == set(JOBS)
    assert (jobs["scan"]["schedule"], jobs["scan"]["configured"]) == ("30 7 * * *", True)
    assert jobs["scan"]["next_run"] == "2024-09-23T07:30:00+00:00"
    assert jobs["weekly-digest"]["schedule"] == "off" and jobs["weekly-digest"]["next_run"] is None
    assert (jobs["ingest"]["last_status"], jobs["ingest"]["last_period"]) == ("succeeded", "2024-09-23T08")
    assert jobs["broken"]["available"] is False
    assert "No module named 'agent.no_such_module'" in jobs["broken"]["unavailable_because"]
    assert listing["lease"]["free"] is True

    table = runner.invoke(app, [*opts, "jobs", "list"])
    assert table.exit_code == 0, table.output
    assert "unavailable: job 'broken': cannot import 'agent.no_such_module'" in table.output
    assert "scheduler lease: free" in table.output and "succeeded 2024-09-23T08" in table.output


def test_jobs_cli_run_claims_the_period_and_force_says_it_reruns(cli: tuple[typer.Typer, list[str]]) -> None:
    app, opts = cli
    runner = CliRunner()
    first = runner.invoke(app, [*opts, "jobs", "run", "ingest", "--period", "2024-09-23T08"])
    assert first.exit_code == 0, first.output
    assert "ingest 2024-09-23T08: succeeded" in first.output and '"files_ingested": 1' in first.output

    second = runner.invoke(app, [*opts, "jobs", "run", "ingest", "--period", "2024-09-23T08"])
    assert second.exit_code == 0
    assert "not run — ingest already succeeded for 2024-09-23T08" in second.output
    assert "--force runs it again" in second.output

    forced = runner.invoke(app, [*opts, "jobs", "run", "ingest", "--period", "2024-09-23T08", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "note: forced re-run: this period succeeded before (attempt 1)" in forced.output
    assert "(attempt 2)" in forced.output and '"files_ingested": 0' in forced.output  # the ledger still holds

    as_json = runner.invoke(app, [*opts, "jobs", "run", "expire-approvals", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["status"] == "succeeded"

    unknown = runner.invoke(app, [*opts, "jobs", "run", "nope"])
    assert (
        unknown.exit_code == 2 and "no job named 'nope'; the jobs are: ingest, price-check" in unknown.output
    )
    bad = runner.invoke(app, [*opts, "jobs", "run", "scan", "--period", "2024-W38"])
    assert bad.exit_code == 2 and "not a daily period; write it like '2024-09-21'" in bad.output


def test_jobs_cli_failed_run_exits_1_and_shows_the_error(
    cli: tuple[typer.Typer, list[str]], tmp_path: Path
) -> None:
    app, opts = cli
    write_focus(tmp_path / "exports" / "bad" / "part-1.csv", [row("oops")])
    result = CliRunner().invoke(app, [*opts, "jobs", "run", "ingest", "--period", "2024-09-23T08"])
    assert result.exit_code == 1
    assert (
        "ingest 2024-09-23T08: failed" in result.output
        and "ingestion failed for source(s) aws-payer" in result.output
    )
    assert "run the same command again to retry it" in result.output


def test_a_job_run_for_a_past_period_decides_approvals_on_the_wall_clock(
    sqlite_db: Database, lake: Lake
) -> None:
    """`finops jobs run expire-approvals --period <past>` must not judge expiry (or stamp the audit trail) in
    the past: the period picks the data, approvals live on the real clock."""
    from agent.jobs import _approval_service

    config = parse_config("currency: USD")
    ctx = JobContext(sqlite_db, lake, config, Settings(), T0, "2024-09-23T08:15")
    before = datetime.now(UTC)
    assert _approval_service(ctx).clock() >= before > T0
