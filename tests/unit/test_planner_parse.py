"""The offline planner's parser: plain questions -> QueryPlan, against a vocabulary of known values (no store)."""

from __future__ import annotations

from datetime import date

import pytest

from agent.planner_parse import QueryPlan, normalise, parse
from agent.planner_periods import describe, find_periods
from agent.planner_vocab import Vocabulary, model_family
from tools.periods import Period

TODAY = date(2024, 9, 21)  # a Saturday; data runs to 2024-09-20

TEAMS = ["search", "support", "ml-research", "data", "growth", "platform"]
FEATURES = ["support-chat", "rerank", "query-rewrite", "ticket-summary"]
MODELS = [
    "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "claude-3-5-haiku-20241022",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "claude-3-5-sonnet-20241022",
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_values(
        {
            "team": [*TEAMS, None],
            "project": ["semantic-search", "support-bot", "marketing-gen", "llm-pretrain", "fine-tuning"],
            "feature": FEATURES,
            "model": MODELS,
            "environment": ["prod", "dev", "staging"],
            "workload": ["training", "inference"],
            "provider": ["AWS", "Google Cloud", "Microsoft", "OpenAI"],
            "service": [
                "Amazon Elastic Compute Cloud",
                "Amazon Bedrock",
                "BigQuery",
                "Azure OpenAI",
                "Amazon SageMaker",
                "Tax",
                "Savings Plans for AWS Compute usage",
            ],
            "service_category": ["AI and Machine Learning", "Compute", "Storage"],
            "region": ["us-east-1", "us"],
            "charge_category": ["Usage", "Tax", "Credit"],
            "cost_center": ["CC-1100", "1600"],
            "owner": ["ana@example.com"],
            "sub_account": ["111122223333", "acme-data-prod"],
            "resource": ["i-0abc123def"],
        },
        {"llm_provider": ["openai", "aws.bedrock", "azure.ai.openai"], "feature": FEATURES, "model": MODELS},
        data_start=date(2024, 6, 1),
        data_end=date(2024, 9, 20),
        top_team="ml-research",
        top_model="gpt-4o-mini-2024-07-18",
    )


def plan(vocab: Vocabulary, question: str) -> QueryPlan:
    return parse(question, vocab, TODAY)


def span(p: QueryPlan) -> tuple[date, date]:
    assert p.period is not None
    return p.period.start, p.period.end


# ----- periods ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "start", "end"),
    [
        ("last week", date(2024, 9, 9), date(2024, 9, 16)),  # the previous Monday to Sunday
        ("past week", date(2024, 9, 14), date(2024, 9, 21)),
        ("in October", date(2023, 10, 1), date(2023, 11, 1)),  # not started this year: last year's
        ("in August", date(2024, 8, 1), date(2024, 9, 1)),
        ("September 2023", date(2023, 9, 1), date(2023, 10, 1)),
        ("Q3", date(2024, 7, 1), date(2024, 10, 1)),
        ("Q4", date(2023, 10, 1), date(2024, 1, 1)),
        ("2024-Q2", date(2024, 4, 1), date(2024, 7, 1)),
        ("month to date", date(2024, 9, 1), date(2024, 10, 1)),
        ("this month", date(2024, 9, 1), date(2024, 10, 1)),
        ("last month", date(2024, 8, 1), date(2024, 9, 1)),
        ("yesterday", date(2024, 9, 20), date(2024, 9, 21)),
        ("since 2024-09-01", date(2024, 9, 1), date(2024, 9, 21)),
        ("since August", date(2024, 8, 1), date(2024, 9, 21)),
        ("last 30 days", date(2024, 8, 22), date(2024, 9, 21)),
        ("the last 2 weeks", date(2024, 9, 7), date(2024, 9, 21)),
        ("last 3 months", date(2024, 6, 1), date(2024, 9, 1)),
        ("from 2024-08-01 to 2024-08-15", date(2024, 8, 1), date(2024, 8, 16)),  # the last day included
        ("between Aug 1 and Aug 15", date(2024, 8, 1), date(2024, 8, 16)),
        ("from June to August", date(2024, 6, 1), date(2024, 9, 1)),
        ("on 2024-09-03", date(2024, 9, 3), date(2024, 9, 4)),
        ("2024-08", date(2024, 8, 1), date(2024, 9, 1)),
        ("this quarter", date(2024, 7, 1), date(2024, 10, 1)),
        ("last quarter", date(2024, 4, 1), date(2024, 7, 1)),
        ("ytd", date(2024, 1, 1), date(2025, 1, 1)),
        ("in 2024", date(2024, 1, 1), date(2025, 1, 1)),
    ],
)
def test_planner_periods_said_in_plain_language(vocab: Vocabulary, said: str, start: date, end: date) -> None:
    (hit,) = find_periods(normalise(said), TODAY)
    assert hit.period is not None and (hit.period.start, hit.period.end) == (start, end)
    p = plan(vocab, f"spend {said}")
    assert span(p) == (start, end) and p.period_said is not None


