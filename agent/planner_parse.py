"""The offline planner's parser: a question in plain language -> a typed ``QueryPlan``. Pure: it reads only
the question, the store's vocabulary (``agent.planner_vocab``) and today's date, so it is unit-tested
without a store.

How a question is read, in this order (each step consumes the words it used):
1. periods ("last week", "Q3", "since 2024-09-01") and comparisons ("vs last month", "month over month");
2. dimension values of two words or more ("support chat", "claude 3.5 haiku"), with the dimension's name
   next to them as a cue ("the ml research team");
3. key words: what is asked (why -> anomalies, forecast, budget, findings / waste, approvals, audit,
   untagged), the metric (tokens, requests, cost per 1M tokens / request / task; billed / list cost), top N,
   "daily" / "weekly" / "monthly", AI spend, one-offs;
4. one-word values ("search", "gpt4o", "prod"), near misses last ("serch" -> search);
5. the dimensions left ("by team and model", "which service", "top 5 projects") become the grouping;
6. what is left over and looks like a name ("the marketing team", "spend on kubernetes", "gpt-5") is
   reported as unknown: the planner answers nothing rather than ignore a word it could not place.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from agent.answer import AnswerKind, Metric
from agent.planner_periods import NUMBER_WORDS, PeriodHit, find_periods
from agent.planner_vocab import ValueMatch, Vocabulary, compact
from tools.errors import QueryError
from tools.periods import Period, parse_period

Granularity = Literal["day", "week", "month"]
CostMetric = Literal["billed", "effective", "list"]

DEFAULT_TOP = 5  # "top services", "the most expensive teams"
AUTO_TOP = 10  # a grouping with more groups than this is summarised: the 10 largest + "(other)"

#: words naming a dimension ("by team", "which models", "the search team")
DIMENSION_WORDS: dict[str, str] = {
    "team": "team",
    "teams": "team",
    "squad": "team",
    "squads": "team",
    "project": "project",
    "projects": "project",
    "env": "environment",
    "envs": "environment",
    "environment": "environment",
    "environments": "environment",
    "feature": "feature",
    "features": "feature",
    "cost_center": "cost_center",
    "cost_centers": "cost_center",
    "owner": "owner",
    "owners": "owner",
    "workload": "workload",
    "workloads": "workload",
    "provider": "provider",
    "providers": "provider",
    "cloud": "provider",
    "clouds": "provider",
    "vendor": "provider",
    "vendors": "provider",
    "service": "service",
    "services": "service",
    "service_category": "service_category",
    "service_categories": "service_category",
    "category": "service_category",
    "categories": "service_category",
    "service_subcategory": "service_subcategory",
    "subcategory": "service_subcategory",
    "subcategories": "service_subcategory",
    "account": "account",
    "accounts": "account",
    "sub_account": "sub_account",
    "sub_accounts": "sub_account",
    "subscription": "sub_account",
    "subscriptions": "sub_account",
    "region": "region",
    "regions": "region",
    "resource": "resource",
    "resources": "resource",
    "instance": "resource",
    "instances": "resource",
    "vm": "resource",
    "vms": "resource",
    "machine": "resource",
    "machines": "resource",
    "bucket": "resource",
    "buckets": "resource",
    "volume": "resource",
    "volumes": "resource",
    "endpoint": "resource",
    "endpoints": "resource",
    "model": "model",
    "models": "model",
    "charge_category": "charge_category",
    "charge_categories": "charge_category",
    "source": "source",
    "sources": "source",
    "currency": "currency",
    "currencies": "currency",
    "llm_provider": "llm_provider",
    "llm_providers": "llm_provider",
}
PLURAL_DIMENSION_WORDS = frozenset(
    w for w in DIMENSION_WORDS if w.endswith("s") and w not in ("sub_account",)
)
#: multi-word dimension names, joined before anything else is read
_DIMENSION_PHRASES = (
    (r"\bcost[ -]cent(?:er|re)(s?)\b", r"cost_center\1"),
    (r"\b(?:sub[ -]?|linked |member )account(s?)\b", r"sub_account\1"),
    (r"\bbilling account(s?)\b", r"account\1"),
    (r"\bcharge (?:categor(y|ies)|types?)\b", r"charge_category"),
    (r"\bservice categor(y|ies)\b", r"service_category"),
    (r"\bservice sub-?categor(y|ies)\b", r"service_subcategory"),
    (r"\b(?:llm|model|ai) providers?\b", r"llm_provider"),
)
#: function words: never a value on their own, never the start or end of a multi-word value
STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "for",
        "in",
        "on",
        "at",
        "to",
        "by",
        "per",
        "from",
        "with",
        "and",
        "or",
        "vs",
        "versus",
        "than",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "done",
        "has",
        "have",
        "had",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "how",
        "much",
        "many",
        "me",
        "my",
        "we",
        "our",
        "us",
        "you",
        "your",
        "i",
        "show",
        "tell",
        "give",
        "list",
        "get",
        "see",
        "let",
        "please",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "about",
        "into",
        "over",
        "under",
        "up",
        "down",
        "out",
        "so",
        "also",
        "just",
        "only",
        "all",
        "any",
        "each",
        "every",
        "some",
        "there",
        "their",
        "them",
        "they",
        "it's",
        "what's",
        "s",
        ",",
        "-",
        "total",
        "overall",
        "sum",
        "amount",
        "figure",
        "number",
        "between",
        "since",
        "until",
        "till",
        "through",
        "per",
    ]
)
#: words of cost questions the parser knows: left over, they are not "unknown"
GENERIC = frozenset(
    [
        "spend",
        "spent",
        "spending",
        "spends",
        "cost",
        "costs",
        "costing",
        "costed",
        "bill",
        "bills",
        "billing",
        "charge",
        "charges",
        "charged",
        "paid",
        "pay",
        "paying",
        "money",
        "dollars",
        "usd",
        "eur",
        "gbp",
        "price",
        "prices",
        "pricing",
        "expense",
        "expenses",
        "expensive",
        "cheap",
        "cheaper",
        "cheapest",
        "costly",
        "costliest",
        "big",
        "bigger",
        "biggest",
        "large",
        "larger",
        "largest",
        "high",
        "higher",
        "highest",
        "low",
        "lower",
        "lowest",
        "most",
        "least",
        "more",
        "less",
        "top",
        "bottom",
        "rank",
        "ranked",
        "ranking",
        "sorted",
        "sort",
        "order",
        "breakdown",
        "broken",
        "split",
        "grouped",
        "group",
        "grouping",
        "across",
        "along",
        "together",
        "including",
        "include",
        "includes",
        "excluding",
        "exclude",
        "excludes",
        "except",
        "whole",
        "entire",
        "overall",
        "company",
        "org",
        "organisation",
        "organization",
        "everything",
        "everyone",
        "altogether",
        "combined",
        "average",
        "avg",
        "mean",
        "median",
        "day",
        "days",
        "daily",
        "week",
        "weeks",
        "weekly",
        "month",
        "months",
        "monthly",
        "quarter",
        "quarters",
        "quarterly",
        "year",
        "years",
        "yearly",
        "annual",
        "annually",
        "now",
        "currently",
        "current",
        "so",
        "far",
        "date",
        "period",
        "time",
        "ago",
        "recent",
        "recently",
        "latest",
        "last",
        "past",
        "previous",
        "prior",
        "next",
        "this",
        "that",
        "today",
        "yesterday",
        "trend",
        "trends",
        "over",
        "running",
        "use",
        "used",
        "using",
        "usage",
        "consumption",
        "consume",
        "consumed",
        "consuming",
        "run",
        "runs",
        "ran",
        "running",
        "workload",
        "doing",
        "going",
        "go",
        "went",
        "goes",
        "up",
        "down",
        "rise",
        "rose",
        "risen",
        "fall",
        "fell",
        "jump",
        "jumped",
        "increase",
        "increased",
        "decrease",
        "decreased",
        "change",
        "changed",
        "changes",
        "difference",
        "differences",
        "delta",
        "grow",
        "grew",
        "growth",
        "share",
        "percent",
        "percentage",
        "portion",
        "fraction",
        "part",
        "compare",
        "compared",
        "comparison",
        "against",
        "relative",
        "what's",
        "how's",
        "where's",
        "who's",
        "whats",
        "hows",
        "where",
        "why",
        "when",
        "which",
        "who",
        "whose",
        "show",
        "shows",
        "showing",
        "tell",
        "give",
        "list",
        "display",
        "report",
        "summary",
        "summarise",
        "summarize",
        "describe",
        "explain",
        "detail",
        "details",
        "figure",
        "figures",
        "numbers",
        "value",
        "values",
        "data",
        "info",
        "information",
        "stats",
        "statistics",
        "metrics",
        "metric",
        "kpi",
        "kpis",
        "view",
        "look",
        "see",
        "check",
        "find",
        "know",
        "want",
        "need",
        "like",
        "would",
        "could",
        "should",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
        "hey",
        "ok",
        "okay",
        "yes",
        "no",
        "our",
        "ours",
        "we",
        "us",
        "i",
        "my",
        "me",
        "actual",
        "actuals",
        "real",
        "exactly",
        "approx",
        "approximately",
        "about",
        "around",
        "roughly",
        "nearly",
        "almost",
        "just",
        "only",
        "still",
        "yet",
        "already",
        "ever",
        "again",
        "since",
        "per",
        "each",
        "every",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "main",
        "primary",
        "key",
        "major",
        "biggest",
        "leading",
        "driver",
        "drivers",
        "drove",
        "driving",
        "contributors",
        "contributor",
        "responsible",
        "behind",
        "cause",
        "causes",
        "caused",
        "reason",
        "happen",
        "happened",
        "happening",
        "spike",
        "spikes",
        "rate",
        "amount",
        "amounts",
        "sum",
        "totals",
        "subtotal",
        "all",
        "entire",
    ]
)
_COST_WORDS = re.compile(
    r"\b(?:spen[dt]|spending|costs?|costing|bill(?:ed|s|ing)?|charges?|paid|pay|money|expensive|costliest|"
    r"cheapest|dollars|expenses?|how much|breakdown|total)\b|\$"
)
_COMPARE_KW = re.compile(
    r"\b(?:vs\.?|versus|compared (?:to|with)|compare(?:d)? (?:it )?(?:to|with)|against|relative to|than|"
    r"in comparison (?:to|with))(?=\s|$)"
)
_VS_LAST = re.compile(
    r"\b(?:vs\.?|versus|compared (?:to|with)|than|against)\s+(?:the\s+)?(?:last|previous|prior|preceding|before)"
    r"(?:\s+(?:one|period))?(?=\s*(?:$|,|\x00))"
)
_OVER_KW = re.compile(
    r"\b(month|week|quarter|year)[- ]over[- ](?:month|week|quarter|year)\b|\b(mom|wow|qoq|yoy)\b"
)
_OVER_UNIT = {"mom": "month", "wow": "week", "qoq": "quarter", "yoy": "year"}
_OVER_DEFAULT = {
    "month": ("this-month", "month to date"),
    "week": ("last-week", "last week"),
    "quarter": ("this-quarter", "this quarter"),
    "year": ("this-year", "this year"),
}
_MODEL_LIKE = re.compile(
    r"^(?:gpt-?\d|gpt4|o[134](?:-|$)|claude|llama|gemini|mistral|mixtral|command-|titan|text-embedding|"
    r"dall-?e|whisper|sonnet|haiku|opus)"
)
_NUM = r"(\d{1,3}|" + "|".join(NUMBER_WORDS) + r")"


@dataclass
class QueryPlan:
    """What a question asks, in the terms of the tools. ``period`` is always set for cost kinds (default:
    month to date, ``period_said`` None); ``filters`` hold store values (as in the store)."""

    question: str
    kind: AnswerKind = "costs"
    understood: bool = True
    period: Period | None = None
    period_said: str | None = None  # how the question said it; None: the default was used
    filters: dict[str, list[str]] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    metric: Metric = "cost"
    cost_metric: CostMetric = "effective"
    top: int | None = None
    top_said: bool = False
    ascending: bool = False  # "cheapest", "least": the smallest first
    compare: bool = False  # with the period just before (``Period.previous()``)
    compare_period: Period | None = None  # with another period the question named
    granularity: Granularity | None = None
    ai_spend: bool = False
    exclude_one_offs: bool = False
    statuses: tuple[str, ...] = ()  # findings / approvals
    finding_kind: str | None = None
    audit_event: str | None = None
    matches: list[ValueMatch] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # "no team 'marketing' in the data"
    notes: list[str] = field(default_factory=list)
    help_requested: bool = False
    superlative: bool = False  # "the most", "biggest": top N without a number
    budget_state: str | None = None  # "over" | "forecast-over" | "warning": which budgets are asked about
    severity: str | None = None  # findings of this severity
    finding_rule: str | None = None  # findings of this rule
    request_id: str | None = None  # one remediation request


# ----- text handling ----------------------------------------------------------------------------------------
_MASK = "\x00"


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int


_DASHES = str.maketrans("‐‑‒–—−", "------")


def normalise(question: str) -> str:
    s = question.lower().translate(_DASHES)
    s = re.sub(r"[’‘`´]", "'", s)
    s = re.sub(r"(\w)'s\b", r"\1", s)  # possessive: "search's" -> "search"
    s = re.sub(r"(\w)s'(?=\s|$)", r"\1s", s)
    s = re.sub(r"[?!;\"“”()\[\]{}*]", " ", s)
    s = re.sub(r"(?<=[a-z_])\s*=\s*(?=\S)|(?<=[a-z_]):\s+", " ", s)  # "team=search", "model: gpt-4o"
    s = re.sub(r"\.(?=\s|$)", " ", s)  # a sentence's full stop; keeps 3.5, v1:0, a@b.com
    s = re.sub(r"\s+,", ",", s)
    s = re.sub(r",(?=\S)", ", ", s)
    for pattern, repl in _DIMENSION_PHRASES:
        s = re.sub(pattern, repl, s)
    return re.sub(r"\s+", " ", s).strip()


def _tokens(s: str) -> list[_Token]:
    return [_Token(m.group(0), m.start(), m.end()) for m in re.finditer(r"[^\s\x00,]+|,", s)]


def _adjacent(s: str, a: _Token, b: _Token) -> bool:
    return _MASK not in s[a.end : b.start]


class _Text:
    """The question with consumed spans masked out, and where each value was read."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.found: list[tuple[int, int, ValueMatch]] = []

    def mask(self, start: int, end: int) -> None:
        self.s = self.s[:start] + _MASK * (end - start) + self.s[end:]

    def find(self, pattern: re.Pattern[str] | str) -> list[re.Match[str]]:
        return list(re.finditer(pattern, self.s))

    def take(self, pattern: re.Pattern[str] | str) -> list[re.Match[str]]:
        found = self.find(pattern)
        for m in found:
            self.mask(*m.span())
        return found


