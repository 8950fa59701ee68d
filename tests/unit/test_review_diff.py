"""`finops review-diff`, the pure part: parsing unified diffs and classifying what moves AI spend.

The diffs under tests/fixtures/diffs/ are real `git diff --unified=0` output of small repositories.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from config.model import FinOpsConfig, ReviewConfig
from tools.review_diff import (
    CallSite,
    Change,
    InstanceChange,
    ModelChange,
    ReviewError,
    Side,
    TokenCapChange,
    find_changes,
    glob_match,
    is_model_id,
    is_reviewed_path,
    models_on_line,
    parse_unified_diff,
)
from tools.review_estimate import (
    check_policy,
    feature_in_path,
    path_feature,
    render_markdown,
    review_changes,
)

DIFFS = Path(__file__).parents[1] / "fixtures" / "diffs"


def changes_of(name: str, file_text: dict[tuple[str, Side], str] | None = None) -> list[Change]:
    files = parse_unified_diff((DIFFS / name).read_text())
    lookup = None if file_text is None else (lambda path, side: file_text.get((path, side)))
    return list(find_changes(files, lookup))


# ----- parsing -------------------------------------------------------------------------------------------


def test_parse_modified_file_line_numbers_and_hunks() -> None:
    (f,) = parse_unified_diff((DIFFS / "model_swap_python.diff").read_text())
    assert (f.old_path, f.new_path, f.status, f.binary) == (
        "services/support/reply.py",
        "services/support/reply.py",
        "modified",
        False,
    )
    assert [(h.old_start, h.old_count, h.new_start, h.new_count) for h in f.hunks] == [
        (8, 1, 8, 1),
        (12, 1, 12, 1),
    ]
    first = f.hunks[0]
    assert [(line.kind, line.number) for line in first.lines] == [("-", 8), ("+", 8)]
    assert first.added[0].text.startswith('    return client.chat.completions.create(model="o3"')


def test_parse_renamed_and_deleted_files() -> None:
    files = parse_unified_diff((DIFFS / "renamed_deleted.diff").read_text())
    summary = [(f.old_path, f.new_path, f.status, len(f.hunks)) for f in files]
    assert summary == [
        ("infra/old_gpu.tf", None, "deleted", 1),
        ("services/legacy/old_bot.py", None, "deleted", 1),
        ("services/support/chat.py", "services/support/chat_v2.py", "renamed", 1),
        ("services/support/util.py", "services/support/helpers.py", "renamed", 0),
    ]
    assert files[0].path == "infra/old_gpu.tf"  # a deleted file is reported under its old path
    assert files[2].path == "services/support/chat_v2.py"
    assert [line.number for line in files[0].hunks[0].removed] == [1, 2, 3, 4]


@pytest.mark.parametrize("name", ["binary.diff", "binary_patch.diff"])
def test_parse_binary_files_are_marked_and_skipped(name: str) -> None:
    files = parse_unified_diff((DIFFS / name).read_text())
    assert [(f.path, f.status, f.binary) for f in files] == [
        ("services/ad_copy/gen.py", "modified", False),
        ("services/ad_copy/logo.png", "modified", True),
        ("services/ad_copy/weights.bin", "added", True),
    ]
    # the binary payloads mention model="o3" and a p4d instance: neither is read
    found = find_changes(files)
    assert found == [
        ModelChange(
            "services/ad_copy/gen.py",
            1,
            "gpt-4o-mini",
            "claude-3-5-haiku-latest",
            'MODEL = "claude-3-5-haiku-latest"',
        )
    ]


def test_parse_plain_diff_u_with_context_and_no_newline_marker() -> None:
    text = (
        "--- app/llm.py\t2024-09-01 10:00:00\n"
        "+++ app/llm.py\t2024-09-02 10:00:00\n"
        "@@ -1,3 +1,3 @@\n"
        " import openai\n"
        '-MODEL = "gpt-4o"\n'
        '+MODEL = "gpt-4o-mini"\n'
        " TIMEOUT = 3\n"
        "\\ No newline at end of file\n"
    )
    (f,) = parse_unified_diff(text)
    assert f.path == "app/llm.py"
    assert [(line.kind, line.number) for line in f.hunks[0].lines] == [(" ", 1), ("-", 2), ("+", 2), (" ", 3)]
    assert find_changes([f]) == [
        ModelChange("app/llm.py", 2, "gpt-4o", "gpt-4o-mini", 'MODEL = "gpt-4o-mini"')
    ]


def test_parse_paths_with_spaces_and_quoted_non_ascii() -> None:
    text = (
        "diff --git a/my bot/app.py b/my bot/app.py\n"
        "--- a/my bot/app.py\n"
        "+++ b/my bot/app.py\n"
        "@@ -1 +1 @@\n"
        '-m = "gpt-4o"\n'
        '+m = "o1-mini"\n'
        'diff --git "a/caf\\303\\251/x.py" "b/caf\\303\\251/x.py"\n'
        "new file mode 100644\n"
        "--- /dev/null\n"
        '+++ "b/caf\\303\\251/x.py"\n'
        "@@ -0,0 +1 @@\n"
        "+x = 1\n"
    )
    files = parse_unified_diff(text)
    assert [(f.path, f.status) for f in files] == [("my bot/app.py", "modified"), ("café/x.py", "added")]


def test_parse_truncated_hunk_raises_a_clear_error() -> None:
    text = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a\n"
    with pytest.raises(ReviewError, match=r"x\.py: the diff ends inside a hunk"):
        parse_unified_diff(text)


def test_parse_empty_diff_is_nothing() -> None:
    assert parse_unified_diff("") == []
    assert find_changes(parse_unified_diff("")) == []


# ----- classification ------------------------------------------------------------------------------------


def test_classify_model_swap_in_python() -> None:
    # the second hunk only edits a comment: not a change
    assert changes_of("model_swap_python.diff") == [
        ModelChange(
            "services/support/reply.py",
            8,
            "gpt-4o",
            "o3",
            'return client.chat.completions.create(model="o3", messages=messages, temperature=0.2)',
        )
    ]


def test_classify_model_swap_in_yaml_and_litellm_config() -> None:
    found = changes_of("model_swap_yaml.diff")
    assert [(c.path, c.line, c.old, c.new) for c in found if isinstance(c, ModelChange)] == [
        ("deploy/prod/app.yaml", 2, "claude-3-5-haiku-20241022", "claude-3-5-sonnet-20241022"),
        ("deploy/prod/litellm.yaml", 4, "azure/gpt-4o", "azure/gpt-4.1"),
    ]
    assert len(found) == 2  # temperature: 0 -> 0.3 is not a cost change


def test_classify_max_tokens_changes() -> None:
    found = changes_of("max_tokens.diff")
    assert [(c.path, c.line, c.key, c.old, c.new) for c in found if isinstance(c, TokenCapChange)] == [
        ("services/ticket_summary/settings.json", 2, "maxOutputTokens", 256, 128),
        ("services/ticket_summary/settings.json", 4, "max_tokens", None, 64),
        ("services/ticket_summary/summarise.py", 9, "max_tokens", 512, 2048),
    ]
    assert len(found) == 3  # max_completion_tokens kept its value
    assert found[2].describe() == "`max_tokens` 512 → 2,048"


def test_classify_new_call_sites_with_their_models() -> None:
    found = changes_of("new_call_site.diff")
    assert [(c.line, c.call, c.model) for c in found if isinstance(c, CallSite)] == [
        (6, "ChatOpenAI", "gpt-4o-mini"),
        (10, "chat.completions.create", "gpt-4o-mini"),  # the model is on the call's next line
        (19, "litellm.completion", None),  # model=pick_model(): not a literal
    ]
    # the model literals belong to the calls, and the new call's max_tokens=200 is part of that call
    assert all(isinstance(c, CallSite) for c in found)


def test_classify_edited_call_is_not_a_new_call() -> None:
    text = (
        "diff --git a/svc/a.py b/svc/a.py\n--- a/svc/a.py\n+++ b/svc/a.py\n@@ -3 +3 @@\n"
        "-    r = client.chat.completions.create(model=m, messages=x)\n"
        "+    r = client.chat.completions.create(model=m, messages=x, temperature=0)\n"
    )
    assert find_changes(parse_unified_diff(text)) == []


def test_classify_terraform_instance_types() -> None:
    found = changes_of("terraform_instance.diff")
    assert found == [
        InstanceChange(
            "infra/training.tf",
            4,
            "g5.12xlarge",
            "p4d.24xlarge",
            None,
            None,
            'instance_type = "p4d.24xlarge"',
        ),
        InstanceChange(
            "infra/training.tf", 13, "g4dn.xlarge", "g5.xlarge", None, None, 'default = "g5.xlarge"'
        ),
    ]  # t3.micro -> t3.small is not AI spend


def test_classify_terraform_count_read_from_the_file_at_each_side() -> None:
    new_text = "\n".join(
        [
            'resource "aws_instance" "trainer" {',
            "  count         = 2",
            '  ami           = "ami-0abcdef1234567890"',
            '  instance_type = "p4d.24xlarge"',
            "}",
        ]
    )
    old_text = new_text.replace("p4d.24xlarge", "g5.12xlarge")
    found = changes_of(
        "terraform_instance.diff",
        {("infra/training.tf", "new"): new_text, ("infra/training.tf", "old"): old_text},
    )
    first = found[0]
    assert isinstance(first, InstanceChange)
    assert (first.old_type, first.old_count, first.new_type, first.new_count) == (
        "g5.12xlarge",
        2,
        "p4d.24xlarge",
        2,
    )


def test_classify_sagemaker_instance_type_and_count_changes() -> None:
    endpoint = (DIFFS / "sagemaker_endpoint_after.yaml").read_text()
    found = changes_of("sagemaker_instance.diff", {("deploy/sagemaker/endpoint.yaml", "new"): endpoint})
    assert [
        (c.path, c.line, c.old_type, c.new_type, c.old_count, c.new_count)
        for c in found
        if isinstance(c, InstanceChange)
    ] == [
        ("deploy/sagemaker/deploy.py", 6, "ml.g5.2xlarge", "ml.p3.2xlarge", None, None),
        ("deploy/sagemaker/endpoint.yaml", 8, "ml.g5.xlarge", "ml.g5.xlarge", 1, 3),
    ]
    # without the file, the count change alone does not say which instance type it scales
    assert [c.path for c in changes_of("sagemaker_instance.diff")] == ["deploy/sagemaker/deploy.py"]


def test_classify_no_cost_effect_finds_nothing() -> None:
    # a timeout, a log message, a model named in the README and in a test: nothing is deployed spend
    assert changes_of("no_cost.diff") == []


def test_classify_renamed_and_deleted_files() -> None:
    found = changes_of("renamed_deleted.diff")
    assert found == [
        InstanceChange("infra/old_gpu.tf", 3, "p3.2xlarge", None, None, None, 'instance_type = "p3.2xlarge"'),
        ModelChange(
            "services/support/chat_v2.py",
            16,
            "gpt-4o",
            "gpt-4o-mini",
            'return client.chat.completions.create(model="gpt-4o-mini", messages=history)',
        ),
    ]  # a deleted call site and a pure rename move nothing we can price


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpt-4o", True),
        ("azure/gpt-4o-mini", True),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", True),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", True),
        ("o3", True),
        ("gemini-1.5-pro", True),
        ("llama-3.1-8b-instruct", True),
        ("ft:gpt-4o-mini:acme::abc123", True),
        ("text-embedding-3-small", True),
        ("order", False),
        ("gpt", False),
        ("claude", False),
        ("o", False),
    ],
)
def test_is_model_id(value: str, expected: bool) -> None:
    assert is_model_id(value) is expected


def test_models_on_line_needs_context_for_ambiguous_names() -> None:
    assert models_on_line('cell = "o3"', "a.py") == []
    assert models_on_line('llm = ChatOpenAI(model="o3")', "a.py") == ["o3"]
    assert models_on_line("model: o3", "cfg.yaml") == ["o3"]
    assert models_on_line("model = o3", "a.py") == []  # a variable in code
    assert models_on_line('migrations.AddField(model_name="order")', "a.py") == []
    assert models_on_line('# model="gpt-4o"', "a.py") == []


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("services/support/chat.py", "services/support/**", True),
        ("services/support/deep/chat.py", "services/support/**", True),
        ("services/supporting/chat.py", "services/support/**", False),
        ("services/support/chat.py", "services/*/chat.py", True),
        ("services/a/b/chat.py", "services/*/chat.py", False),
        ("deploy/prod/litellm.yaml", "**/prod/**", True),
        ("x/litellm.yaml", "litellm.yaml", True),
    ],
)
def test_glob_match(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


def test_reviewed_paths_skip_docs_tests_and_lock_files() -> None:
    assert is_reviewed_path("services/a.py")
    assert not is_reviewed_path("README.md")
    assert not is_reviewed_path("tests/test_a.py")
    assert not is_reviewed_path("services/a_test.go")
    assert not is_reviewed_path("web/app.spec.ts")
    assert not is_reviewed_path("poetry.lock")


# ----- attribution, policy and rendering without a lake ---------------------------------------------------


def test_feature_attribution_config_first_then_name_in_path() -> None:
    globs = {"services/ranking/**": "rerank"}
    known = ["support-chat", "rerank", "support"]
    assert path_feature("services/ranking/app.py", globs, known).feature == "rerank"  # type: ignore[union-attr]
    found = path_feature("services/support_chat/bot.py", globs, known)
    assert found is not None and (found.feature, found.by) == ("support-chat", "path")
    assert feature_in_path("services/support/bot.py", known) == "support"
    assert feature_in_path("lib/rerank.py", known) == "rerank"
    assert feature_in_path("lib/other.py", known) is None


def _config(**review: object) -> FinOpsConfig:
    return FinOpsConfig(
        approved_models={"prod": ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet"]},
        review=ReviewConfig(**review),
    )


def test_policy_flags_unapproved_models_in_production_paths_only() -> None:
    config = _config(production_paths=["deploy/prod/**", "services/**"])
    changes: list[Change] = [
        ModelChange("deploy/prod/litellm.yaml", 4, "azure/gpt-4o", "azure/gpt-4.1"),
        ModelChange(
            "deploy/prod/app.yaml", 2, "gpt-4o", "claude-3-5-sonnet-20241022"
        ),  # a dated version: approved
        ModelChange("sandbox/x.py", 1, "gpt-4o", "o3"),  # not a production path
        CallSite("services/a.py", 3, "ChatOpenAI", "o1"),
    ]
    found = [(v.path, v.model) for v in check_policy(changes, config)]
    assert found == [("deploy/prod/litellm.yaml", "azure/gpt-4.1"), ("services/a.py", "o1")]
    assert check_policy(changes, _config()) == []  # no production paths configured


def test_review_prices_instances_without_a_lake_and_renders_the_comment() -> None:
    config = _config(threshold=Decimal("50"), production_paths=["services/**"])
    prices = {"g5.12xlarge": Decimal("5.672"), "p4d.24xlarge": Decimal("32.7726")}
    changes: list[Change] = [
        InstanceChange("infra/training.tf", 4, "g5.12xlarge", "p4d.24xlarge", 2, 2),
        InstanceChange("infra/old.tf", 3, "p3.2xlarge", None),  # no price in this table
        ModelChange("services/a.py", 8, "gpt-4o", "o3"),
    ]
    review = review_changes(changes, config, None, date(2024, 9, 21), instance_price=prices.get)
    deltas = [e.monthly_delta for e in review.estimates]
    assert deltas == [
        ((Decimal("32.7726") - Decimal("5.672")) * 730 * 2).quantize(Decimal("0.01")),
        None,
        None,
    ]
    assert review.total == Decimal("39566.88")
    assert [e.confidence for e in review.estimates] == ["high", "unknown", "unknown"]
    assert not review.silent
    md = render_markdown(review)
    assert md.startswith("<!-- finops-cost-review -->\n### FinOps cost review: +$39,566.88 per month")
    assert "| `infra/training.tf:4` | instance 2 × `g5.12xlarge` → 2 × `p4d.24xlarge` |" in md
    assert "❌ `o3` is not approved for prod (`services/a.py:8`)" in md
    assert "| **Total** | | | | **+$39,566.88** | |" in md


def test_review_is_silent_under_the_threshold_without_violations() -> None:
    config = _config(threshold=Decimal("50"))
    prices = {"g4dn.xlarge": Decimal("0.526"), "g4dn.2xlarge": Decimal("0.752")}
    small: list[Change] = [InstanceChange("infra/a.tf", 1, "g4dn.xlarge", "g4dn.2xlarge", 1, 1)]  # +$164.98
    assert not review_changes(small, config, None, date(2024, 9, 21), instance_price=prices.get).silent
    high = _config(threshold=Decimal("200"))
    assert review_changes(small, high, None, date(2024, 9, 21), instance_price=prices.get).silent
    # savings and increases do not cancel out: |+164.98| + |-164.98| is over 200
    both: list[Change] = [*small, InstanceChange("infra/b.tf", 1, "g4dn.2xlarge", "g4dn.xlarge", 1, 1)]
    review = review_changes(both, high, None, date(2024, 9, 21), instance_price=prices.get)
    assert review.total == 0 and not review.silent