def test_planner_period_defaults_to_month_to_date_and_says_so(vocab: Vocabulary) -> None:
    p = plan(vocab, "How much did we spend?")
    assert span(p) == (date(2024, 9, 1), date(2024, 10, 1)) and p.period_said is None
    assert p.period is not None and p.period.label == "month to date"


def test_planner_period_may_is_a_month_only_when_said_as_one(vocab: Vocabulary) -> None:
    assert find_periods("may i see the spend", TODAY) == []
    (hit,) = find_periods("spend in may", TODAY)
    assert hit.period is not None and hit.period.start == date(2024, 5, 1)


def test_planner_period_describe_says_the_days_and_so_far() -> None:
    p = Period(date(2024, 9, 1), date(2024, 10, 1), "month to date")
    assert describe(p, TODAY) == "month to date (2024-09-01 to 2024-09-20 so far)"
    assert describe(Period(date(2024, 9, 3), date(2024, 9, 4), "2024-09-03")) == "2024-09-03"


def test_planner_impossible_date_is_not_guessed(vocab: Vocabulary) -> None:
    p = plan(vocab, "spend on 2024-02-30")
    assert not p.understood and p.kind == "help" and "not a valid date" in p.unknown[0]


# ----- dimension values ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "dimension", "values"),
    [
        ("What did the search team spend?", "team", ["search"]),
        ("spend for team=search", "team", ["search"]),
        ("What did we spend on gpt4o?", "model", ["gpt-4o-2024-08-06"]),
        ("GPT-4o mini spend", "model", ["gpt-4o-mini-2024-07-18"]),
        (
            "claude 3.5 haiku spend",
            "model",
            ["anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"],
        ),
        ("sonnet spend", "model", ["claude-3-5-sonnet-20241022"]),
        ("ML Research spend", "team", ["ml-research"]),
        ("the ml team spend", "team", ["ml-research"]),  # a part of the name, with its dimension's name
        ("the data team's spend", "team", ["data"]),
        ("support chat cost", "feature", ["support-chat"]),
        ("semantic search spend", "project", ["semantic-search"]),
        ("EC2 spend", "service", ["Amazon Elastic Compute Cloud"]),
        ("SageMaker spend", "service", ["Amazon SageMaker"]),
        ("Azure OpenAI spend", "service", ["Azure OpenAI"]),
        ("savings plans cost", "service", ["Savings Plans for AWS Compute usage"]),
        ("GCP spend", "provider", ["Google Cloud"]),
        ("azure spend", "provider", ["Microsoft"]),
        ("prod spend", "environment", ["prod"]),
        ("training spend", "workload", ["training"]),
        ("spend in us-east-1", "region", ["us-east-1"]),
        ("spend in region us", "region", ["us"]),
        ("cost center CC-1100 spend", "cost_center", ["CC-1100"]),
        ("owner ana spend", "owner", ["ana@example.com"]),
        ("spend of i-0abc123def", "resource", ["i-0abc123def"]),
        ("credits last month", "charge_category", ["Credit"]),
        ("serch team spend", "team", ["search"]),  # a near miss, one value that close
        ("spend for the data and growth teams", "team", ["growth", "data"]),
    ],
)
def test_planner_matches_values_known_in_the_store(
    vocab: Vocabulary, question: str, dimension: str, values: list[str]
) -> None:
    p = plan(vocab, question)
    assert p.understood, p.unknown
    assert sorted(p.filters[dimension]) == sorted(values)


