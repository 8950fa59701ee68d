"""The LLM / cost waste rules on small lakes built through the real ingestion (and, if present, the demo)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from approvals.actions import ACTION_TYPES
from config.model import FeatureValue, FinOpsConfig, TokenBudget
from tests.demo_org import DEMO_NOW, DemoOrg
from tests.focus_builder import row, write_focus
from tests.usage_builder import ingest, usage
from tools.costs import open_costs
from tools.findings import Finding, fingerprint
from tools.ingest.records import UsageRecord
from tools.ingest.service import Ingestor
from tools.rules import load_rules, registry
from tools.rules.base import Rule, RuleContext
from tools.rules.premium_model import approved_name, canonical_model, is_version_of, model_family
from tools.store.lake import Lake

NOW = datetime(2024, 9, 21, 8, 0, tzinfo=UTC)
LLM_RULES = (
    "premium-model-downgrade",
    "unapproved-model",
    "prompt-caching-opportunity",
    "batch-opportunity",
    "feature-below-roi",
    "untagged-spend",
    "gpu-commitment-coverage",
    "token-budget-breach",
)
#: every day of the default 30-day window [2024-08-22, 2024-09-21)
WINDOW_DAYS = [date(2024, 8, 22) + timedelta(days=i) for i in range(30)]


def run(rule_id: str, lake: Lake | None, config: FinOpsConfig, **params: Any) -> list[Finding]:
    load_rules()
    cls = registry.get(rule_id)
    rule = cls(cls.Params.model_validate(params))
    ctx = RuleContext(config=config, now=NOW, costs=open_costs(lake) if lake is not None else None)
    return list(rule.evaluate(ctx))


def with_config(config: FinOpsConfig, **update: Any) -> FinOpsConfig:
    return config.model_copy(update=update)


def llm(
    day: str = "2024-09-10",
    *,
    model: str = "gpt-4o",
    feature: str | None = "support-chat",
    environment: str = "prod",
    team: str = "support",
    batch: bool = False,
    **kw: Any,
) -> UsageRecord:
    attrs: dict[str, Any] = {
        "team": team,
        "environment": environment,
        **({"feature": feature} if feature else {}),
    }
    record = usage(day, model=model, **attrs, **kw)
    return replace(record, batch=True) if batch else record


def ingest_usage(ingestor: Ingestor, tmp_path: Path, records: list[UsageRecord]) -> None:
    ingest(ingestor, tmp_path, records)


# ----- the contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule_id", LLM_RULES)
def test_rule_declares_the_contract(rule_id: str) -> None:
    load_rules()
    cls: type[Rule] = registry.get(rule_id)
    assert cls.id == rule_id
    assert cls.title and cls.resource_kind and cls.description()
    assert cls.action is None or cls.action in ACTION_TYPES
    assert cls.evidence_fields
    params = cls.Params()
    assert params.enabled


@pytest.mark.parametrize("rule_id", LLM_RULES)
def test_rule_without_a_cost_lake_yields_nothing(rule_id: str, config: FinOpsConfig) -> None:
    assert run(rule_id, None, config) == []


@pytest.mark.parametrize(
    ("model", "name", "expected"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o", True),
        ("gpt-4o-mini-2024-07-18", "gpt-4o", False),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", True),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku", True),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", True),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4", False),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet", True),
        ("openai/gpt-4o", "gpt-4o", True),
    ],
)
def test_model_versions(model: str, name: str, expected: bool) -> None:
    assert is_version_of(model, name) is expected


def test_model_families_and_approval() -> None:
    assert model_family("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert model_family("gpt-4o-2024-08-06") == "gpt-4o"
    assert model_family("anthropic.claude-3-5-sonnet-20241022-v2:0") == "claude-3-5-sonnet"
    assert model_family("some-inhouse-model") is None
    assert canonical_model("Bedrock/US.Anthropic.Claude-3-5-Haiku") == "claude-3-5-haiku"
    assert approved_name("gpt-4o-2024-08-06", ["gpt-4o-mini", "gpt-4o"]) == "gpt-4o"
    assert approved_name("gpt-4.1", ["gpt-4o", "gpt-4o-mini"]) is None


# ----- premium-model-downgrade ----------------------------------------------------------------------------
def test_premium_model_downgrade_proposes_the_approved_cheaper_tier(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    # 10,000 requests of 3,000 input / 300 output tokens on gpt-4o ($2.50 / $10 per 1M), 1 000 a day
    days = [f"2024-09-{d:02d}" for d in range(1, 11)]
    ingest_usage(
        ingestor,
        tmp_path,
        [llm(d, input_tokens=3_000_000, output=300_000, requests=1000) for d in days],
    )
    [f] = run("premium-model-downgrade", lake, config)
    assert f.rule_id == "premium-model-downgrade"
    assert f.kind == "waste"
    assert f.proposed_action == "switch-llm-model"
    assert f.action_params == {
        "feature": "support-chat",
        "environment": "prod",
        "from_model": "gpt-4o",
        "to_model": "gpt-4o-mini",
    }
    # gpt-4o: 30M x 2.5 + 3M x 10 = $105; gpt-4o-mini: 30M x 0.15 + 3M x 0.6 = $6.30
    assert f.evidence["cost_current_model"] == "105.00"
    assert f.evidence["cost_target_model"] == "6.30"
    assert f.monthly_impact == Decimal("98.70")
    assert f.evidence["avg_input_tokens"] == 3000
    assert f.scope["team"] == "support" and f.scope["feature"] == "support-chat"
    assert f.fingerprint == fingerprint("premium-model-downgrade", "openai", "gpt-4o", "prod", "support-chat")
    # a 14-day look-back sees 4 of the 10 days ($42 - $2.52), scaled from 14 to 30 days
    [short] = run("premium-model-downgrade", lake, config, days=14)
    assert short.monthly_impact == Decimal("84.60")


def test_premium_model_downgrade_claude_family(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            llm(
                provider="anthropic",
                model="claude-3-5-sonnet-20241022",
                input_tokens=20_000_000,
                output=1_000_000,
                requests=5000,
            )
        ],
    )
    [f] = run("premium-model-downgrade", lake, config)
    assert f.action_params["to_model"] == "claude-3-5-haiku"
    # sonnet: 20M x 3 + 1M x 15 = $75; haiku 3.5: 20M x 0.8 + 1M x 4 = $20
    assert f.monthly_impact == Decimal("55.00")


def test_premium_model_downgrade_negative_cases(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            # long prompts (avg 10,000 input tokens): the larger model stays
            llm(feature="contract-review", input_tokens=50_000_000, output=100_000, requests=5000),
            # already on the cheap tier
            llm(feature="query-rewrite", model="gpt-4o-mini", input_tokens=50_000_000, requests=50_000),
            # before the window
            llm("2024-08-01", feature="old-feature", input_tokens=50_000_000, requests=50_000),
            # no feature: nothing to route
            llm(feature=None, input_tokens=50_000_000, requests=50_000),
        ],
    )
    assert run("premium-model-downgrade", lake, config) == []
    # the cheaper tier is not approved for the environment
    ingest_usage(ingestor, tmp_path, [llm(environment="dev", input_tokens=30_000_000, requests=10_000)])
    only_4o = with_config(config, approved_models={"prod": ["gpt-4o"], "dev": ["gpt-4o"]})
    assert run("premium-model-downgrade", lake, only_4o) == []
    assert [f.scope["environment"] for f in run("premium-model-downgrade", lake, config)] == ["dev"]


# ----- unapproved-model ---------------------------------------------------------------------------------
def test_unapproved_model_in_dev_switches_to_the_cheapest_approved_model(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            llm(model="gpt-4o-2024-08-06", environment="dev", feature="playground", cost="12", requests=40),
            # approved: a dated version of an approved name, and a Bedrock id of an approved model
            llm(model="gpt-4o-2024-08-06", environment="prod", cost="50"),
            llm(provider="aws.bedrock", model="anthropic.claude-3-5-haiku-20241022-v1:0", cost="5"),
            # staging has no approved list: not governed
            llm(model="gpt-4-turbo", environment="staging", cost="5"),
        ],
    )
    [f] = run("unapproved-model", lake, config)
    assert f.rule_id == "unapproved-model"
    assert f.kind == "governance"
    assert f.proposed_action == "switch-llm-model"
    assert f.action_params == {
        "feature": "playground",
        "environment": "dev",
        "from_model": "gpt-4o-2024-08-06",
        "to_model": "gpt-4o-mini",
    }
    assert f.monthly_impact == Decimal("12.00")  # no bill: the usage's own cost, as allocated (estimate)
    assert f.evidence["approved_models"] == ["gpt-4o-mini", "claude-3-5-haiku", "llama-3.1-8b-instruct"]


def test_unapproved_model_prefix_is_version_aware_and_notifies_without_a_same_vendor_model(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            llm(model="gpt-4o-mini-2024-07-18", feature="faq", cost="3"),
            llm(provider="gcp.vertex_ai", model="gemini-1.5-pro-002", feature="faq", cost="9"),
        ],
    )
    cfg = with_config(config, approved_models={"prod": ["gpt-4o"]})  # gpt-4o does not approve gpt-4o-mini
    by_model = {f.scope["model"]: f for f in run("unapproved-model", lake, cfg)}
    assert set(by_model) == {"gpt-4o-mini-2024-07-18", "gemini-1.5-pro-002"}
    assert by_model["gpt-4o-mini-2024-07-18"].action_params["to_model"] == "gpt-4o"
    gemini = by_model["gemini-1.5-pro-002"]
    assert gemini.proposed_action is None and gemini.action_params == {}
    assert gemini.monthly_impact == Decimal("9.00")
    # everything approved: nothing to report
    cfg = with_config(config, approved_models={"prod": ["gpt-4o-mini", "gemini-1.5-pro"]})
    assert run("unapproved-model", lake, cfg) == []


# ----- prompt-caching-opportunity ---------------------------------------------------------------------------
def test_prompt_caching_opportunity(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            # 2,000 requests of 5,000 uncached input tokens, no cache reads
            llm(feature="doc-qa", input_tokens=10_000_000, output=200_000, requests=2000),
            # well cached already (50 % of input read from cache)
            llm(feature="rag", input_tokens=5_000_000, cache_read=5_000_000, requests=2000),
            # small prompts
            llm(feature="classify", input_tokens=1_000_000, requests=2000),
            # a price override without a cache discount: no saving
            llm(
                provider="openai",
                model="llama-3.1-8b-instruct",
                feature="ad-copy",
                input_tokens=10_000_000,
                requests=1000,
            ),
        ],
    )
    [f] = run("prompt-caching-opportunity", lake, config)
    assert f.rule_id == "prompt-caching-opportunity"
    assert f.scope["feature"] == "doc-qa"
    assert f.proposed_action is None
    # half of 10M uncached tokens at $1.25 instead of $2.50 per 1M
    assert f.monthly_impact == Decimal("6.25")
    assert f.evidence["avg_uncached_input_tokens"] == 5000
    assert f.evidence["cache_read_share"] == 0.0
    assert run("prompt-caching-opportunity", lake, config, min_avg_input_tokens=6000) == []
    [bigger] = run("prompt-caching-opportunity", lake, config, cacheable_share="0.8")
    assert bigger.monthly_impact == Decimal("10.00")


# ----- batch-opportunity ----------------------------------------------------------------------------------
def test_batch_opportunity(ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            # a nightly report on demand: 100M input + 10M output on gpt-4o-mini = $21
            llm(feature="nightly-report", model="gpt-4o-mini", input_tokens=100_000_000, output=10_000_000),
            # an eval suite already on the Batch API
            llm(feature="eval-suite", model="gpt-4o-mini", input_tokens=100_000_000, batch=True),
            # interactive
            llm(feature="support-chat", model="gpt-4o-mini", input_tokens=100_000_000),
        ],
    )
    [f] = run("batch-opportunity", lake, config)
    assert f.rule_id == "batch-opportunity"
    assert f.scope == {"team": "support", "environment": "prod", "feature": "nightly-report"}
    assert f.evidence["on_demand_cost"] == "21.00"
    assert f.monthly_impact == Decimal("10.50")  # 50 % batch discount
    assert f.evidence["matched_by"] == "keyword 'report'"
    assert f.proposed_action is None
    # an explicitly listed feature, and no keywords
    found = run(
        "batch-opportunity",
        lake,
        config,
        non_interactive_features=["support-chat"],
        non_interactive_keywords=[],
    )
    assert [x.scope["feature"] for x in found] == ["support-chat"]
    assert run("batch-opportunity", lake, config, non_interactive_keywords=[]) == []


# ----- feature-below-roi ----------------------------------------------------------------------------------
def test_feature_below_roi(ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            # ad-copy is worth $0.05 a request (example config); it costs $30 / 200 = $0.15
            llm(feature="ad-copy", team="growth", cost="30", requests=200),
            # support-chat is worth $0.40; it costs $0.15
            llm(feature="support-chat", cost="30", requests=200),
        ],
    )
    [f] = run("feature-below-roi", lake, config)
    assert f.rule_id == "feature-below-roi"
    assert f.scope == {"feature": "ad-copy", "team": "growth"}
    assert f.evidence["cost_per_request"] == "0.150000"
    assert f.monthly_impact == Decimal("20.00")  # (0.15 - 0.05) x 200
    assert f.proposed_action is None
    assert run("feature-below-roi", lake, config, min_requests=500) == []
    cheap = with_config(
        config, feature_value=[FeatureValue(feature="ad-copy", value_per_request=Decimal("0.2"))]
    )
    assert run("feature-below-roi", lake, cheap) == []


# ----- untagged-spend -----------------------------------------------------------------------------------
def _daily_rows(resource: str, cost: str, tags: dict[str, str] | None, **kw: Any) -> list[dict[str, Any]]:
    return [
        row(cost, start=f"{d.isoformat()}T00:00:00Z", period=f"{d:%Y-%m}", resource=resource, tags=tags, **kw)
        for d in WINDOW_DAYS
    ]


def test_untagged_spend_suggests_the_accounts_team(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    rows = _daily_rows("i-tagged", "30", {"team": "search"}) + _daily_rows("i-orphan", "3", None)
    rows += _daily_rows("i-elsewhere", "1", None, sub_account="555566667777")
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    found = run("untagged-spend", lake, config)
    assert [f.resource for f in found] == ["i-orphan", "i-elsewhere"]
    orphan, elsewhere = found
    assert orphan.rule_id == "untagged-spend"
    assert orphan.proposed_action == "apply-tags"
    assert orphan.action_params == {"resource": "i-orphan", "tags": {"team": "search"}}
    assert orphan.monthly_impact == Decimal("90.00")
    assert orphan.evidence["unallocated_share"] == pytest.approx(4 / 34, abs=1e-4)
    # no team owns the other account: no suggestion, no action
    assert elsewhere.proposed_action is None and elsewhere.action_params == {}
    # below both thresholds: nothing
    assert run("untagged-spend", lake, config, min_share="0.5", min_amount="1000") == []
    assert len(run("untagged-spend", lake, config, min_share="0.5", min_amount="100")) == 2


def test_untagged_spend_reports_a_resource_billed_under_two_services_once(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    rows = _daily_rows("i-tagged", "30", {"team": "search"})
    rows += _daily_rows("i-orphan", "3", None) + _daily_rows("i-orphan", "2", None, service="Amazon EBS")
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    found = run("untagged-spend", lake, config)
    assert [f.resource for f in found] == ["i-orphan"]
    assert (
        found[0].monthly_impact == Decimal("150.00")
        and found[0].evidence["service"] == "Amazon EBS, Amazon Elastic Compute Cloud"
    )


# ----- gpu-commitment-coverage -------------------------------------------------------------------------------
def test_gpu_commitment_coverage_steady_on_demand_gpu(
    ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig
) -> None:
    rows = _daily_rows("p4d-train-1", "786.54", {"team": "ml-research"}, sub_account="444455556666")
    # a GPU box used in bursts, a covered one, and a non-GPU instance
    rows += [
        row(
            "1500" if i % 3 == 0 else "10",
            start=f"{d.isoformat()}T00:00:00Z",
            period=f"{d:%Y-%m}",
            resource="g5-burst-1",
            sub_account="444455556666",
        )
        for i, d in enumerate(WINDOW_DAYS)
    ]
    rows += _daily_rows("g6-covered-1", "500", None, effective="350", sub_account="777788889999")
    rows += _daily_rows("m5-web-1", "900", None)
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    [f] = run("gpu-commitment-coverage", lake, config)
    assert f.rule_id == "gpu-commitment-coverage"
    assert f.evidence["gpu_family"] == "p4d"
    assert f.evidence["resources"] == ["p4d-train-1"]
    assert f.evidence["coefficient_of_variation"] == 0.0
    assert f.evidence["break_even_utilisation"] == "0.70"
    assert f.monthly_impact == Decimal("7078.86")  # 786.54 x 30 days x 30 %
    assert f.scope["team"] == "ml-research" and f.scope["sub_account"] == "444455556666"
    assert f.proposed_action is None
    [cheaper] = run("gpu-commitment-coverage", lake, config, commitment_discount="0.4")
    assert cheaper.monthly_impact == Decimal("9438.48")
    # the bursty g5 box passes only with a very loose variation threshold
    loose = run("gpu-commitment-coverage", lake, config, max_cv=5.0)
    assert sorted(x.evidence["gpu_family"] for x in loose) == ["g5", "p4d"]


# ----- token-budget-breach -------------------------------------------------------------------------------
def test_token_budget_breach(ingestor: Ingestor, lake: Lake, tmp_path: Path, config: FinOpsConfig) -> None:
    ingest_usage(
        ingestor,
        tmp_path,
        [
            llm(f"2024-09-{d:02d}", project="bot", input_tokens=50_000, output=10_000, cost="0.60")
            for d in range(1, 21)
        ]
        + [llm("2024-09-05", project="quiet", input_tokens=10_000, output=0, cost="0.01")],
    )
    budgets = [
        TokenBudget(project="bot", tokens=1_000_000),  # 1.2M used by the 20th, forecast 1.8M
        TokenBudget(project="quiet", tokens=1_000_000),  # 1 %
    ]
    [f] = run("token-budget-breach", lake, with_config(config, token_budgets=budgets))
    assert f.rule_id == "token-budget-breach"
    assert f.kind == "governance"
    assert f.proposed_action == "set-rate-limit"
    assert f.action_params == {"project": "bot", "tokens_per_month": 1_000_000}
    assert f.evidence["actual_tokens"] == 1_200_000
    assert f.evidence["thresholds_crossed"] == ["75%", "100%"]
    assert f.severity == "high"
    # forecast 1.2M / 20 days x 30 = 1.8M: 800k tokens over budget at $0.01 per 1,000 tokens
    assert f.monthly_impact == Decimal("8.00")
    assert f.fingerprint == fingerprint("token-budget-breach", "bot", "2024-09")
    generous = [TokenBudget(project="bot", tokens=10_000_000)]
    assert run("token-budget-breach", lake, with_config(config, token_budgets=generous)) == []


# ----- the demo organisation -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_llm_rules_on_the_demo_organisation_propose_registered_actions(demo_org: DemoOrg) -> None:
    """On the demo's data every LLM rule runs; what it finds names a registered action (or none) and a
    non-negative monthly impact, and the rules together find something (the demo plants premium models,
    an over-budget bot and unapproved models)."""
    load_rules()
    found = 0
    costs = demo_org.costs()
    for rule_id in LLM_RULES:
        cls = registry.get(rule_id)
        ctx = RuleContext(config=demo_org.config, now=DEMO_NOW, costs=costs)
        findings = list(cls(cls.Params()).evaluate(ctx))
        found += len(findings)
        for f in findings:
            assert f.rule_id == rule_id
            assert f.proposed_action is None or f.proposed_action in ACTION_TYPES
            assert f.monthly_impact >= 0
    assert found > 0
