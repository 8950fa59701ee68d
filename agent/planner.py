"""The offline planner: answers cost questions without an LLM, deterministically, from the same tools.

    answer_offline("How much did the search team spend last week?", ctx) -> Answer

Three steps, each in its own module:
1. ``agent.planner_vocab``: the values every dimension has in the store (read once per ``AskContext``),
   and the words that name them ("gpt4o" -> gpt-4o-2024-08-06, "search team" -> team=search);
2. ``agent.planner_parse``: the question -> a typed ``QueryPlan`` (kind, period, filters, grouping, metric,
   top N, comparison), pure and unit-tested;
3. ``agent.planner_exec``: the plan -> the tool calls -> an ``Answer`` whose figures are the tools' own,
   with the period, filters and metric said in the text and the ``finops`` command that re-runs it.

A question it cannot read fully gets ``understood=False``: what it can answer and three example questions
built from the user's data — never a guess presented as an answer.
"""

from __future__ import annotations

from agent.answer import Answer, AskContext
from agent.planner_exec import examples, execute, help_answer
from agent.planner_parse import QueryPlan, parse
from agent.planner_vocab import Vocabulary, read_vocabulary, vocabulary_for

__all__ = [
    "QueryPlan",
    "Vocabulary",
    "answer_offline",
    "examples",
    "help_answer",
    "parse",
    "plan_question",
    "read_vocabulary",
]


def plan_question(question: str, ctx: AskContext) -> QueryPlan:
    """The plan the offline planner would run for ``question`` (for tests and ``--explain``)."""
    return parse(question, vocabulary_for(ctx), ctx.today)


def answer_offline(question: str, ctx: AskContext) -> Answer:
    """Answer ``question`` from the tools, without an LLM."""
    vocab = vocabulary_for(ctx)
    return execute(parse(question, vocab, ctx.today), ctx, vocab)