# ----- the parser -----------------------------------------------------------------------------------------
def parse(question: str, vocab: Vocabulary, today: date) -> QueryPlan:
    plan = QueryPlan(question=question)
    text = _Text(normalise(question))
    if not text.s:
        plan.understood, plan.kind = False, "help"
        return plan
    signals = 0
    # 1. comparisons and periods
    compare_at = [m.start() for m in text.find(_COMPARE_KW)]
    over = text.find(_OVER_KW)
    try:
        hits = find_periods(text.s, today)
    except QueryError as exc:
        plan.understood, plan.kind = False, "help"
        plan.unknown.append(str(exc))
        return plan
    original = text.s
    for h in hits:
        text.mask(*h.span)
    signals += len(hits)
    _periods(plan, original, hits, compare_at[0] if compare_at else None, over, today)
    for m in over:
        text.mask(*m.span())
    if text.take(_VS_LAST) and plan.compare_period is None:
        plan.compare = True  # "this month vs last": the period before
        if plan.period is None:
            plan.period = default_period(today)
    compare_kw_spans = [m.span() for m in text.take(_COMPARE_KW)]
    # 2. multi-word values, and one-word values said with their dimension ("the growth team")
    _values(plan, text, vocab, min_words=2, fuzzy=False)
    _values(plan, text, vocab, min_words=1, fuzzy=False, cued_only=True)
    _values(plan, text, vocab, min_words=1, fuzzy=False, compound_only=True)  # "ml-research", "gpt-4o"
    _ids(plan, text, vocab)
    # 3. key words
    signals += _keywords(plan, text)
    # 4. one-word values, then near misses
    _values(plan, text, vocab, min_words=1, fuzzy=False)
    _values(plan, text, vocab, min_words=1, fuzzy=True)
    _list_values(plan, text, vocab)
    # 5. dimensions left: the grouping
    _grouping(plan, text)
    # "search vs support": two values of one dimension on both sides of "vs" compare the values
    if compare_kw_spans and not plan.compare and plan.compare_period is None:
        _compare_values(plan, text, compare_kw_spans[0][0])
    # 6. what is left
    _leftovers(plan, text, vocab)
    signals += len(plan.matches) + len(plan.group_by) + len(plan.unknown)
    if _COST_WORDS.search(plan.question.lower()):
        signals += 1
    _decide(plan, signals, today)
    return plan


