"""A small organisation for the offline planner's tests: a FOCUS bill over August and September 2024, an
OpenAI bill and usage by feature. "Today" is 2024-09-21 (a Saturday): last week is 9-15 September."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from agent.answer import AskContext
from config.model import FinOpsConfig
from tests.focus_builder import row, write_focus
from tests.usage_builder import bill, ingest, usage
from tools.costs import open_costs
from tools.ingest.service import Ingestor
from tools.store.db import Database
from tools.store.lake import Lake

TODAY = date(2024, 9, 21)
AI = "AI and Machine Learning"


def _day(d: str) -> str:
    return f"{d}T00:00:00Z"


BILL = [
    # (cost, day, service, category, resource, tags, extra)
    (
        "100",
        "2024-09-10",
        "Amazon Elastic Compute Cloud",
        "Compute",
        "i-search1",
        {"team": "search", "project": "semantic-search", "environment": "prod"},
    ),
    (
        "40",
        "2024-08-10",
        "Amazon Elastic Compute Cloud",
        "Compute",
        "i-search1",
        {"team": "search", "project": "semantic-search", "environment": "prod"},
    ),
    (
        "30",
        "2024-09-12",
        "Amazon Simple Storage Service",
        "Storage",
        "bucket-support",
        {"team": "support", "environment": "prod"},
    ),
    (
        "500",
        "2024-09-05",
        "Amazon SageMaker",
        AI,
        "nb-train",
        {"team": "ml-research", "workload": "training", "environment": "dev"},
    ),
    (
        "200",
        "2024-08-20",
        "Amazon Elastic Compute Cloud",
        "Compute",
        "i-gpu1",
        {"team": "ml-research", "workload": "training", "environment": "dev"},
    ),
    (
        "12",
        "2024-09-15",
        "Amazon Bedrock",
        AI,
        "bedrock",
        {"team": "growth", "model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
    ),
    ("25", "2024-09-14", "Amazon Elastic Compute Cloud", "Compute", "i-untagged", {}),
    (
        "60",
        "2024-09-18",
        "Amazon Simple Storage Service",
        "Storage",
        "bucket-data",
        {"team": "data", "environment": "prod"},
    ),
    (
        "9",
        "2024-09-19",
        "Amazon Simple Storage Service",
        "Storage",
        "bucket-data",
        {"team": "data", "environment": "staging"},
    ),
]


def build(ingestor: Ingestor, lake: Lake, db: Database, config: FinOpsConfig, tmp_path: Path) -> AskContext:
    rows = [
        row(
            cost,
            start=_day(day),
            service=service,
            category=category,
            resource=resource,
            tags=tags or None,
            period=day[:7],
        )
        for cost, day, service, category, resource, tags in BILL
    ]
    rows.append(
        row(
            "7",
            start=_day("2024-08-31"),
            resource=None,
            service="Tax",
            category="Other",
            charge_category="Tax",
            frequency="One-Time",
            period="2024-08",
        )
    )
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws-payer")
    ingest(
        ingestor,
        tmp_path,
        [
            bill(day="2024-09-10", amount="20", model="gpt-4o-2024-08-06"),
            bill(day="2024-08-10", amount="10", model="gpt-4o-2024-08-06"),
        ],
        source="openai-costs",
        kind="openai-costs",
    )
    ingest(
        ingestor,
        tmp_path,
        [
            usage(
                day="2024-09-10",
                model="gpt-4o-2024-08-06",
                input_tokens=900_000,
                output=100_000,
                requests=400,
                task="t1",
                status="completed",
                feature="support-chat",
                team="support",
            ),
            usage(
                day="2024-09-10",
                model="gpt-4o-2024-08-06",
                input_tokens=2_700_000,
                output=300_000,
                requests=600,
                task="t2",
                status="completed",
                feature="rerank",
                team="search",
            ),
            usage(
                day="2024-08-10",
                model="gpt-4o-2024-08-06",
                input_tokens=1_800_000,
                output=200_000,
                requests=500,
                task="t3",
                status="completed",
                feature="rerank",
                team="search",
            ),
        ],
    )
    return AskContext(config, open_costs(lake, config), db, TODAY)
