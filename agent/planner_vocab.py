"""The offline planner's vocabulary: the values each dimension really has in the store, and the words that
name them.

Read once per ``AskContext`` (one ``list(DISTINCT ...)`` query over ``spend`` and one over
``usage_allocated``), then every question is matched against an index of *aliases*: the value with case,
spaces, hyphens and punctuation removed ("gpt4o", "searchteam" -> "search" + the cue word "team"), the model
family without its date or version ("gpt-4o-2024-08-06" -> "gpt4o", "anthropic.claude-3-5-haiku-...-v1:0" ->
"claude35haiku"), a service without its vendor prefix ("Amazon SageMaker" -> "sagemaker") and a few
well-known abbreviations (EC2, S3, GCP). An alias that is a common word ("data", "growth"), a number, very
short, or only a part of the value ("ml" for ml-research) is used only next to its dimension's name
("the data team", "region us"). A near miss ("serch") is matched with difflib at a high cutoff, and only
when exactly one value is that close: the vocabulary never picks between two candidates.
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from tools.costs import DIMENSIONS, USAGE_DIMENSIONS

if TYPE_CHECKING:
    import duckdb

    from agent.answer import AskContext

#: when one word names values of several dimensions, the first dimension here wins (unless the question
#: names the dimension next to it: "tax charges" -> charge_category)
DIMENSION_PRIORITY: tuple[str, ...] = (
    "team",
    "project",
    "feature",
    "model",
    "environment",
    "workload",
    "provider",
    "service",
    "llm_provider",
    "service_category",
    "service_subcategory",
    "charge_category",
    "region",
    "cost_center",
    "owner",
    "account",
    "sub_account",
    "source",
    "resource",
    "currency",
)

#: aliases that are ordinary words of a cost question: they name a value only next to its dimension
COMMON_WORDS = frozenset(
    {
        "all",
        "any",
        "other",
        "others",
        "none",
        "null",
        "usage",
        "data",
        "growth",
        "total",
        "cost",
        "costs",
        "spend",
        "team",
        "model",
        "models",
        "service",
        "default",
        "main",
        "test",
        "shared",
        "general",
        "misc",
        "unknown",
        "free",
        "fine",
        "top",
        "new",
        "old",
        "last",
        "next",
        "llm",
        "ai",
        "ml",
        "api",
        "app",
        "web",
        "fees",
        "fee",
    }
)

#: well-known names -> the compact forms of the store values they stand for (used only when present)
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "provider": {
        "aws": ("aws", "amazonwebservices", "amazon"),
        "amazon": ("aws", "amazonwebservices", "amazon"),
        "azure": ("microsoft", "microsoftazure", "azure"),
        "microsoft": ("microsoft", "microsoftazure", "azure"),
        "gcp": ("googlecloud", "google", "gcp", "googlecloudplatform"),
        "google": ("googlecloud", "google", "gcp", "googlecloudplatform"),
        "googlecloud": ("googlecloud", "google", "gcp", "googlecloudplatform"),
    },
    "service": {
        "ec2": ("amazonelasticcomputecloud", "amazonec2"),
        "s3": ("amazonsimplestorageservice", "amazons3"),
        "rds": ("amazonrelationaldatabaseservice", "amazonrds"),
        "ebs": ("amazonelasticblockstore",),
        "vpc": ("amazonvirtualprivatecloud",),
        "eks": ("amazonelastickubernetesservice",),
        "ecs": ("amazonelasticcontainerservice",),
        "efs": ("amazonelasticfilesystem",),
        "lambda": ("awslambda",),
        "cloudwatch": ("amazoncloudwatch",),
        "bq": ("bigquery",),
        "gce": ("computeengine",),
        "gcs": ("cloudstorage",),
        "savingsplan": ("savingsplansforawscomputeusage",),
        "savingsplans": ("savingsplansforawscomputeusage",),
        "azurevms": ("virtualmachines",),
    },
}
_VENDOR_PREFIX = re.compile(r"^(amazon|aws|azure|microsoft|google cloud|google|gcp|oracle|oci)\s+")
_MODEL_PREFIX = re.compile(r"^(?:[a-z0-9-]+[./])+")  # anthropic.claude..., openai/gpt-4o, us.anthropic....
_MODEL_SUFFIXES = (
    re.compile(r"[-@]v\d+(?::\d+)?$"),
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),
    re.compile(r"[-@]\d{8}$"),
    re.compile(r"-latest$"),
    re.compile(r"-preview$"),
)
_MODEL_FAMILY_WORDS = frozenset({"haiku", "sonnet", "opus", "gemini", "llama", "mistral", "mixtral"})
FUZZY_CUTOFF = 0.86
FUZZY_MIN_LENGTH = 5
MIN_ALIAS_LENGTH = 3


def compact(text: str) -> str:
    """Lower case with everything but letters and digits removed: "GPT-4o" -> "gpt4o"."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def model_family(value: str) -> str:
    """A model name without provider prefix, date or version: "anthropic.claude-3-5-haiku-20241022-v1:0"
    -> "claude-3-5-haiku"."""
    name = value.strip().lower()
    name = _MODEL_PREFIX.sub("", name) if not name.startswith(("gpt", "claude", "o1", "o3")) else name
    changed = True
    while changed:
        changed = False
        for pattern in _MODEL_SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
    return name