def _right_after(text: str, keyword_at: int, start: int) -> bool:
    if start <= keyword_at:
        return False
    between = _COMPARE_KW.sub("", text[keyword_at:start], count=1).replace(_MASK, " ").strip()
    return bool(
        re.fullmatch(
            r"(?:(?:the )?same (?:period|time|days) )?(?:(?:what )?(?:we |it |they )?(?:spent|spend|cost|costs)\s*)?"
            r"(?:(?:in|during|for|of|over)\s*)?(?:the\s*)?",
            between,
        )
    )


def _periods(
    plan: QueryPlan,
    text: str,
    hits: list[PeriodHit],
    compare_at: int | None,
    over: list[re.Match[str]],
    today: date,
) -> None:
    # the period compared with is the one said right after "vs" ("prod vs dev last month" compares values)
    other = [h for h in hits if compare_at is not None and _right_after(text, compare_at, h.span[0])]
    main = [h for h in hits if h not in other]
    if compare_at is None and "compare" in plan.question.lower() and len(hits) >= 2:
        main, other = hits[:1], hits[1:]
    main_periods = [h for h in main if h.period is not None]
    if any(h.period is None for h in main) and not other:
        other = [h for h in main if h.period is None]  # "last week and the week before"
    if main_periods:
        first = main_periods[0]
        assert first.period is not None
        plan.period, plan.period_said = first.period, first.said
        for extra in main_periods[1:]:
            assert extra.period is not None
            if extra.period.start == plan.period.end:  # "June and July": one span
                plan.period = Period(
                    plan.period.start, extra.period.end, f"{plan.period.label} and {extra.period.label}"
                )
                plan.period_said = f"{plan.period_said} and {extra.said}"
            elif not other:
                other = [extra]  # "September, August": the second is compared with
            else:
                plan.notes.append(f"also said {extra.said!r}: answered for {first.said!r} only")
    if over:
        unit = over[0].group(1) or _OVER_UNIT[over[0].group(2)]
        if plan.period is None:
            name, label = _OVER_DEFAULT[unit]
            named = parse_period(name, today)
            plan.period = Period(named.start, named.end, label)
            plan.period_said = over[0].group(0)
        plan.compare = True
    if other:
        said = other[0]
        if plan.period is None:
            plan.period = default_period(today)
        if (
            said.period is None
            or _same(said.period, plan.period)
            or _same(said.period, plan.period.previous())
        ):
            plan.compare = True
        else:
            plan.compare_period = said.period


