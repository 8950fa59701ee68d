"""find_anomalies over a lake built through the real ingestion: root cause, one-offs, feedback."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.model import FinOpsConfig
from tests.focus_builder import row, write_focus
from tools.anomalies_query import find_anomalies
from tools.costs import open_costs
from tools.errors import QueryError
from tools.ingest.service import Ingestor
from tools.store.lake import Lake

FIRST = date(2024, 7, 15)
DAYS = 60
SPIKE = date(2024, 9, 5)
PURCHASE = date(2024, 9, 8)
START, END = date(2024, 9, 1), date(2024, 9, 13)


def _day_row(day: date, cost: float, resource: str, team: str, **kw: Any) -> dict[str, Any]:
    return row(
        f"{cost:.2f}",
        start=f"{day.isoformat()}T00:00:00Z",
        period=day.strftime("%Y-%m"),
        resource=resource,
        tags={"team": team, "environment": "prod"},
        **kw,
    )


@pytest.fixture
def spike_lake(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> Lake:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(DAYS):
        day = FIRST + timedelta(days=i)
        noise = np.exp(rng.normal(0, 0.03, size=3))
        rows.append(_day_row(day, 100 * noise[0], "i-search-1", "search"))
        s2 = 60 * noise[1] + (400 if day == SPIKE else 0)
        rows.append(_day_row(day, s2, "i-search-2", "search", sku="sku-2"))
        rows.append(_day_row(day, 80 * noise[2], "i-platform-1", "platform"))
    rows.append(
        _day_row(PURCHASE, 5000, "ri-purchase", "platform", charge_category="Purchase", frequency="One-Time")
    )
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv", rows)], "aws")
    return lake


def test_find_anomalies_spike_with_its_resource_as_root_cause(spike_lake: Lake, config: FinOpsConfig) -> None:
    found = find_anomalies(open_costs(spike_lake), config, START, END, dimensions=["team"])
    assert [(a.dimension, a.key, a.kind, a.start) for a in found] == [("team", "search", "spike", SPIKE)]
    spike = found[0]
    assert Decimal(380) < spike.impact < Decimal(420)
    cause = spike.root_cause[0]
    assert (cause.dimension, cause.key) == ("resource", "i-search-2")
    assert abs(cause.share - 1) < Decimal("0.05")


def test_find_anomalies_ignores_one_offs_unless_asked(spike_lake: Lake, config: FinOpsConfig) -> None:
    con = open_costs(spike_lake)
    default = find_anomalies(con, config, START, END, dimensions=["team", "resource"])
    assert all(a.key not in ("platform", "ri-purchase") for a in default)
    with_one_offs = find_anomalies(con, config, START, END, dimensions=["team"], include_one_offs=True)
    purchase = [a for a in with_one_offs if a.key == "platform"]
    assert [(a.kind, a.start) for a in purchase] == [("spike", PURCHASE)]
    assert purchase[0].root_cause[0].key == "ri-purchase"
    # the biggest first
    assert with_one_offs[0].key == "platform"


def test_find_anomalies_feedback_suppresses(spike_lake: Lake, config: FinOpsConfig) -> None:
    con = open_costs(spike_lake)
    (spike,) = find_anomalies(con, config, START, END, dimensions=["team"])
    assert find_anomalies(con, config, START, END, dimensions=["team"], feedback={spike.id}) == []


def test_find_anomalies_other_dimensions_and_usage(spike_lake: Lake, config: FinOpsConfig) -> None:
    con = open_costs(spike_lake)
    found = find_anomalies(con, config, START, END, dimensions=["resource", "service", "feature.tokens"])
    assert {(a.dimension, a.key) for a in found} == {
        ("resource", "i-search-2"),
        ("service", "Amazon Elastic Compute Cloud"),
    }
    assert find_anomalies(con, config, START, END) is not None  # the config's dimensions
    with pytest.raises(QueryError):
        find_anomalies(con, config, START, END, dimensions=["colour"])
    with pytest.raises(QueryError):
        find_anomalies(con, config, START, END, dimensions=["feature.dollars"])