@dataclass(frozen=True)
class Alias:
    dimension: str
    value: str
    rank: int  # 0: the value itself; 1: family / vendor-less / well-known name; 2: a part of the value
    needs_cue: bool  # only next to the dimension's name


@dataclass(frozen=True)
class ValueMatch:
    """What a phrase of the question names: one dimension and the value(s) in the store it stands for
    (several when they are one thing seen through several providers, e.g. a model via Bedrock)."""

    dimension: str
    values: tuple[str, ...]
    phrase: str
    fuzzy: bool = False
    cued: bool = False  # matched with its dimension's name next to it


@dataclass
class Vocabulary:
    """Known values per dimension (``spend``'s dimensions, plus ``llm_provider`` from usage) and the alias
    index. ``usage_values`` holds what LLM usage facts carry (unit costs can be filtered by those only)."""

    values: dict[str, tuple[str, ...]]
    usage_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    data_start: date | None = None
    data_end: date | None = None  # the last day with data (inclusive)
    top_team: str | None = None
    top_model: str | None = None
    rules: tuple[str, ...] = ()  # the waste rules' ids ("untagged-spend"): findings can be asked by rule
    index: dict[str, list[Alias]] = field(default_factory=dict)
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)  # alias -> the values it could be
    _fuzzy_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_values(
        cls,
        values: Mapping[str, Iterable[str | None]],
        usage_values: Mapping[str, Iterable[str | None]] | None = None,
        *,
        data_start: date | None = None,
        data_end: date | None = None,
        top_team: str | None = None,
        top_model: str | None = None,
        rules: tuple[str, ...] = (),
    ) -> Vocabulary:
        clean = {
            d: tuple(sorted({str(v) for v in vs if v is not None and str(v).strip()}))
            for d, vs in values.items()
        }
        usage = {
            d: tuple(sorted({str(v) for v in vs if v is not None and str(v).strip()}))
            for d, vs in (usage_values or {}).items()
        }
        merged = dict(clean)
        for d, vs in usage.items():
            merged[d] = tuple(sorted(set(merged.get(d, ())) | set(vs)))
        vocab = cls(merged, usage, data_start, data_end, top_team, top_model, tuple(rules))
        vocab._build()
        return vocab

    # ----- index ------------------------------------------------------------------------------------
    def _add(self, key: str, alias: Alias) -> None:
        if not key:
            return
        entries = self.index.setdefault(key, [])
        if alias not in entries:
            entries.append(alias)

    def _build(self) -> None:
        families: dict[str, set[str]] = {}
        for dim, vals in self.values.items():
            compact_values = {compact(v): v for v in vals}
            for value in vals:
                key = compact(value)
                self._add(key, Alias(dim, value, 0, _needs_cue(key, dim)))
                lowered = value.lower().strip()
                if dim == "model":
                    family = model_family(value)
                    fkey = compact(family)
                    self._add(fkey, Alias(dim, value, 1, _needs_cue(fkey, dim)))
                    words = re.split(r"[-_.\s]+", family)
                    for w in words:
                        if w in _MODEL_FAMILY_WORDS:
                            families.setdefault(w, set()).add(value)
                elif dim == "service":
                    stripped = _VENDOR_PREFIX.sub("", lowered)
                    skey = compact(stripped)
                    if stripped != lowered and len(skey) >= MIN_ALIAS_LENGTH and skey not in compact_values:
                        self._add(skey, Alias(dim, value, 1, _needs_cue(skey, dim)))
                elif dim == "llm_provider" and "." in lowered:
                    parts = lowered.split(".")
                    self._add(compact(parts[-1]), Alias(dim, value, 1, _needs_cue(compact(parts[-1]), dim)))
                    without_ai = compact("".join(p for p in parts if p != "ai"))
                    self._add(without_ai, Alias(dim, value, 1, _needs_cue(without_ai, dim)))
                elif dim == "owner" and "@" in lowered:
                    local = compact(lowered.split("@", 1)[0])
                    self._add(local, Alias(dim, value, 2, True))
                elif dim == "charge_category":
                    self._add(key + "s", Alias(dim, value, 1, _needs_cue(key, dim)))
                if dim in ("team", "project", "feature", "cost_center") and re.search(r"[-_\s]", lowered):
                    first = compact(re.split(r"[-_\s]+", lowered)[0])
                    if len(first) >= 2:
                        self._add(first, Alias(dim, value, 2, True))
            for alias, targets in SYNONYMS.get(dim, {}).items():
                for value in vals:
                    if compact(value) in targets:
                        self._add(alias, Alias(dim, value, 1, False))
        for word, models in families.items():
            fams = {model_family(m) for m in models}
            if len(fams) == 1:
                for m in models:
                    self._add(word, Alias("model", m, 2, False))
            else:
                self.ambiguous[word] = tuple(sorted(fams))
        self._fuzzy_keys = sorted(
            k
            for k, entries in self.index.items()
            if len(k) >= FUZZY_MIN_LENGTH
            and any(not a.needs_cue and a.rank <= 1 and a.dimension != "resource" for a in entries)
        )

    # ----- lookup -----------------------------------------------------------------------------------
    def lookup(self, phrase: str, cue: Iterable[str] = (), *, fuzzy: bool = False) -> ValueMatch | None:
        """The value(s) ``phrase`` names; ``cue``: dimension names said next to it. None when nothing, or
        nothing unambiguous, matches."""
        key = compact(phrase)
        cues = set(cue)
        found = self._resolve(key, cues, phrase)
        if found is not None or not fuzzy or len(key) < FUZZY_MIN_LENGTH:
            return found
        close = difflib.get_close_matches(key, self._fuzzy_keys, n=3, cutoff=FUZZY_CUTOFF)
        targets = {self._resolve(k, cues, phrase) for k in close}
        targets.discard(None)
        if len(targets) != 1:
            return None  # none, or several values equally close: never guess between them
        (match,) = targets
        assert match is not None
        return ValueMatch(match.dimension, match.values, phrase, fuzzy=True, cued=match.cued)

    def _resolve(self, key: str, cues: set[str], phrase: str) -> ValueMatch | None:
        entries = self.index.get(key, [])
        if not entries:
            return None
        cued = [a for a in entries if a.dimension in cues]
        pool = cued or [a for a in entries if not a.needs_cue]
        if not pool:
            return None
        best = min(a.rank for a in pool)
        pool = [a for a in pool if a.rank == best]
        dims = {a.dimension for a in pool}
        dim = next(d for d in (*DIMENSION_PRIORITY, *sorted(dims)) if d in dims)
        values = tuple(sorted({a.value for a in pool if a.dimension == dim}))
        return ValueMatch(dim, values, phrase, cued=bool(cued))

    def known(self, dimension: str) -> tuple[str, ...]:
        return self.values.get(dimension, ())

    def ambiguity(self, phrase: str) -> tuple[str, ...]:
        return self.ambiguous.get(compact(phrase), ())