def default_period(today: date) -> Period:
    """Month to date: the period of a question that says none (the answer says so)."""
    month = parse_period("this-month", today)
    return Period(month.start, month.end, "month to date")


def _same(a: Period, b: Period) -> bool:
    return a.start == b.start and a.end == b.end


def _cues(tokens: list[_Token], i: int, j: int, s: str) -> dict[str, int]:
    """Dimension names said right before tokens[i:j] ("team search") or right after ("search team"):
    dimension -> the index of the word."""
    out: dict[str, int] = {}
    if i > 0 and tokens[i - 1].text in DIMENSION_WORDS and _adjacent(s, tokens[i - 1], tokens[i]):
        out[DIMENSION_WORDS[tokens[i - 1].text]] = i - 1
    if j < len(tokens) and tokens[j].text in DIMENSION_WORDS and _adjacent(s, tokens[j - 1], tokens[j]):
        out.setdefault(DIMENSION_WORDS[tokens[j].text], j)
    return out


def _values(
    plan: QueryPlan,
    text: _Text,
    vocab: Vocabulary,
    *,
    min_words: int,
    fuzzy: bool,
    cued_only: bool = False,
    compound_only: bool = False,
) -> None:
    tokens = _tokens(text.s)
    used = [False] * len(tokens)
    i = 0
    while i < len(tokens):
        matched = False
        longest = 5 if min_words > 1 else (2 if fuzzy else 1)
        for n in range(min(longest, len(tokens) - i), min_words - 1, -1):
            window = tokens[i : i + n]
            if any(used[i : i + n]) or not all(
                _adjacent(text.s, a, b) for a, b in itertools.pairwise(window)
            ):
                continue
            if compound_only and not re.search(r"[-_.@0-9]", window[0].text):
                continue
            if window[0].text == "," or any(t.text in DIMENSION_WORDS for t in window):
                continue  # "search team" is the value "search" with its cue, not a value "search team"
            cues = _cues(tokens, i, i + n, text.s)
            if cued_only and not cues:
                continue
            if (window[0].text in STOP or window[-1].text in STOP) and not (cues and n == 1):
                continue  # a function word is a value only said with its dimension: "region us"
            if fuzzy and (
                any(t.text in GENERIC or t.text in STOP for t in window) or window[0].text[:1].isdigit()
            ):
                continue
            phrase = " ".join(t.text for t in window)
            match = vocab.lookup(phrase, cues, fuzzy=fuzzy)
            if match is None or (cued_only and not match.cued):
                continue
            _add_match(plan, text, match, window[0].start, window[-1].end)
            if match.dimension in cues:
                cue = tokens[cues[match.dimension]]
                text.mask(cue.start, cue.end)
                used[cues[match.dimension]] = True
            for k in range(i, i + n):
                used[k] = True
            i += n
            matched = True
            break
        if not matched:
            i += 1


