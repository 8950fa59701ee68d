"""`finops review-diff` against the demo organisation's cost lake: estimates checked against plain SQL over
``usage_allocated`` / ``usage_facts`` priced by hand with the published list prices (the genai-prices
figures), the Infracost-like silence, the policy's exit code 2, and the command on a real git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from agent.review_cli import register
from config.model import FinOpsConfig, ReviewConfig
from config.settings import EXAMPLE_CONFIG
from tests.demo_org import DemoOrg
from tools.review_diff import Change, ModelChange, TokenCapChange
from tools.review_estimate import review_changes

DIFFS = Path(__file__).parents[1] / "fixtures" / "diffs"
REVIEW: dict[str, object] = {
    "threshold": 50,
    "feature_paths": {"services/ranking/**": "rerank"},
    "production_paths": ["services/**"],
}
#: USD per 1M tokens (uncached input, cache read, cache write, output): OpenAI's and Anthropic's list prices
#: as genai-prices has them for 2024-09
PRICES = {
    "gpt-4o-2024-08-06": (Decimal("2.50"), Decimal("1.25"), Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.075"), Decimal("0.15"), Decimal("0.60")),
    "claude-3-5-sonnet-20241022": (Decimal("3.00"), Decimal("0.30"), Decimal("3.75"), Decimal("15.00")),
    "claude-3-5-haiku": (Decimal("0.80"), Decimal("0.08"), Decimal("1.00"), Decimal("4.00")),
}
CENT = Decimal("0.01")


def review_config(org: DemoOrg) -> FinOpsConfig:
    return org.config.model_copy(update={"review": ReviewConfig.model_validate(REVIEW)})


def window_sql(org: DemoOrg) -> str:
    return f"day >= DATE '{org.today}' - INTERVAL 30 DAY AND day < DATE '{org.today}'"


def token_mix(org: DemoOrg, feature: str, model_like: str) -> tuple[int, list[Decimal]]:
    """(requests, [uncached input, cache read, cache write, output]) of a feature's model in the last 30 days:
    volumes from usage_allocated, the split by kind from the usage_facts source with the most tokens."""
    con = org.costs()
    try:
        where = f"{window_sql(org)} AND feature = '{feature}' AND model LIKE '{model_like}'"
        tokens, requests = con.execute(
            f"SELECT sum(tokens), sum(requests) FROM usage_allocated WHERE {where}"
        ).fetchall()[0]
        iu, cr, cw, out, total, batch = con.execute(
            "SELECT sum(input_uncached_tokens), sum(cache_read_tokens), sum(cache_write_tokens), "
            "sum(output_tokens) + sum(reasoning_tokens), sum(total_tokens), bool_or(batch) "
            f"FROM usage_facts WHERE {where} AND source_format = ("
            f"  SELECT source_format FROM usage_facts WHERE {where} "
            "   GROUP BY 1 ORDER BY sum(total_tokens) DESC LIMIT 1)"
        ).fetchall()[0]
    finally:
        con.close()
    assert tokens and not batch
    scale = Decimal(int(tokens)) / Decimal(int(total))
    return int(requests), [Decimal(int(n)) * scale for n in (iu, cr, cw, out)]


def cost(mix: list[Decimal], model: str) -> Decimal:
    return sum((n * p for n, p in zip(mix, PRICES[model], strict=True)), Decimal(0)) / Decimal(1_000_000)


def test_review_model_swap_matches_plain_sql(demo_org: DemoOrg) -> None:
    _, mix = token_mix(demo_org, "rerank", "gpt-4o-2024%")
    expected = ((cost(mix, "gpt-4o-mini") - cost(mix, "gpt-4o-2024-08-06")) * 30 / 30).quantize(CENT)
    change = ModelChange("services/ranking/rank.py", 10, "gpt-4o", "gpt-4o-mini")
    con = demo_org.costs()
    try:
        review = review_changes([change], review_config(demo_org), con, demo_org.today)
    finally:
        con.close()
    (estimate,) = review.estimates
    assert estimate.attribution.feature == "rerank" and estimate.attribution.by == "config"
    assert estimate.confidence == "high"
    assert estimate.monthly_delta is not None
    assert abs(estimate.monthly_delta - expected) <= CENT, (estimate.monthly_delta, expected)
    assert expected < -1000  # gpt-4o -> gpt-4o-mini on rerank saves well over $1k a month
    assert review.violations == ()


def test_review_swap_with_cache_writes_and_cap_change_match_plain_sql(demo_org: DemoOrg) -> None:
    # support-chat is found by its name in the path; its Sonnet traffic has cache reads and cache writes
    _, sonnet = token_mix(demo_org, "support-chat", "claude-3-5-sonnet%")
    swap = (cost(sonnet, "claude-3-5-haiku") - cost(sonnet, "claude-3-5-sonnet-20241022")).quantize(CENT)
    # rerank's max_tokens 512 -> 1024: at most its output tokens doubled
    _, rerank = token_mix(demo_org, "rerank", "gpt-4o-2024%")
    cap = (rerank[3] * PRICES["gpt-4o-2024-08-06"][3] / Decimal(1_000_000)).quantize(CENT)
    changes: list[Change] = [
        ModelChange("services/support-chat/bot.py", 3, "claude-3-5-sonnet-20241022", "claude-3-5-haiku"),
        TokenCapChange("services/ranking/rank.py", 12, "max_tokens", 512, 1024),
    ]
    con = demo_org.costs()
    try:
        review = review_changes(changes, review_config(demo_org), con, demo_org.today)
    finally:
        con.close()
    got = [e.monthly_delta for e in review.estimates]
    assert got[0] is not None and abs(got[0] - swap) <= CENT, (got[0], swap)
    assert got[1] is not None and abs(got[1] - cap) <= CENT, (got[1], cap)
    assert [(e.attribution.feature, e.attribution.by, e.confidence) for e in review.estimates] == [
        ("support-chat", "path", "medium"),
        ("rerank", "config", "low"),
    ]


# ----- the command -----------------------------------------------------------------------------------------


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A fresh app with only the review command."""

    register(app)
    return app


