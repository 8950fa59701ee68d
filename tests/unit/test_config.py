"""finops.yaml validation: every error names the file, line, key path and a right value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_config, parse_config
from config.settings import EXAMPLE_CONFIG, Settings


def test_config_shipped_example_is_valid_and_describes_the_demo_org() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert len(config.teams) >= 5
    assert {b.name for b in config.budgets} >= {"search-monthly"}
    assert config.taxonomy.values["environment"]["prod"] == ["production", "prd", "live"]


def test_config_empty_file_gives_defaults() -> None:
    config = parse_config("")
    assert config.currency == "USD" and "business_unit" in config.taxonomy.dimensions["team"]


def test_config_unknown_key_names_line_and_path() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("teams:\n  - name: search\n    slak_channel: '#x'\n", "cfg.yaml")
    assert "cfg.yaml:3: teams[0].slak_channel: unknown key 'slak_channel'" in str(err.value)


def test_config_bad_value_shows_what_and_an_example() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("budgets:\n  - name: b\n    amount: -5\n")
    text = str(err.value)
    assert "finops.yaml:3: budgets[0].amount" in text
    assert "greater than 0" in text and "(got -5)" in text and "example: 50000" in text


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("currency: usd\nbudgets:\n  - {name: b, amount: 1, period: weekly}\n")
    text = str(err.value)
    assert "currency" in text and "budgets[0].period" in text and "'monthly' or 'quarterly'" in text


def test_config_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"budgets\[0\]\.amount: Field required"):
        parse_config("budgets:\n  - name: b\n")


def test_config_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"finops.yaml:2: not valid YAML"):
        parse_config("teams:\n  - name: [unclosed\n")


def test_config_unknown_dimension_in_taxonomy() -> None:
    with pytest.raises(ConfigError, match=r"unknown dimension\(s\) \['squad'\]"):
        parse_config("taxonomy:\n  dimensions:\n    squad: [squad]\n")


def test_config_duplicate_team_names() -> None:
    with pytest.raises(ConfigError, match="team names must be unique"):
        parse_config("teams:\n  - name: a\n  - name: a\n")


def test_config_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"copy config/finops\.example\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.resolved_database_url() == "sqlite:///.finops/finops.db"
    assert s.resolved_lake_dir() == Path(".finops/lake")
    assert s.resolved_config_path() == EXAMPLE_CONFIG
    (tmp_path / "finops.yaml").write_text("currency: EUR\n")
    assert Settings().resolved_config_path() == Path("finops.yaml")
    monkeypatch.setenv("FINOPS_DATABASE_URL", "postgresql://x@h/db")
    monkeypatch.setenv("FINOPS_LAKE_DIR", str(tmp_path / "lk"))
    assert Settings().resolved_database_url() == "postgresql://x@h/db"
    assert Settings().resolved_lake_dir() == tmp_path / "lk"