_REQUEST_ID = re.compile(r"\breq-[0-9a-f]{6,}\b")


def _ids(plan: QueryPlan, text: _Text, vocab: Vocabulary) -> None:
    """A remediation request id ("req-1a2b3c...") and a waste rule's id ("untagged-spend", "idle gpu
    instance") said in the question."""
    for m in text.take(_REQUEST_ID):
        plan.request_id = m.group(0)
    if not vocab.rules:
        return
    by_key = {compact(r): r for r in vocab.rules}
    # a rule named in words ("untagged spend") is a rule only when findings are asked about; otherwise the
    # words keep their meaning ("untagged spend in Q3" is a cost question). "untagged-spend" is the rule id.
    about_findings = re.search(r"\bfindings?\b|\bflagged\b|\brules?\b", text.s) is not None
    tokens = _tokens(text.s)
    for n in (4, 3, 2, 1):
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            if not all(_adjacent(text.s, a, b) for a, b in itertools.pairwise(window)):
                continue
            rule = by_key.get(compact("".join(t.text for t in window)))
            hyphenated = n == 1 and "-" in window[0].text
            if rule and (hyphenated or (n > 1 and about_findings)):
                plan.finding_rule = rule
                text.mask(window[0].start, window[-1].end)
                return


def _add_match(plan: QueryPlan, text: _Text, match: ValueMatch, start: int, end: int) -> None:
    plan.matches.append(match)
    vals = plan.filters.setdefault(match.dimension, [])
    vals.extend(v for v in match.values if v not in vals)
    text.mask(start, end)
    text.found.append((start, end, match))


def _list_values(plan: QueryPlan, text: _Text, vocab: Vocabulary) -> None:
    """ "data and growth teams": a word that names a value only next to its dimension's name takes the
    dimension of the value it is listed with."""
    for tok in reversed(_tokens(text.s)):
        if tok.text in STOP or tok.text in DIMENSION_WORDS:
            continue
        m = re.match(r"\s*(?:,\s*|(?:and|or|&)\s+)(?:the\s+)?(?=\x00)", text.s[tok.end :])
        if not m:
            continue
        at = tok.end + m.end()
        dim = next((found.dimension for start, _end, found in text.found if start == at), None)
        if dim is None:
            continue
        match = vocab.lookup(tok.text, {dim}, fuzzy=False)
        if match is not None and match.dimension == dim:
            _add_match(plan, text, match, tok.start, tok.end)


