"""Forecasts over a lake built through the real FOCUS ingestion: per team, and per configured budget."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from config.loader import parse_config
from tests.focus_builder import row, write_focus
from tools.costs import open_costs
from tools.errors import QueryError
from tools.forecast_query import forecast_budgets, forecast_by
from tools.ingest.service import Ingestor
from tools.periods import Period
from tools.store.lake import Lake

AS_OF = date(2024, 9, 21)  # data through 2024-09-20
SEPT = Period(date(2024, 9, 1), date(2024, 10, 1), "2024-09")
FIRST = date(2024, 7, 1)
# team -> (weekday cost, weekend cost); ml-research doubles from 2024-08-19
REST_OF_SEPT_ML = 6 * 600 + 4 * 560  # ml-research, 2024-09-21..30 at the new level
TEAMS = {
    "search": ("200", "80"),
    "platform": ("100", "100"),
    "ml-research": ("300", "280"),
    "tiny": ("1", "1"),
}


def _daily_rows() -> list[dict[str, Any]]:
    rows = []
    day = FIRST
    while day < AS_OF:
        weekend = day.weekday() >= 5
        for team, (weekday_cost, weekend_cost) in TEAMS.items():
            cost = Decimal(weekend_cost if weekend else weekday_cost)
            if team == "ml-research" and day >= date(2024, 8, 19):
                cost *= 2
            rows.append(
                row(
                    str(cost),
                    start=f"{day.isoformat()}T00:00:00Z",
                    period=f"{day:%Y-%m}",
                    resource=f"i-{team}",
                    tags={"team": team},
                )
            )
        day += timedelta(days=1)
    # a one-off purchase by search: in the actuals, never extrapolated
    rows.append(
        row(
            "3000",
            start="2024-09-05T00:00:00Z",
            resource="ri-purchase",
            charge_category="Purchase",
            frequency="One-Time",
            tags={"team": "search"},
        )
    )
    return rows


@pytest.fixture
def daily_lake(ingestor: Ingestor, lake: Lake, tmp_path: Path) -> Lake:
    ingestor.ingest_focus([write_focus(tmp_path / "bill.csv.gz", _daily_rows())], "aws")
    return lake


def _sept(team: str) -> Decimal:
    weekday_cost, weekend_cost = TEAMS[team]
    total = Decimal(0)
    for i in range(20):
        day = date(2024, 9, 1) + timedelta(days=i)
        cost = Decimal(weekend_cost if day.weekday() >= 5 else weekday_cost)
        total += cost * 2 if team == "ml-research" else cost
    return total


def test_forecast_by_team_one_row_per_team(daily_lake: Lake) -> None:
    rows = forecast_by(open_costs(daily_lake), "team", SEPT, AS_OF)
    by_team = {r["team"]: r for r in rows}
    # "tiny" is under 1% of the spend: folded into "(other)"
    assert set(by_team) == {"search", "platform", "ml-research", "(other)"}
    assert by_team["(other)"]["groups"] == 1
    assert rows[-1]["team"] == "(other)"
    for r in rows:
        assert r["period"] == {"from": "2024-09-01", "to": "2024-10-01"}
        assert r["actual_to_date"] <= r["lower"] <= r["forecast"] <= r["upper"]
        assert r["method"] == "seasonal-level"
    assert by_team["platform"]["actual_to_date"] == _sept("platform")
    assert by_team["search"]["actual_to_date"] == _sept("search") + 3000
    # flat series: exact; a constant series has no uncertainty
    assert by_team["platform"]["forecast"] == Decimal(3000)
    # ml-research follows its new level (the run rate would too here: the shift is before September)
    assert by_team["ml-research"]["level_since"] is not None
    assert by_team["ml-research"]["forecast"] == pytest.approx(
        _sept("ml-research") + REST_OF_SEPT_ML, rel=Decimal("0.01")
    )
    # the purchase is not extrapolated: 2024-09-21..30 is 6 weekdays of 200 and 4 weekend days of 80
    assert by_team["search"]["forecast"] == pytest.approx(
        by_team["search"]["actual_to_date"] + 1520, rel=Decimal("0.01")
    )
    assert by_team["search"]["run_rate"] > by_team["search"]["forecast"] + 1000


def test_forecast_total_filters_and_errors(daily_lake: Lake) -> None:
    con = open_costs(daily_lake)
    (total,) = forecast_by(con, None, SEPT, AS_OF)
    assert "team" not in total
    teams = forecast_by(con, "team", SEPT, AS_OF)
    assert total["actual_to_date"] == sum(r["actual_to_date"] for r in teams)
    assert total["forecast"] == pytest.approx(sum(r["forecast"] for r in teams), rel=Decimal("0.005"))
    (only,) = forecast_by(con, "team", SEPT, AS_OF, filters={"team": ["platform"]})
    assert only["team"] == "platform"
    with pytest.raises(QueryError):
        forecast_by(con, "colour", SEPT, AS_OF)
    with pytest.raises(QueryError):
        forecast_by(con, "team", SEPT, AS_OF, metric="amortised")


def test_forecast_budgets_crossing_dates(daily_lake: Lake) -> None:
    config = parse_config(
        "budgets:\n"
        "  - {name: ml, scope: {team: ml-research}, amount: 15000, thresholds: [0.5, 0.9, 1.0]}\n"
        "  - {name: platform, scope: {team: platform}, amount: 100000}\n"
        "  - {name: ml-q, scope: {team: ml-research}, amount: 60000, period: quarterly}\n"
    )
    ml, platform, quarterly = forecast_budgets(open_costs(daily_lake), config, AS_OF)
    assert ml["period"] == {"from": "2024-09-01", "to": "2024-10-01"}
    assert ml["actual"] == _sept("ml-research") == 11800
    crossings = {c["threshold"]: c for c in ml["crossings"]}
    # 7500 was reached in the actuals, on the 13th (cumulative 7680)
    assert crossings[Decimal("0.5")] == {
        "threshold": Decimal("0.5"),
        "amount": Decimal("7500.00"),
        "on": "2024-09-13",
        "crossed": True,
    }
    # 13500 and 15000 in the forecast: 11800, then 560 a weekend day and 600 a weekday from Saturday 21st:
    # 13520 by Monday 23rd, 15320 by Thursday 26th
    assert crossings[Decimal("0.9")]["on"] == "2024-09-23"
    assert crossings[Decimal("0.9")]["crossed"] is False
    assert ml["runs_out_on"] == crossings[Decimal("1.0")]["on"] == "2024-09-26"
    assert ml["forecast_status"] == "over"
    assert platform["runs_out_on"] is None
    assert platform["forecast_status"] == "on-track"
    assert all(c["on"] is None for c in platform["crossings"])
    # the quarter: July and August before the shift count in the actuals, the forecast uses the new level
    assert quarterly["period"] == {"from": "2024-07-01", "to": "2024-10-01"}
    assert quarterly["forecast"] == pytest.approx(quarterly["actual"] + REST_OF_SEPT_ML, rel=Decimal("0.01"))
    assert quarterly["run_rate"] < quarterly["forecast"]