def test_planner_common_words_name_a_value_only_with_their_dimension(vocab: Vocabulary) -> None:
    assert "team" not in plan(vocab, "how much data did we store last month").filters
    assert "team" not in plan(vocab, "spend growth last month").filters
    assert plan(vocab, "growth team spend").filters == {"team": ["growth"]}
    assert "region" not in plan(vocab, "show us the spend").filters
    assert "cost_center" not in plan(vocab, "top 1600 resources").filters


def test_planner_vocabulary_never_picks_between_two_close_values() -> None:
    v = Vocabulary.from_values({"team": ["analytics", "analytic"], "project": ["search", "research"]})
    assert v.lookup("analytcs", fuzzy=True) is None
    one = v.lookup("serch", fuzzy=True)
    assert one is not None and one.values == ("search",) and one.fuzzy


def test_planner_model_family_without_date_version_and_prefix() -> None:
    assert model_family("anthropic.claude-3-5-haiku-20241022-v1:0") == "claude-3-5-haiku"
    assert model_family("gpt-4o-2024-08-06") == "gpt-4o"
    assert model_family("gpt-4o-mini") == "gpt-4o-mini"


def test_planner_ambiguous_short_model_name_asks_which() -> None:
    v = Vocabulary.from_values({"model": ["claude-3-5-sonnet-20241022", "claude-3-7-sonnet-20250219"]})
    p = parse("sonnet spend last month", v, TODAY)
    assert not p.understood and "claude-3-5-sonnet" in p.unknown[0] and "claude-3-7-sonnet" in p.unknown[0]


# ----- groups, metrics, top N ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "group"),
    [
        ("spend by team", ("team",)),
        ("spend by team and model", ("team", "model")),
        ("cost per team last month", ("team",)),
        ("which service cost the most?", ("service",)),
        ("what are our most expensive projects", ("project",)),
        ("breakdown of spend across environments", ("environment",)),
        ("spend by cost center", ("cost_center",)),
        ("spend by sub account", ("sub_account",)),
    ],
)
def test_planner_groups_by_the_dimensions_named(
    vocab: Vocabulary, question: str, group: tuple[str, ...]
) -> None:
    p = plan(vocab, question)
    assert p.understood and p.group_by == group


@pytest.mark.parametrize(
    ("question", "kind", "metric"),
    [
        ("how much did we spend", "costs", "cost"),
        ("how many tokens did support chat use", "unit-costs", "tokens"),
        ("token usage by feature", "unit-costs", "tokens"),
        ("how many requests did gpt-4o handle", "unit-costs", "requests"),
        ("cost per token by model", "unit-costs", "cost_per_1m_tokens"),
        ("cost per 1M tokens by model", "unit-costs", "cost_per_1m_tokens"),
        ("cost per request for rerank", "unit-costs", "cost_per_request"),
        ("cost per task by feature", "unit-costs", "cost_per_completed_task"),
        ("cost per completed task", "unit-costs", "cost_per_completed_task"),
    ],
)
def test_planner_metrics(vocab: Vocabulary, question: str, kind: str, metric: str) -> None:
    p = plan(vocab, question)
    assert (p.kind, p.metric) == (kind, metric)


def test_planner_cost_metric_and_one_offs(vocab: Vocabulary) -> None:
    assert plan(vocab, "billed cost by provider").cost_metric == "billed"
    assert plan(vocab, "list price of EC2").cost_metric == "list"
    assert plan(vocab, "spend excluding tax last month").exclude_one_offs


@pytest.mark.parametrize(
    ("question", "top", "ascending"),
    [
        ("top 5 services", 5, False),
        ("top three teams by spend", 3, False),
        ("the 2 most expensive models", 2, False),
        ("which team spent the most", 1, False),  # the one team, the rest as "(other)"
        ("which teams spent the most", 5, False),
        ("cheapest 3 services", 3, True),
    ],
)
def test_planner_top_n(vocab: Vocabulary, question: str, top: int, ascending: bool) -> None:
    p = plan(vocab, question)
    assert (p.top, p.top_said, p.ascending) == (top, True, ascending) and p.group_by