_KEYWORDS: tuple[tuple[str, str], ...] = (
    # (pattern, action)
    (
        r"\bhelp\b|\bwhat can you (?:do|answer|tell me)\b|\bwhat (?:questions )?can i ask\b|\bhow do i use\b",
        "help",
    ),
    (
        r"\b(?:approval|remediation|change) requests?\b|\bapprovals?\b|\bapprove\b|\bawaiting\b|\bremediations?\b|"
        r"\bwaiting (?:for|on) (?:approval|sign[- ]?off|review)\b|\bsign[- ]?offs?\b",
        "approvals",
    ),
    (
        r"\baudit(?:ed)?(?: trail| log)?\b|\bwho (?:approved|rejected|executed|ran|rolled back|changed|cancelled)\b|"
        r"\brolled back\b|\brollbacks?\b|\bexecuted\b|\bactions? (?:taken|executed|run)\b|\bchange log\b",
        "audit",
    ),
    (r"\b(?:token )?budgets?\b|\bover budget\b|\bunder budget\b|\bguardrails? on spend\b", "budgets"),
    (
        r"\buntagged\b|\bunallocated\b|\bun-?attributed\b|\bunowned\b|\bnot (?:tagged|allocated|attributed)\b|"
        r"\bwithout (?:a |any )?(?:team|tags?|owner)s?\b|\bno (?:team|tags?|owner)s?\b|\bmissing (?:team )?tags?\b|"
        r"\btag(?:ging)? coverage\b|\bnobody owns\b",
        "untagged",
    ),
    (
        r"\bfindings?\b|\bwaste(?:d|ful)?\b|\bidle\b|\bunused\b|\bsavings?\b|\bsave\b|\brecommendations?\b|"
        r"\boptimi[sz](?:e|ation|ations)\b|\bright[- ]?siz(?:e|ing|ed)\b|\bopportunit(?:y|ies)\b|\borphan(?:ed)?\b|"
        r"\bover[- ]?provisioned\b|\bcut costs?\b|\breduce (?:our )?(?:costs?|spend)\b",
        "findings",
    ),
    (
        r"\bwhy\b|\banomal(?:y|ies|ous)\b|\bspik(?:e|es|ed|ing)\b|\bunusual\b|\bunexpected(?:ly)?\b|\bsurg(?:e|ed|es)\b|"
        r"\bjump(?:ed|s)?\b|\bwhat happened\b|\broot[- ]cause\b|\bblew up\b|\bexplain\b|\bwhat caused\b|\bsudden(?:ly)?\b",
        "anomalies",
    ),
    (
        r"\bforecast(?:s|ed|ing)?\b|\bprojected\b|\bprojections?\b|\bpredict(?:ed|ion|ions)?\b|"
        r"\bend of (?:the )?(?:month|quarter|year)\b|\b(?:month|quarter|year)[- ]end\b|\beo[mqy]\b|"
        r"\bwill (?:we|it|they|\S+)(?: spend)? (?:spend|cost|end up|land|be|reach)\b|\bwhere will\b|\bon track\b|\brun[- ]rate\b|\bland(?:ing)? at\b",
        "forecast",
    ),
    (
        r"\b(?:cost|price|spend) per (?:1m |one million |million |1 million |1k |thousand |1000 |1,000 |1,000,000 )?"
        r"(?:input |output )?tokens?\b|\bper (?:1m|million|1k|thousand|one million) tokens\b|\bper token\b",
        "cost_per_1m_tokens",
    ),
    (
        r"\b(?:cost |price |spend )?per (?:api |llm |model )?(?:request|call|invocation)s?\b",
        "cost_per_request",
    ),
    (
        r"\b(?:cost |price |spend )?per (?:completed |successful |finished |agent )?(?:task|conversation|session|job)s?\b",
        "cost_per_completed_task",
    ),
    (
        r"\b(?:what|how much) (?:does|do|did) (?:a|an|one|each|every|the average|an average) (?:completed |successful |"
        r"finished |single )?(?:\S+ ){0,2}?(?:conversation|task|session|job|chat)s? cost\b",
        "cost_per_completed_task",
    ),
    (
        r"\b(?:what|how much) (?:does|do|did) (?:a|an|one|each|every|the average|an average) (?:single )?(?:\S+ ){0,2}?"
        r"(?:request|call)s? cost\b",
        "cost_per_request",
    ),
    (r"\bunit (?:cost|economics|price|metric)s?\b", "unit"),
    (
        r"\b(?:api |llm |model )?requests?\b|\bapi calls?\b|\bllm calls?\b|\bcalls\b|\binvocations\b",
        "requests",
    ),
    (r"\btokens?\b|\btoken (?:usage|consumption|count)s?\b", "tokens"),
    (r"\b(?:ai|a\.i|genai|gen-ai|gen ai|generative ai|llm|llms|ml|machine learning|gpu)\b", "ai"),
    (r"\bbilled\b|\binvoiced?\b|\bbefore amorti[sz]ation\b|\bunamorti[sz]ed\b", "billed"),
    (
        r"\blist (?:price|cost)s?\b|\bon[- ]demand (?:price|cost|rate)s?\b|\bbefore discounts?\b|\bundiscounted\b",
        "list",
    ),
    (
        r"\beffective (?:cost|spend)\b|\bamorti[sz]ed\b|\bafter discounts?\b|\bnet (?:cost|spend)\b",
        "effective",
    ),
    (
        r"\b(?:exclud(?:e|ing)|without|minus|ex|except|not counting) (?:the )?(?:one[- ]offs?|tax(?:es)?|purchases?|"
        r"one[- ]time(?: charges)?|upfront(?: fees)?)\b|\brecurring\b",
        "exclude_one_offs",
    ),
    (
        rf"\btop {_NUM}\b|\b{_NUM} (?:most expensive|biggest|largest|highest|costliest|top|priciest)\b",
        "top_n",
    ),
    (rf"\b(?:bottom|least expensive|cheapest|smallest|lowest) {_NUM}\b", "bottom_n"),
    (
        r"\btop\b|\bmost expensive\b|\bbiggest\b|\blargest\b|\bhighest\b|\bcostliest\b|\bpriciest\b|\bthe most\b|"
        r"\bmost\b|\bmain\b|\bmajor\b|\bleading\b|\bdriv(?:er|ers|ing)\b",
        "superlative",
    ),
    (r"\bcheapest\b|\bleast\b|\blowest\b|\bsmallest\b|\bbottom\b", "ascending"),
    (r"\b(?:daily|per day|by day|each day|day by day|day-by-day|a day)\b", "day"),
    (r"\b(?:weekly|per week|by week|each week|week by week|a week)\b", "week"),
    (r"\b(?:monthly|per month|by month|each month|month by month|a month)\b", "month"),
    (r"\btrend(?:s|ing)?\b|\bover time\b|\btime series\b", "trend"),
    (
        r"\b(?:change[ds]?|increase[ds]?|decrease[ds]?|grew|grow(?:n|ing|th)?|went (?:up|down)|go(?:ne)? (?:up|down)|"
        r"difference|delta|rose|risen|fell|dropped|drop)\b",
        "change",
    ),
)
_KEYWORD_RES = tuple((re.compile(p), a) for p, a in _KEYWORDS)
_FINDING_STATUSES = {
    "open": ("open", "notified"),
    "active": ("open", "notified"),
    "notified": ("notified",),
    "resolved": ("resolved",),
    "suppressed": ("suppressed",),
    "snoozed": ("snoozed",),
}
_APPROVAL_STATUSES = {
    "pending": "pending",
    "waiting": "pending",
    "awaiting": "pending",
    "approved": "approved",
    "rejected": "rejected",
    "expired": "expired",
    "failed": "failed",
    "succeeded": "succeeded",
    "executed": "succeeded",
    "completed": "succeeded",
    "rolled back": "rolled_back",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
_FINDING_KINDS = {
    "waste": "waste",
    "idle": "waste",
    "unused": "waste",
    "anomaly": "anomaly",
    "anomalies": "anomaly",
    "budget": "budget",
    "token-budget": "token-budget",
    "governance": "governance",
}
_AUDIT_EVENTS = {
    "approved": "request.approved",
    "rejected": "request.rejected",
    "executed": "execution.",
    "ran": "execution.",
    "rolled back": "rollback.",
    "rollback": "rollback.",
    "rollbacks": "rollback.",
    "proposed": "request.proposed",
    "cancelled": "request.cancelled",
}


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


def _keywords(plan: QueryPlan, text: _Text) -> int:
    """Read the key words; return how many were found."""
    found: dict[str, list[re.Match[str]]] = {}
    original = text.s
    for pattern, action in _KEYWORD_RES:
        hits = text.take(pattern)
        if hits:
            found.setdefault(action, []).extend(hits)
    q = original.replace(_MASK, " ")
    kinds = [
        k
        for k in ("approvals", "audit", "budgets", "untagged", "findings", "anomalies", "forecast")
        if k in found
    ]
    if "help" in found:
        plan.help_requested = True
    # the kind: the most specific thing asked wins
    if "audit" in kinds and "approvals" in kinds and re.search(r"\bwho (?:approved|rejected)\b", q):
        kinds.remove("approvals")
    if "budgets" in kinds:
        kinds = [k for k in kinds if k not in ("forecast", "anomalies")] or kinds
    if "findings" in kinds and "anomalies" in kinds and "why" not in q:
        kinds.remove("anomalies")
    if "approvals" in kinds and "findings" in kinds:
        kinds.remove("findings")  # "savings waiting for approval"
    if kinds:
        plan.kind = kinds[0]
    metrics = [m for m in ("cost_per_1m_tokens", "cost_per_request", "cost_per_completed_task") if m in found]
    if metrics:
        plan.metric = metrics[0]
    elif "unit" in found:
        plan.metric = "cost_per_1m_tokens"
        plan.notes.append(
            "unit costs: cost per 1M tokens here; per request and per completed task are in the rows"
        )
    elif "tokens" in found:
        plan.metric = "tokens"
    elif "requests" in found:
        plan.metric = "requests"
    said_metrics = [m for m in ("billed", "list", "effective") if m in found]
    if said_metrics:
        plan.cost_metric = said_metrics[0]
        for other in said_metrics[1:]:
            plan.notes.append(
                f"This answer is the {said_metrics[0]} cost; for the {other} cost ask again or re-run with --metric {other}."
            )
    plan.ai_spend = "ai" in found
    plan.exclude_one_offs = "exclude_one_offs" in found
    if "top_n" in found:
        m = found["top_n"][0]
        plan.top, plan.top_said = _number(next(g for g in m.groups() if g)), True
    elif "bottom_n" in found:
        m = found["bottom_n"][0]
        plan.top, plan.top_said, plan.ascending = _number(next(g for g in m.groups() if g)), True, True
    elif "superlative" in found:
        plan.top, plan.top_said, plan.superlative = DEFAULT_TOP, True, True
    if "ascending" in found and "superlative" not in found:
        plan.ascending = True
        if plan.top is None:
            plan.top, plan.top_said = DEFAULT_TOP, True
    for g in ("day", "week", "month"):
        if g in found:
            plan.granularity = g
            break
    if "trend" in found and plan.granularity is None:
        plan.granularity = "day"  # refined once the period is known
        plan.notes.append("trend")
    if "change" in found and plan.kind == "costs" and plan.compare_period is None:
        plan.compare = True
    return sum(1 for a in found if a not in ("superlative", "change", "ascending"))


def _grouping(plan: QueryPlan, text: _Text) -> None:
    tokens = _tokens(text.s)
    group: list[str] = []
    triggers = {"by", "per", "each", "every", "which", "what", "across", "all", "top", "among", "between"}
    for i, tok in enumerate(tokens):
        dim = DIMENSION_WORDS.get(tok.text)
        if dim is None:
            continue
        prev = tokens[i - 1].text if i > 0 and _adjacent(text.s, tokens[i - 1], tok) else ""
        prev2 = tokens[i - 2].text if i > 1 and _adjacent(text.s, tokens[i - 2], tokens[i - 1]) else ""
        nxt = tokens[i + 1].text if i + 1 < len(tokens) and _adjacent(text.s, tok, tokens[i + 1]) else ""
        named = (
            _is_name(prev) and prev not in triggers
        )  # "the marketing team": an unknown name, not a grouping
        grouped = (
            prev in triggers
            or prev.isdigit()
            or prev in NUMBER_WORDS
            or (tok.text in PLURAL_DIMENSION_WORDS and not named)
            or (
                nxt in ("breakdown", "split", "spend", "cost", "costs", "spending", "level", "wise")
                and not named
            )
            or (prev in ("and", ",", "&", "then") and group and prev2 in DIMENSION_WORDS)
            or (prev == "the" and plan.top is not None)  # "the most expensive service" (superlative masked)
            or (i == 0 and plan.top is not None)
        )
        if not grouped and _MASK in text.s[max(0, tok.start - 2) : tok.start] and plan.top is not None:
            grouped = True  # "biggest <masked> service"
        if grouped and dim not in group:
            if not group and plan.superlative and tok.text not in PLURAL_DIMENSION_WORDS:
                plan.top = 1  # "which team spent the most": the one team (and the rest as "(other)")
            group.append(dim)
            text.mask(tok.start, tok.end)
    plan.group_by = tuple(group)


def _compare_values(plan: QueryPlan, text: _Text, at: int) -> None:
    for dim in list(plan.filters):
        before = [m for start, _e, m in text.found if m.dimension == dim and start < at]
        after = [m for start, _e, m in text.found if m.dimension == dim and start > at]
        if before and after:
            if dim not in plan.group_by:
                plan.group_by = (*plan.group_by, dim)
            return
    if plan.period is not None and not plan.filters:
        plan.compare = True


def _leftovers(plan: QueryPlan, text: _Text, vocab: Vocabulary) -> None:
    tokens = _tokens(text.s)
    for i, tok in enumerate(tokens):
        w = tok.text
        if w in STOP or w in GENERIC or w == ",":
            continue
        amb = vocab.ambiguity(w)
        if amb:
            plan.unknown.append(f"{w!r} could be any of: {', '.join(amb)}; say which")
            continue
        if _MODEL_LIKE.match(w) and w not in DIMENSION_WORDS:
            plan.unknown.append(_unknown_value("model", w, vocab))
            continue
        if w in DIMENSION_WORDS:
            # a dimension's name next to a word that is none of its values: "the marketing team"
            dim = DIMENSION_WORDS[w]
            for k in (i - 1, i + 1):
                if 0 <= k < len(tokens) and _adjacent(text.s, tokens[min(i, k)], tokens[max(i, k)]):
                    other = tokens[k].text
                    if _is_name(other):
                        plan.unknown.append(_unknown_value(dim, other, vocab))
                        text.mask(tokens[k].start, tokens[k].end)
                        break
            continue
        if (
            (
                i > 0
                and tokens[i - 1].text in ("on", "for", "of", "from", "about", "in")
                and _adjacent(text.s, tokens[i - 1], tok)
            )
            and _is_name(w)
            and not any(w in u for u in plan.unknown)
        ):
            plan.unknown.append(
                f"nothing called {w!r} in the data (no team, project, feature, model, service, "
                "provider, region or account has that name)"
            )


def _is_name(word: str) -> bool:
    return (
        bool(re.fullmatch(r"[a-z][a-z0-9@._:/-]*", word))
        and word not in STOP
        and word not in GENERIC
        and word not in DIMENSION_WORDS
        and len(word) >= 2
    )


def _unknown_value(dim: str, word: str, vocab: Vocabulary) -> str:
    known = vocab.known(dim)
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    name = dim.replace("_", " ")
    return f"no {name} {word!r} in the data" + (
        f"; known {name}s: {shown}" if known else f"; the data has no {name} values"
    )


_SEVERITY = re.compile(
    r"\b(high|medium|low)[- ]severity\b|\bseverity (?:of )?(high|medium|low)\b|\b(critical)\b"
)
_BUDGET_FORECAST_OVER = re.compile(
    r"\b(?:forecast|projected|on track|going|set|expected|likely|heading) to (?:overrun|exceed|go over|be over|blow)|"
    r"\bwill (?:overrun|exceed|go over|blow)"
)
_BUDGET_OVER = re.compile(r"\b(?:over|overrun|overspent|exceeded|blown|breached)\b")
_BUDGET_WARNING = re.compile(r"\b(?:warning|at risk|close to|near(?:ly)?|almost)\b")
_WHICH = re.compile(r"\b(?:which|what|list|show|any)\b")


def _details(plan: QueryPlan) -> None:
    """What narrows findings, approvals, audit entries and budgets, once the kind is known."""
    q = normalise(plan.question)
    if plan.kind == "findings":
        plan.statuses = tuple(
            dict.fromkeys(v for k, vs in _FINDING_STATUSES.items() if re.search(rf"\b{k}\b", q) for v in vs)
        )
        plan.finding_kind = next((v for k, v in _FINDING_KINDS.items() if re.search(rf"\b{k}\b", q)), None)
        m = _SEVERITY.search(q)
        if m:
            word = next(g for g in m.groups() if g)
            plan.severity = "high" if word == "critical" else word
    if plan.kind == "approvals":
        plan.statuses = tuple(
            dict.fromkeys(v for k, v in _APPROVAL_STATUSES.items() if re.search(rf"\b{k}\b", q))
        )
    if plan.kind == "audit":
        plan.audit_event = next((v for k, v in _AUDIT_EVENTS.items() if re.search(rf"\b{k}\b", q)), None)
    if plan.kind == "budgets" and not plan.filters and _WHICH.search(q):
        if _BUDGET_FORECAST_OVER.search(q):
            plan.budget_state = "forecast-over"
        elif _BUDGET_OVER.search(q):
            plan.budget_state = "over"
        elif _BUDGET_WARNING.search(q):
            plan.budget_state = "warning"
    if re.search(r"\bhow many\b|\bnumber of\b|\bcount\b", q) and plan.kind in (
        "findings",
        "approvals",
        "audit",
        "anomalies",
    ):
        plan.metric = "count"


def _decide(plan: QueryPlan, signals: int, today: date) -> None:
    if plan.request_id and plan.kind not in ("audit", "approvals"):
        plan.kind = "approvals"
    if plan.finding_rule and plan.kind == "costs" and plan.metric == "cost":
        plan.kind = "findings"
    if plan.request_id or plan.finding_rule:
        signals += 1
    if plan.unknown:
        plan.understood, plan.kind = False, "help"
        return
    if plan.help_requested and signals <= 1:
        plan.kind = "help"
        return
    if signals == 0:
        plan.understood, plan.kind = False, "help"
        return
    if plan.kind == "costs" and plan.metric != "cost":
        plan.kind = "unit-costs"
    _details(plan)
    if plan.period is None and plan.kind in ("costs", "unit-costs", "anomalies", "forecast", "untagged"):
        plan.period = default_period(today)
    if plan.period is not None and "trend" in plan.notes:
        plan.notes.remove("trend")
        days = plan.period.days
        plan.granularity = "day" if days <= 45 else "week" if days <= 190 else "month"
    if not plan.group_by and plan.kind in ("costs", "unit-costs", "forecast"):
        # "data and growth teams": several values of one dimension are shown side by side
        for dim in plan.filters:
            if len({m.phrase for m in plan.matches if m.dimension == dim}) > 1:
                plan.group_by = (dim,)
                break
    unit = any(n.startswith("unit costs") for n in plan.notes)
    if plan.kind in ("costs", "unit-costs") and not plan.group_by and (plan.top is not None or unit):
        plan.group_by = ("service",) if plan.kind == "costs" else ("feature",)
        plan.notes.append(f"no dimension named: grouped by {plan.group_by[0]}")
