"""What every answer to a cost question is: the figures from a tool result and how to re-run them.

Both the offline planner (``agent/planner.py``) and the LLM question graph (``agent/graph.py``) return an
``Answer``. Numbers come only from tool results: ``rows`` and ``total`` are what the tool returned (never the
model's arithmetic), ``text`` says them in words, and ``period``, ``filters``, ``group_by`` and ``metric`` say
exactly what was asked of the tool, so ``rerun`` (a ``finops`` command line) gives the same figures.

Row conventions (the question-set tests rely on them):
- a row holds its group keys under the dimension names of ``group_by`` (``{"team": "search", ...}``) and the
  figure under the name of ``metric``: ``cost`` (money in ``currency``), ``tokens``, ``requests``,
  ``cost_per_1m_tokens``, ``cost_per_request``, ``cost_per_completed_task``; other columns may follow;
- with a top N, ``rows`` hold the N largest and, when more exist, one last row whose group keys are all
  ``OTHER`` with the sum of the rest (``truncated`` says how many rows it stands for) — nothing is dropped;
- ``total`` is the figure over everything asked (all rows, including "other"), or None when a total makes
  no sense (a ratio metric such as cost per request is given per row and overall in ``total``);
- ``comparison`` (for "vs last month") holds ``{"period", "total", "rows"}`` of the other period, and each
  row of ``rows`` then carries ``previous`` and ``change``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from tools.periods import Period

if TYPE_CHECKING:
    import duckdb

    from config.model import FinOpsConfig
    from tools.store.db import Database

#: the group-key value of the row that sums everything beyond the top N
OTHER = "(other)"

AnswerKind = Literal[
    "costs",
    "unit-costs",
    "anomalies",
    "forecast",
    "budgets",
    "findings",
    "approvals",
    "audit",
    "untagged",
    "help",
]
Metric = Literal[
    "cost",
    "tokens",
    "requests",
    "cost_per_1m_tokens",
    "cost_per_request",
    "cost_per_completed_task",
    "count",
]


@dataclass
class ToolCall:
    """One read-only tool the answer used, with its arguments (for the reader and the audit)."""

    tool: str
    args: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args}


@dataclass
class Answer:
    question: str
    text: str
    kind: AnswerKind
    understood: bool = True
    period: Period | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    metric: Metric = "cost"
    currency: str = "USD"
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: Decimal | int | None = None
    truncated: int = 0  # how many rows the OTHER row stands for (0: none)
    comparison: dict[str, Any] | None = None
    rerun: str | None = None  # the `finops ...` command giving the same figures
    tool_calls: list[ToolCall] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # when not understood: questions it can answer
    source: Literal["offline", "llm"] = "offline"

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "understood": self.understood,
            "kind": self.kind,
            "text": self.text,
            "period": self.period.as_dict() if self.period else None,
            "filters": self.filters,
            "group_by": list(self.group_by),
            "metric": self.metric,
            "currency": self.currency,
            "rows": self.rows,
            "total": self.total,
            "truncated": self.truncated,
            "comparison": self.comparison,
            "rerun": self.rerun,
            "tool_calls": [c.as_dict() for c in self.tool_calls],
            "examples": self.examples,
            "source": self.source,
        }


@dataclass
class AskContext:
    """What answering a question may read: the configuration, the cost lake (``open_costs(lake, config)``:
    the ``spend`` and usage views), the app database (findings, approvals, audit) and "today" (data runs to
    yesterday; relative periods such as "last week" count from it)."""

    config: FinOpsConfig
    costs: duckdb.DuckDBPyConnection
    db: Database
    today: date


#: What "AI spend" means in questions: spend whose FOCUS ServiceCategory is "AI and Machine Learning" (model
#: APIs, hosted models, ML platforms) or whose workload is training or inference (GPU instances tagged so).
AI_SERVICE_CATEGORY = "AI and Machine Learning"
AI_SPEND_SQL = "(service_category = 'AI and Machine Learning' OR workload IN ('training', 'inference'))"
