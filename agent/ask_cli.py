"""`finops ask "question"`: a cost question in plain language, answered from the tools.

With ``OPENAI_API_KEY`` set, the LLM question graph answers (``agent.graph.answer_with_llm``); without it,
or when that graph cannot be loaded or fails, the deterministic offline planner does
(``agent.planner.answer_offline``), and a one-line note on stderr says so. Either way the answer's figures
are the tools' own, and it ends with the ``finops`` command that gives the same figures.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_context import _ctx, _fail, run_guarded

if TYPE_CHECKING:
    from agent.answer import Answer, AskContext
    from config.settings import Settings

ASK_FORMATS = ("text", "json")
#: columns shown first in the text table, when a row has them
_FIGURES = (
    "cost",
    "tokens",
    "requests",
    "cost_per_1m_tokens",
    "cost_per_request",
    "cost_per_completed_task",
    "previous",
    "change",
    "change_percent",
)
_KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "anomalies": ("start", "end", "dimension", "key", "kind", "actual", "expected", "impact", "severity"),
    "forecast": ("actual_to_date", "forecast", "lower", "upper", "method"),
    "budgets": ("budget", "scope", "period", "amount", "cost", "tokens", "used", "forecast", "status"),
    "findings": ("id", "status", "team", "rule", "title", "cost", "findings"),
    "approvals": ("id", "status", "action", "resource", "team", "monthly_savings", "approvals", "summary"),
    "audit": ("seq", "at", "event", "actor", "request_id", "resource"),
    "untagged": ("provider", "sub_account", "service", "resource", "cost", "suggested_team"),
}
_MONEY = ("cost", "previous", "change", "actual", "expected", "impact", "forecast", "lower", "upper")


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)


def answer_question(question: str, ctx: AskContext, settings: Settings) -> tuple[Answer, str | None]:
    """The answer, and a note when the offline planner answered instead of the LLM graph.

    The LLM graph answers when an API key is configured (OPENAI_API_KEY or FINOPS_OPENAI_API_KEY); its
    calls are metered into the lake and database of ``settings`` (the ones this command uses)."""
    from agent.planner import answer_offline

    if settings.openai_api_key is None or not settings.openai_api_key.get_secret_value():
        return answer_offline(question, ctx), "note: no OPENAI_API_KEY; answered by the offline planner"
    try:
        from agent.graph import answer_with_llm
        from agent.llm import make_chat_model
        from agent.metering import UsageMeter
    except ImportError as exc:
        note = f"note: the LLM question graph is not available ({exc}); answered by the offline planner"
        return answer_offline(question, ctx), note
    try:
        llm = make_chat_model(settings)
        meter = UsageMeter.from_settings(settings, ctx.db, ctx.config)
        return answer_with_llm(question, ctx, llm=llm, meter=meter), None
    except Exception as exc:  # the model or its server failed: the offline answer is still exact
        note = (
            f"note: the LLM question graph failed ({type(exc).__name__}: {exc}); "
            "answered by the offline planner"
        )
        return answer_offline(question, ctx), note


def ask(
    ctx: typer.Context,
    question: Annotated[
        list[str], typer.Argument(help='The question, e.g. "How much did search spend last week?"')
    ],
    fmt: Annotated[str, typer.Option("--format", help="text | json")] = "text",
) -> None:
    """Ask a cost question in plain language (offline planner without OPENAI_API_KEY)."""
    if fmt not in ASK_FORMATS:
        raise typer.BadParameter(f"{fmt!r}; choose text or json", param_hint="--format")
    text = " ".join(question).strip()
    if not text:
        _fail('ask needs a question, e.g. finops ask "What did we spend last month by team?"')

    def go() -> None:
        from agent.answer import AskContext
        from tools.costs import open_costs

        c = _ctx(ctx)
        config = c.config()
        actx = AskContext(config, open_costs(c.lake(), config), c.database(), c.today())
        answer, note = answer_question(text, actx, c.settings())
        if note:
            typer.echo(note, err=True)
        print_answer(answer, fmt)

    run_guarded(go)


def print_answer(answer: Answer, fmt: str) -> None:
    from agent.output import dumps_json, print_table, unit_money

    if fmt == "json":
        print(dumps_json(answer.as_dict()))
        return
    print(answer.text)
    if answer.rows:
        columns = table_columns(answer)
        rows = [_cell_row(r) for r in answer.rows]
        if answer.metric.startswith("cost_per"):  # the ratio's previous value and change are unit costs too
            for r in rows:
                for k in ("previous", "change"):
                    if isinstance(r.get(k), Decimal):
                        r[k] = unit_money(r[k], answer.currency)
        print_table(
            rows,
            columns,
            currency=answer.currency,
            money_columns=[c for c in columns if c in _MONEY or c == "monthly_savings"]
            + (
                [c for c in columns if c.startswith("cost_per")]
                if answer.metric.startswith("cost_per")
                else []
            ),
        )
    if answer.truncated:
        print(f"({answer.truncated} more rows are folded into the '(other)' row)")
    if answer.rerun:
        print(f"re-run: {answer.rerun}")


def table_columns(answer: Answer) -> list[str]:
    """The group keys, then the figures: a compact table (every figure is also in --format json)."""
    present: dict[str, None] = {}
    for r in answer.rows:
        present.update(dict.fromkeys(r))
    if answer.kind in _KIND_COLUMNS:
        cols = [c for c in _KIND_COLUMNS[answer.kind] if c in present]
        if answer.kind == "forecast":
            cols = [c for c in answer.group_by if c in present] + cols
        return cols
    cols = [c for c in ("period_start", *answer.group_by) if c in present]
    figures = [answer.metric, *(f for f in _FIGURES if f != answer.metric)]
    if answer.kind == "unit-costs":
        figures = [answer.metric, "cost", "tokens", "requests", "previous", "change"]
    cols += [f for f in dict.fromkeys(figures) if f in present]
    return cols


def _cell_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k, v in row.items():
        if isinstance(v, list):
            out[k] = ", ".join(str(x) for x in v)
        elif k in ("used", "change_percent") and isinstance(v, Decimal):
            out[k] = f"{v * 100:.1f}%" if k == "used" else f"{v:+}%"
    return out
