"""`finops review-diff`: the cost review of a change before it merges, as a PR comment (Markdown) or JSON.

Reads ``git diff --unified=0 BASE...HEAD`` of a repository (what the branch changed since it left the base)
or a unified diff from a file / stdin, finds the changes that move AI spend (``tools.review_diff``), prices
them on the observed traffic of the cost lake (``tools.review_estimate``) and prints the comment.

Exit codes: 0 = reviewed (no output in Markdown when the change stays under ``review.threshold`` and breaks
no policy, as Infracost does); 2 = a policy violation (an unapproved model in a production path); 1 = the
review could not run (not a repository, an unknown ref, an unreadable diff or config).
"""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli_context import Context
from tools.review_diff import FileText, ReviewError, Side

if TYPE_CHECKING:
    from tools.review_estimate import Review

EXIT_VIOLATION = 2
EXIT_ERROR = 1
#: tried in order when --base is not given (after $GITHUB_BASE_REF)
DEFAULT_BASES = ("origin/HEAD", "origin/main", "origin/master", "main", "master")
FORMATS = ("md", "json")


def register(app: typer.Typer) -> None:
    app.command("review-diff")(review_diff)


# ----- git ------------------------------------------------------------------------------------------------


class Git:
    """The few git commands the review needs, run in ``repo`` with clear errors."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", "-C", str(self.repo), "-c", "core.quotePath=false", *args],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=env,
                check=False,
            )
        except FileNotFoundError:
            raise ReviewError(
                "git is not installed (or not on PATH): install git, or pass a unified diff with --diff FILE"
            ) from None
        if check and done.returncode != 0:
            raise ReviewError(f"`git {' '.join(args)}` failed in {self.repo}: {_first_line(done.stderr)}")
        return done

    def check_repository(self) -> None:
        if not self.repo.is_dir():
            raise ReviewError(f"{self.repo} is not a folder: pass the repository with --repo, or --diff FILE")
        done = self.run("rev-parse", "--git-dir", check=False)
        if done.returncode != 0:
            raise ReviewError(
                f"{self.repo.resolve()} is not in a git repository ({_first_line(done.stderr)}): run "
                "`finops review-diff` inside the repository, pass it with --repo, or give a diff with --diff FILE"
            )

    def resolve(self, ref: str, option: str) -> str:
        """The commit id of ``ref``; a ReviewError that says how to fetch it when it is unknown."""
        if ref.startswith("-"):
            raise ReviewError(f"{option} {ref!r} is not a git ref")
        done = self.run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise ReviewError(
                f"unknown git ref {ref!r} ({option}) in {self.repo.resolve()}: check the name, or fetch it first "
                "(in GitHub Actions: actions/checkout with fetch-depth: 0, or `git fetch origin <branch>`)"
            )
        return done.stdout.strip()

    def exists(self, ref: str) -> bool:
        done = self.run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
        )
        return done.returncode == 0

    def merge_base(self, base: str, head: str) -> str:
        done = self.run("merge-base", base, head, check=False)
        if done.returncode != 0 or not done.stdout.strip():
            raise ReviewError(
                f"{base[:12]} and {head[:12]} have no common ancestor in {self.repo.resolve()} (a shallow "
                "clone?): fetch the full history (actions/checkout with fetch-depth: 0)"
            )
        return done.stdout.strip()

    def diff(self, base: str, head: str) -> str:
        return self.run(
            "diff",
            "--unified=0",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--find-renames",
            f"{base}...{head}",
        ).stdout

    def show(self, commit: str, path: str) -> str | None:
        done = self.run("show", f"{commit}:{path}", check=False)
        return done.stdout if done.returncode == 0 else None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def default_base(git: Git) -> str:
    """``origin/$GITHUB_BASE_REF`` in a GitHub pull request, else the first of DEFAULT_BASES that exists."""
    pr_base = os.environ.get("GITHUB_BASE_REF")
    candidates = ([f"origin/{pr_base}", pr_base] if pr_base else []) + list(DEFAULT_BASES)
    for ref in candidates:
        if git.exists(ref):
            return ref
    raise ReviewError(
        f"no base to compare with: none of {', '.join(candidates)} exists in {git.repo.resolve()}; "
        "pass --base REF (e.g. --base origin/main)"
    )


# ----- the command ------------------------------------------------------------------------------------------


def _read_diff(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReviewError(f"cannot read the diff {source}: {exc.strerror or exc}") from None


def _threshold(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ReviewError(f"--threshold {text!r} is not an amount; use e.g. --threshold 50") from None
    if not value.is_finite() or value < 0:
        raise ReviewError(f"--threshold {text!r} must be an amount >= 0")
    return value


def review_diff(
    ctx: typer.Context,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="What the change is compared with (default: origin/$GITHUB_BASE_REF, origin/HEAD, origin/main, main)",
        ),
    ] = None,
    head: Annotated[str, typer.Option("--head", help="The change's last commit")] = "HEAD",
    diff: Annotated[
        str | None,
        typer.Option("--diff", help="Read a unified diff from FILE ('-' = stdin) instead of running git"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md (a PR comment) | json")] = "md",
    repo: Annotated[
        Path, typer.Option("--repo", help="The git repository (default: the current folder)")
    ] = Path("."),
    threshold: Annotated[
        str | None,
        typer.Option(
            "--threshold", help="Monthly $ under which the comment stays silent (default review.threshold)"
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=365, help="Days of observed traffic to price")
    ] = 30,
    always: Annotated[
        bool, typer.Option("--always", help="Print the comment even when it would be silent")
    ] = False,
) -> None:
    """Cost review of a change before merge: model swaps, max_tokens, new LLM calls, GPU instances -> a PR comment.

    Silent (no output, exit 0) when the change moves less than review.threshold a month and breaks no policy; exit 2 when it introduces a model not approved for prod in a review.production_paths path; exit 1 when the review cannot run.
    """
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose md or json", param_hint="--format")
    from agent.output import dumps_json
    from config.loader import ConfigError
    from tools.errors import FinOpsError

    try:
        review = _review(ctx, base, head, diff, repo, _threshold(threshold), days)
    except (FinOpsError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    if fmt == "json":
        typer.echo(dumps_json(review.as_dict()))
    elif always or not review.silent:
        from tools.review_estimate import render_markdown

        typer.echo(render_markdown(review), nl=False)
    if review.violations:
        raise typer.Exit(EXIT_VIOLATION)


def _context(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Context) else Context(None, None, None)


def _review(
    ctx: typer.Context,
    base: str | None,
    head: str,
    diff_source: str | None,
    repo: Path,
    threshold: Decimal | None,
    days: int,
) -> Review:
    from tools.review_diff import find_changes, parse_unified_diff
    from tools.review_estimate import review_changes

    c = _context(ctx)
    config = c.config()
    file_text: FileText | None = None
    if diff_source is not None:
        if base is not None:
            raise ReviewError("give either --diff or --base/--head, not both")
        text = _read_diff(diff_source)
    else:
        git = Git(repo)
        git.check_repository()
        base_ref = base if base is not None else default_base(git)
        base_id = git.resolve(base_ref, "--base")
        head_id = git.resolve(head, "--head")
        fork_point = git.merge_base(base_id, head_id)
        text = git.diff(base_id, head_id)
        commits = {"old": fork_point, "new": head_id}

        @lru_cache(maxsize=256)
        def show(path: str, side: Side) -> str | None:
            return git.show(commits[side], path)

        file_text = show

    changes = find_changes(parse_unified_diff(text), file_text)
    con = None
    if changes:
        lake = c.lake()
        if lake.files("usage") or lake.files("cost"):
            import duckdb

            from tools.costs import open_costs

            try:
                con = open_costs(lake, config)
            except duckdb.Error as exc:
                raise ReviewError(
                    f"cannot read the cost lake at {lake.root}: {exc}; check FINOPS_LAKE_DIR / FINOPS_HOME"
                ) from None
    try:
        return review_changes(changes, config, con, c.today(), days=days, threshold=threshold)
    finally:
        if con is not None:
            con.close()