@pytest.fixture
def cli_env(demo_org: DemoOrg, tmp_path: Path) -> dict[str, str | None]:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["review"] = REVIEW
    config = tmp_path / "finops.yaml"
    config.write_text(yaml.safe_dump(data))
    return {
        "FINOPS_CONFIG": str(config),
        "FINOPS_LAKE_DIR": str(demo_org.lake.root),
        "FINOPS_AS_OF": demo_org.today.isoformat(),
        "FINOPS_HOME": str(tmp_path / "home"),
        "GITHUB_BASE_REF": None,
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }


def run(env: dict[str, str | None], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app(), ["review-diff", *args], env=env, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write_diff(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "change.diff"
    path.write_text(text)
    return path


AD_COPY_SWAP = (
    "diff --git a/services/ad-copy/gen.py b/services/ad-copy/gen.py\n"
    "--- a/services/ad-copy/gen.py\n+++ b/services/ad-copy/gen.py\n@@ -4 +4 @@\n"
    '-    modelId="anthropic.claude-3-5-haiku-20241022-v1:0",\n'
    '+    modelId="anthropic.claude-3-5-sonnet-20241022-v2:0",\n'
)


def test_cli_silent_under_threshold(cli_env: dict[str, str | None], tmp_path: Path) -> None:
    diff = write_diff(tmp_path, AD_COPY_SWAP)  # ad-copy's small Bedrock traffic: a few $ a month
    code, out, err = run(cli_env, "--diff", str(diff))
    assert (code, out, err) == (0, "", "")
    code, out, _ = run(cli_env, "--diff", str(diff), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["silent"] is True
    assert 0 < Decimal(str(doc["total_monthly_delta"])) < 50
    assert doc["changes"][0]["feature"] == "ad-copy"
    # --always prints the comment anyway; a lower threshold breaks the silence
    code, out, _ = run(cli_env, "--diff", str(diff), "--always")
    assert code == 0 and out.startswith("<!-- finops-cost-review -->")
    code, out, _ = run(cli_env, "--diff", str(diff), "--threshold", "1")
    assert code == 0 and "| `services/ad-copy/gen.py:4` |" in out


def test_cli_no_cost_change_is_silent_from_stdin(cli_env: dict[str, str | None]) -> None:
    code, out, err = run(cli_env, "--diff", "-", stdin=(DIFFS / "no_cost.diff").read_text())
    assert (code, out, err) == (0, "", "")


def test_cli_unapproved_model_in_production_path_exits_2(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    diff = write_diff(
        tmp_path,
        "diff --git a/services/ranking/rank.py b/services/ranking/rank.py\n"
        "--- a/services/ranking/rank.py\n+++ b/services/ranking/rank.py\n@@ -8 +8 @@\n"
        '-    return client.chat.completions.create(model="gpt-4o", messages=m)\n'
        '+    return client.chat.completions.create(model="o3", messages=m)\n',
    )
    code, out, err = run(cli_env, "--diff", str(diff))
    assert code == 2, err
    assert "❌ `o3` is not approved for prod (`services/ranking/rank.py:8`)" in out
    assert "| `services/ranking/rank.py:8` | model `gpt-4o` → `o3` | rerank (review.feature_paths" in out


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


RANK_PY = """from openai import OpenAI

client = OpenAI()


def rank(query, documents):
    return client.chat.completions.create(
        model="gpt-4o",
        max_tokens=512,
        messages=[{"role": "user", "content": query}],
    )
"""
TRAINING_TF = """resource "aws_instance" "trainer" {
  count         = 2
  ami           = "ami-0abcdef1234567890"
  instance_type = "g5.12xlarge"
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "services" / "ranking").mkdir(parents=True)
    (root / "infra").mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "services" / "ranking" / "rank.py").write_text(RANK_PY)
    (root / "infra" / "training.tf").write_text(TRAINING_TF)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ranking service and trainer")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "services" / "ranking" / "rank.py").write_text(RANK_PY.replace('"gpt-4o"', '"gpt-4o-mini"'))
    (root / "infra" / "training.tf").write_text(TRAINING_TF.replace("g5.12xlarge", "p4d.24xlarge"))
    git(root, "commit", "-q", "-am", "cheaper ranking, bigger trainer")
    return root


def test_cli_on_a_git_repository(cli_env: dict[str, str | None], repo: Path) -> None:
    code, out, err = run(cli_env, "--repo", str(repo), "--base", "main", "--head", "HEAD")
    assert code == 0, err
    # the trainer's count (2) is not in the diff: it is read from the file at each side
    per_month = ((Decimal("32.7726") - Decimal("5.672")) * 730 * 2).quantize(CENT)
    assert "| `infra/training.tf:4` | instance 2 × `g5.12xlarge` → 2 × `p4d.24xlarge` | — |" in out
    assert f"+${per_month:,} | high |" in out
    assert "| `services/ranking/rank.py:8` | model `gpt-4o` → `gpt-4o-mini` | rerank (" in out
    # without --base the default (main: no origin here) is used; the same review results
    code, out2, _ = run(cli_env, "--repo", str(repo))
    assert (code, out2) == (0, out)


def test_cli_git_errors_are_clear(cli_env: dict[str, str | None], repo: Path, tmp_path: Path) -> None:
    code, out, err = run(cli_env, "--repo", str(repo), "--base", "origin/nope")
    assert (code, out) == (1, "")
    assert "unknown git ref 'origin/nope' (--base)" in err and "fetch-depth: 0" in err
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    code, out, err = run(cli_env, "--repo", str(plain), "--base", "main")
    assert code == 1 and "is not in a git repository" in err
    code, _, err = run(cli_env, "--diff", str(tmp_path / "missing.diff"))
    assert code == 1 and "cannot read the diff" in err


NEW_FEATURE_CALL = (
    "diff --git a/services/brand-new/summarise.py b/services/brand-new/summarise.py\n"
    "new file mode 100644\n--- /dev/null\n+++ b/services/brand-new/summarise.py\n@@ -0,0 +1,2 @@\n"
    "+client = OpenAI()\n"
    '+answer = client.chat.completions.create(model="gpt-4o-mini", max_tokens=30000, messages=m)\n'
)


def test_cli_a_change_whose_cost_is_unknown_is_commented_not_silent(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    """A new LLM call site of a feature with no traffic yet moves spend by an unknown amount: worth a
    comment (it says the cost is unknown), never silence that reads as "no cost effect"."""
    code, out, _ = run(cli_env, "--diff", str(write_diff(tmp_path, NEW_FEATURE_CALL)), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["silent"] is False
    assert any(c["monthly_delta"] is None for c in doc["changes"])
    code, out, _ = run(cli_env, "--diff", str(write_diff(tmp_path, NEW_FEATURE_CALL)))
    assert code == 0 and out.startswith("<!-- finops-cost-review -->")