def test_planner_granularity(vocab: Vocabulary) -> None:
    assert plan(vocab, "daily spend last week").granularity == "day"
    assert plan(vocab, "weekly spend this quarter").granularity == "week"
    assert plan(vocab, "spend trend this quarter").granularity == "week"  # a trend: by the period's length
    assert plan(vocab, "spend trend last week").granularity == "day"


def test_planner_ai_spend(vocab: Vocabulary) -> None:
    for q in ("AI spend by team", "how much do we spend on LLMs", "GenAI costs last month"):
        assert plan(vocab, q).ai_spend, q
    assert not plan(vocab, "spend by team").ai_spend


# ----- comparisons ------------------------------------------------------------------------------------------
def test_planner_compare_with_last_month(vocab: Vocabulary) -> None:
    p = plan(vocab, "spend by team vs last month")
    assert p.compare and p.compare_period is None and span(p) == (date(2024, 9, 1), date(2024, 10, 1))
    p = plan(vocab, "last week vs the week before")
    assert p.compare and span(p) == (date(2024, 9, 9), date(2024, 9, 16))
    assert plan(vocab, "month over month spend by service").compare
    assert plan(vocab, "how did search spend change last month").compare


def test_planner_compare_with_another_period(vocab: Vocabulary) -> None:
    p = plan(vocab, "spend in September compared to June")
    assert not p.compare and p.compare_period is not None and p.compare_period.start == date(2024, 6, 1)


def test_planner_compare_values_of_one_dimension(vocab: Vocabulary) -> None:
    p = plan(vocab, "prod vs dev spend last month")
    assert p.filters == {"environment": ["prod", "dev"]} and p.group_by == ("environment",)
    assert not p.compare and span(p) == (date(2024, 8, 1), date(2024, 9, 1))


# ----- what else is asked ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Why did the search team's spend go up last week?", "anomalies"),
        ("any anomalies yesterday?", "anomalies"),
        ("what caused the spike in BigQuery", "anomalies"),
        ("forecast for the end of the month by team", "forecast"),
        ("what will we spend this quarter", "forecast"),
        ("are we over budget?", "budgets"),
        ("will search go over budget this month", "budgets"),
        ("show open findings for the search team", "findings"),
        ("how much waste do we have", "findings"),
        ("what approvals are pending?", "approvals"),
        ("who approved the last change?", "audit"),
        ("show the audit trail", "audit"),
        ("how much spend is untagged?", "untagged"),
        ("spend without a team last month", "untagged"),
    ],
)
def test_planner_kinds(vocab: Vocabulary, question: str, kind: str) -> None:
    p = plan(vocab, question)
    assert p.understood and p.kind == kind, (p.kind, p.unknown)


def test_planner_findings_and_approvals_statuses(vocab: Vocabulary) -> None:
    p = plan(vocab, "open waste findings for the search team")
    assert (p.statuses, p.finding_kind, p.filters) == (("open", "notified"), "waste", {"team": ["search"]})
    assert plan(vocab, "approvals that are pending").statuses == ("pending",)
    assert plan(vocab, "who approved the change").audit_event == "request.approved"


# ----- what it cannot answer --------------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["What is the weather in Paris?", "hello", "", "???"])
def test_planner_unparseable_question_is_help(vocab: Vocabulary, question: str) -> None:
    p = plan(vocab, question)
    assert not p.understood and p.kind == "help"


def test_planner_unknown_team_is_said_with_the_known_ones(vocab: Vocabulary) -> None:
    p = plan(vocab, "What did the marketing team spend?")
    assert not p.understood and p.kind == "help"
    assert "no team 'marketing'" in p.unknown[0] and "ml-research" in p.unknown[0]


def test_planner_unknown_names_are_never_ignored(vocab: Vocabulary) -> None:
    p = plan(vocab, "how much do we spend on kubernetes?")
    assert not p.understood and "kubernetes" in p.unknown[0]
    p = plan(vocab, "gpt-5 spend last month")
    assert not p.understood and "no model 'gpt-5'" in p.unknown[0]


def test_planner_help_request_is_understood(vocab: Vocabulary) -> None:
    p = plan(vocab, "help")
    assert p.kind == "help" and p.understood