def _needs_cue(key: str, dimension: str) -> bool:
    if dimension in ("currency", "account", "sub_account") and not re.search(r"[a-z]{3}", key):
        return True
    if dimension == "currency":
        return True
    if key in COMMON_WORDS:
        return True
    return key.isdigit() or len(key) < MIN_ALIAS_LENGTH


# ----- reading the store -----------------------------------------------------------------------------------
_USAGE_COLUMNS = {**USAGE_DIMENSIONS}
_USAGE_COLUMNS["llm_provider"] = "provider"


def read_vocabulary(con: duckdb.DuckDBPyConnection) -> Vocabulary:
    """The known values of every dimension: one query over ``spend``, one over ``usage_allocated``."""
    dims = list(DIMENSIONS)
    spend_cols = ", ".join(f"list(DISTINCT {DIMENSIONS[d]})" for d in dims)
    row = con.execute(f"SELECT {spend_cols}, min(day), max(day) FROM spend").fetchone()
    values: dict[str, list[str | None]] = {}
    data_start = data_end = None
    if row is not None:
        for d, vs in zip(dims, row[: len(dims)], strict=True):
            values[d] = list(vs or [])
        data_start, data_end = row[len(dims)], row[len(dims) + 1]
    udims = list(_USAGE_COLUMNS)
    ucols = ", ".join(f"list(DISTINCT {_USAGE_COLUMNS[d]})" for d in udims)
    urow = con.execute(f"SELECT {ucols} FROM usage_allocated").fetchone()
    usage: dict[str, list[str | None]] = {}
    if urow is not None:
        for d, vs in zip(udims, urow, strict=True):
            usage[d] = list(vs or [])
    top_team = _first(
        con,
        "SELECT team FROM spend WHERE team IS NOT NULL GROUP BY 1 ORDER BY sum(effective_cost) DESC LIMIT 1",
    )
    top_model = _first(
        con,
        "SELECT model FROM usage_allocated WHERE model IS NOT NULL GROUP BY 1 ORDER BY sum(tokens) DESC LIMIT 1",
    )
    return Vocabulary.from_values(
        values,
        usage,
        data_start=data_start,
        data_end=data_end,
        top_team=top_team,
        top_model=top_model,
    )


def rule_ids() -> tuple[str, ...]:
    """The registered waste rules' ids."""
    from tools.rules import load_rules, registry

    load_rules()
    return tuple(registry.ids())


def _first(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    row = con.execute(sql).fetchone()
    return str(row[0]) if row and row[0] is not None else None


_CACHE: dict[int, tuple[weakref.ref[AskContext], Vocabulary]] = {}


def vocabulary_for(ctx: AskContext) -> Vocabulary:
    """The vocabulary of ``ctx``'s store, read on first use and kept as long as ``ctx`` lives."""
    key = id(ctx)
    cached = _CACHE.get(key)
    if cached is not None and cached[0]() is ctx:
        return cached[1]
    vocab = read_vocabulary(ctx.costs)
    vocab.rules = rule_ids()
    _CACHE[key] = (weakref.ref(ctx, lambda _r, k=key: _CACHE.pop(k, None)), vocab)  # type: ignore[misc]
    return vocab
