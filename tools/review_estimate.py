"""The monthly cost of a change before it merges: each change found in a diff (``tools.review_diff``) is
attributed to a feature, priced on that feature's observed traffic, checked against the model policy, and
rendered as a PR comment (Markdown) or JSON. Pure functions of (changes, config, cost lake connection);
no git, no printing.

How each kind of change is estimated (traffic = the last ``days`` days before ``today`` in the cost lake,
scaled to 30 days, as the waste rules do; prices = ``price_tokens`` of ``tools.rules.premium_model``: a
finops.yaml price override, else genai-prices, on the window's last day):

- **Model swap** ``old -> new``: the feature's usage of ``old`` (any dated version of it), with its token
  mix by kind (uncached input, cache reads / writes, output, reasoning; batch apart), priced at ``new`` minus
  the same tokens priced at ``old``. Volumes (tokens, requests) come from ``usage_allocated`` (every call
  counted once even when several sources describe it); the split by token kind from ``usage_facts`` (one
  source per group, as the LLM rules read it) scaled to those volumes.
- **max_tokens** ``old -> new``: at most the feature's output tokens scaled by ``new / old`` (an upper
  bound: only responses that reach the cap change length).
- **New call site**: one more call per request the feature serves today, with the feature's average tokens
  per call, priced at the call's model (else at the feature's current models); unknown without a feature.
- **Instance type / count**: the on-demand hourly list price (``tools.cloud.aws.ON_DEMAND_USD_PER_HOUR``,
  as the remediation actions use it) x 730 h x count; a count the change does not show is taken as 1.

Attribution, first that applies: ``review.feature_paths`` (path glob -> feature, in the order written); a
known feature whose name appears in the path (a folder or the file name, ``-``/``_`` alike); for a model
swap, the only feature that uses the old model, else all observed usage of the old model (an upper bound).

Policy: a model introduced (swapped in, or named by a new call) in a path matching
``review.production_paths`` that ``approved_models[prod]`` does not approve is a violation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb

from config.model import FinOpsConfig
from tools.ingest.records import TokenCounts
from tools.periods import Period
from tools.review_diff import (
    CallSite,
    Change,
    InstanceChange,
    ModelChange,
    TokenCapChange,
    glob_match,
)
from tools.rules.premium_model import (
    approved_name,
    canonical_model,
    is_version_of,
    monthly,
    period_sql,
    price_tokens,
    usage_groups,
)

Confidence = Literal["high", "medium", "low", "unknown"]
AttributedBy = Literal["config", "path", "model", "organisation", "none"]

#: the environment whose approved models production paths must use
PRODUCTION_ENVIRONMENT = "prod"
HOURS_PER_MONTH = Decimal(730)
DEFAULT_WINDOW_DAYS = 30
#: how far back a feature name counts as known (for matching it in paths)
FEATURE_LOOKBACK_DAYS = 90
_CENT = Decimal("0.01")
_ZERO = Decimal(0)
COMMENT_MARKER = "<!-- finops-cost-review -->"

InstancePrice = Callable[[str], Decimal | None]


def default_instance_price(instance_type: str) -> Decimal | None:
    """The on-demand USD per hour of the shared AWS price table (the one remediation actions use)."""
    from tools.cloud.aws import ON_DEMAND_USD_PER_HOUR

    return ON_DEMAND_USD_PER_HOUR.get(instance_type)


def instance_price_source() -> str:
    from tools.cloud.aws import PRICE_TABLE_SOURCE

    return PRICE_TABLE_SOURCE


# ----- Results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    feature: str | None
    by: AttributedBy
    detail: str

    def label(self) -> str:
        if self.feature is None:
            return f"— ({self.detail})" if self.detail else "—"
        return f"{self.feature} ({self.detail})"


@dataclass(frozen=True)
class Estimate:
    """One change with its monthly cost delta (None: unknown), what it rests on and how sure it is."""

    change: Change
    attribution: Attribution
    basis: str
    monthly_delta: Decimal | None
    confidence: Confidence
    assumptions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        c = self.change
        out: dict[str, Any] = {
            "path": c.path,
            "line": c.line,
            "kind": c.kind,
            "change": c.describe().replace("`", ""),
        }
        if isinstance(c, ModelChange):
            out.update(old_model=c.old, new_model=c.new)
        elif isinstance(c, TokenCapChange):
            out.update(key=c.key, old=c.old, new=c.new)
        elif isinstance(c, CallSite):
            out.update(call=c.call, model=c.model)
        else:
            out.update(old_type=c.old_type, new_type=c.new_type, old_count=c.old_count, new_count=c.new_count)
        out.update(
            feature=self.attribution.feature,
            attributed_by=self.attribution.by,
            attribution=self.attribution.detail,
            traffic_basis=self.basis,
            monthly_delta=self.monthly_delta,
            confidence=self.confidence,
            assumptions=list(self.assumptions),
        )
        return out


@dataclass(frozen=True)
class Violation:
    """A model that production paths may not use."""

    path: str
    line: int
    model: str
    environment: str
    approved: tuple[str, ...]

    def message(self) -> str:
        return (
            f"`{self.model}` is not approved for {self.environment} "
            f"(`{self.path}:{self.line}`); approved: {', '.join(self.approved) or 'none'}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "model": self.model,
            "environment": self.environment,
            "approved": list(self.approved),
            "message": self.message().replace("`", ""),
        }


@dataclass(frozen=True)
class Review:
    """The review of one change set. ``silent``: nothing worth a PR comment (see ``is_silent``)."""

    estimates: tuple[Estimate, ...]
    violations: tuple[Violation, ...]
    window: Period
    threshold: Decimal
    currency: str = "USD"
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> Decimal:
        """The net monthly delta of the changes whose cost is known."""
        return sum((e.monthly_delta for e in self.estimates if e.monthly_delta is not None), _ZERO)

    @property
    def total_absolute(self) -> Decimal:
        """Increases and savings added up without cancelling each other out."""
        return sum((abs(e.monthly_delta) for e in self.estimates if e.monthly_delta is not None), _ZERO)

    @property
    def silent(self) -> bool:
        """True when the summed absolute deltas are under the threshold, no policy is violated and every change
        could be priced: a change that moves AI spend by an unknown amount (a new call site of a feature with
        no traffic yet, no cost lake in CI) is worth a comment."""
        return self.total_absolute < self.threshold and not self.violations and self.unknown == 0

    @property
    def unknown(self) -> int:
        return sum(1 for e in self.estimates if e.monthly_delta is None)

    def assumptions(self) -> list[str]:
        seen: list[str] = []
        for text in (*self.notes, *(a for e in self.estimates for a in e.assumptions)):
            if text not in seen:
                seen.append(text)
        return seen

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "window": self.window.as_dict(),
            "threshold": self.threshold,
            "total_monthly_delta": self.total,
            "total_absolute_delta": self.total_absolute,
            "silent": self.silent,
            "violations": [v.as_dict() for v in self.violations],
            "changes": [e.as_dict() for e in self.estimates],
            "assumptions": self.assumptions(),
        }


# ----- Traffic in the cost lake --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelTraffic:
    """One (provider, model)'s usage in the window: volumes counted once, split by token kind."""

    provider: str
    model: str
    requests: int
    tokens: TokenCounts  # on-demand
    batch_requests: int
    batch_tokens: TokenCounts
    days: int  # days with traffic

    @property
    def total_tokens(self) -> int:
        return self.tokens.total + self.batch_tokens.total

    @property
    def all_requests(self) -> int:
        return self.requests + self.batch_requests


def _scale(tokens: TokenCounts, factor: Decimal) -> TokenCounts:
    def s(n: int) -> int:
        return int((Decimal(n) * factor).to_integral_value())

    return TokenCounts(
        input_uncached=s(tokens.input_uncached),
        cache_read=s(tokens.cache_read),
        cache_write=s(tokens.cache_write),
        output=s(tokens.output),
        reasoning=s(tokens.reasoning),
    )


def _add(a: TokenCounts, b: TokenCounts) -> TokenCounts:
    return TokenCounts(
        input_uncached=a.input_uncached + b.input_uncached,
        cache_read=a.cache_read + b.cache_read,
        cache_write=a.cache_write + b.cache_write,
        output=a.output + b.output,
        reasoning=a.reasoning + b.reasoning,
    )


class UsageLake:
    """Read-only traffic queries over the cost lake's ``usage_allocated`` and ``usage_facts`` relations
    (a connection from ``tools.costs.open_costs``). Results are cached for the life of the object."""

    def __init__(self, con: duckdb.DuckDBPyConnection, window: Period) -> None:
        self.con = con
        self.window = window
        self._allocated: list[tuple[str, str, str | None, int, int, int]] | None = None
        self._mix: dict[tuple[str, str, str | None], tuple[int, TokenCounts, int, TokenCounts]] | None = None
        self._features: list[str] | None = None

    def _allocated_rows(self) -> list[tuple[str, str, str | None, int, int, int]]:
        if self._allocated is None:
            rows = self.con.execute(
                "SELECT provider, model, feature, sum(tokens), sum(requests), count(DISTINCT day) "
                f"FROM usage_allocated WHERE {period_sql(self.window)} AND model IS NOT NULL "
                "GROUP BY ALL ORDER BY 1, 2, 3 NULLS LAST"
            ).fetchall()
            self._allocated = [
                (str(p), str(m), f, int(t or 0), int(r or 0), int(d or 0)) for p, m, f, t, r, d in rows
            ]
        return self._allocated

    def _mixes(self) -> dict[tuple[str, str, str | None], tuple[int, TokenCounts, int, TokenCounts]]:
        """(provider, model, lower(feature)) -> (requests, tokens, batch requests, batch tokens)."""
        if self._mix is None:
            mix: dict[tuple[str, str, str | None], tuple[int, TokenCounts, int, TokenCounts]] = {}
            for g in usage_groups(self.con, self.window):
                key = (g.provider, g.model, g.feature.casefold() if g.feature else None)
                r, t, br, bt = mix.get(key, (0, TokenCounts(), 0, TokenCounts()))
                mix[key] = (
                    r + g.requests,
                    _add(t, g.tokens),
                    br + g.batch_requests,
                    _add(bt, g.batch_tokens),
                )
            self._mix = mix
        return self._mix

    def features(self, today: date) -> list[str]:
        """Features seen in LLM usage over the last FEATURE_LOOKBACK_DAYS days."""
        if self._features is None:
            since = today - timedelta(days=FEATURE_LOOKBACK_DAYS)
            rows = self.con.execute(
                "SELECT DISTINCT feature FROM usage_facts WHERE feature IS NOT NULL "
                f"AND day >= DATE '{since.isoformat()}' AND day < DATE '{today.isoformat()}' ORDER BY 1"
            ).fetchall()
            self._features = [str(r[0]) for r in rows]
        return self._features

    def _traffic(
        self, provider: str, model: str, feature: str | None, tokens: int, requests: int, days: int
    ) -> ModelTraffic | None:
        mixes = self._mixes()
        key_feature = feature.casefold() if feature else None
        mix = mixes.get((provider, model, key_feature))
        if mix is None or (mix[1].total + mix[3].total) == 0:
            parts = [v for (p, m, _), v in mixes.items() if p == provider and m == model]
            if not parts:
                return None
            mix = (
                sum(v[0] for v in parts),
                _sum_tokens(v[1] for v in parts),
                sum(v[2] for v in parts),
                _sum_tokens(v[3] for v in parts),
            )
        mix_tokens = mix[1].total + mix[3].total
        if mix_tokens == 0:
            return None
        factor = Decimal(tokens) / Decimal(mix_tokens)
        mix_requests = mix[0] + mix[2]
        batch_requests = round(requests * mix[2] / mix_requests) if mix_requests else 0
        return ModelTraffic(
            provider=provider,
            model=model,
            requests=requests - batch_requests,
            tokens=_scale(mix[1], factor),
            batch_requests=batch_requests,
            batch_tokens=_scale(mix[3], factor),
            days=days,
        )

    def traffic(self, feature: str | None, model: str | None = None) -> list[ModelTraffic]:
        """Usage in the window of ``feature`` (None: every feature and none) on ``model`` (None: any model;
        a name covers its dated versions and gateway / Bedrock prefixes)."""
        grouped: dict[tuple[str, str], list[int]] = {}
        for provider, observed, feat, tokens, requests, days in self._allocated_rows():
            if feature is not None and (feat is None or feat.casefold() != feature.casefold()):
                continue
            if model is not None and not _same_model(observed, model):
                continue
            acc = grouped.setdefault((provider, observed), [0, 0, 0])
            acc[0] += tokens
            acc[1] += requests
            acc[2] = max(acc[2], days)
        out = []
        for (provider, observed), (tokens, requests, days) in grouped.items():
            if tokens == 0:
                continue
            t = self._traffic(provider, observed, feature, tokens, requests, days)
            if t is not None:
                out.append(t)
        return out

    def model_features(self, model: str) -> list[str]:
        """The features whose usage in the window is on ``model`` (any dated version)."""
        found = {
            feat
            for _, observed, feat, tokens, _, _ in self._allocated_rows()
            if feat is not None and tokens and _same_model(observed, model)
        }
        return sorted(found)


def _same_model(observed: str, written: str) -> bool:
    """The model in the lake is the one written in the change: either is a dated version of the other."""
    return is_version_of(observed, written) or is_version_of(written, observed)


def _sum_tokens(items: Iterable[TokenCounts]) -> TokenCounts:
    total = TokenCounts()
    for t in items:
        total = _add(total, t)
    return total


# ----- Attribution -----------------------------------------------------------------------------------------

_SPLIT = re.compile(r"[-_.\s]+")


def _tokens(text: str) -> list[str]:
    return [t for t in _SPLIT.split(text.casefold()) if t]


def _contains(seq: Sequence[str], sub: Sequence[str]) -> bool:
    n = len(sub)
    return n > 0 and any(list(seq[i : i + n]) == list(sub) for i in range(len(seq) - n + 1))


def feature_in_path(path: str, features: Iterable[str]) -> str | None:
    """The known feature whose name appears in a folder or the file name of ``path`` (``support-chat`` in
    ``services/support_chat/app.py``); the longest such name wins."""
    segments = path.split("/")
    segments[-1] = segments[-1].rsplit(".", 1)[0] if "." in segments[-1] else segments[-1]
    seg_tokens = [_tokens(s) for s in segments]
    matches = [f for f in features if any(_contains(st, _tokens(f)) for st in seg_tokens)]
    if not matches:
        return None
    return max(matches, key=lambda f: (len(_tokens(f)), len(f), f))


def path_feature(path: str, feature_paths: Mapping[str, str], features: Iterable[str]) -> Attribution | None:
    """The feature of ``path`` by the configured globs (first match, in order), else by name in the path."""
    for glob, feature in feature_paths.items():
        if glob_match(path, glob):
            return Attribution(feature, "config", f"review.feature_paths `{glob}`")
    found = feature_in_path(path, features)
    if found is not None:
        return Attribution(found, "path", "name in the path")
    return None


# ----- Estimation ------------------------------------------------------------------------------------------


def _price(
    config: FinOpsConfig,
    provider: str,
    model: str,
    tokens: TokenCounts,
    requests: int,
    day: date,
    batch: bool,
) -> Decimal | None:
    """``price_tokens`` for ``model`` as written in code: also tried without a gateway / region / vendor
    prefix (``azure/``, ``us.anthropic.``) and, for a fine-tuned ``ft:base:...``, at its base model's price."""
    candidates = [model, canonical_model(model)]
    if model.startswith("ft:"):
        candidates.append(canonical_model(model[3:].split(":", 1)[0]))
    for name in dict.fromkeys(candidates):
        cost = price_tokens(config, provider, name, tokens, requests, day, batch=batch)
        if cost is not None:
            return cost
    return None


def _price_traffic(
    config: FinOpsConfig, t: ModelTraffic, model: str, day: date, *, output_only: bool = False
) -> Decimal | None:
    def part(tokens: TokenCounts) -> TokenCounts:
        return TokenCounts(output=tokens.output, reasoning=tokens.reasoning) if output_only else tokens

    on_demand = _price(config, t.provider, model, part(t.tokens), t.requests, day, False)
    batch = _price(config, t.provider, model, part(t.batch_tokens), t.batch_requests, day, True)
    if on_demand is None or batch is None:
        return None
    return on_demand + batch


def _human(n: int) -> str:
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:,.1f}{suffix}"
    return f"{n:,}"


def _basis(traffic: Sequence[ModelTraffic], window: Period) -> str:
    requests = sum(t.all_requests for t in traffic)
    tokens = sum(t.total_tokens for t in traffic)
    models = ", ".join(sorted({t.model for t in traffic}))
    days = max((t.days for t in traffic), default=0)
    return f"{requests:,} requests, {_human(tokens)} tokens on {models} (traffic on {days} of {window.days} days)"


@dataclass
class _Estimator:
    config: FinOpsConfig
    lake: UsageLake | None
    window: Period
    instance_price: InstancePrice
    features: list[str] = field(default_factory=list)

    def price_source(self) -> str:
        if self.instance_price is default_instance_price:
            return instance_price_source()
        return "the instance price table given to the review"

    @property
    def price_day(self) -> date:
        return self.window.end - timedelta(days=1)

    def _monthly(self, amount: Decimal) -> Decimal:
        return monthly(amount, self.window.days)

    def attribute(self, change: Change) -> Attribution:
        found = path_feature(change.path, self.config.review.feature_paths, self.features)
        if found is not None:
            return found
        if isinstance(change, ModelChange) and change.old is not None and self.lake is not None:
            users = self.lake.model_features(change.old)
            if len(users) == 1:
                return Attribution(users[0], "model", f"the only feature using {change.old}")
            detail = f"all usage of {change.old}" + (f": {', '.join(users)}" if users else "")
            return Attribution(None, "organisation", detail)
        if isinstance(change, InstanceChange):
            return Attribution(None, "none", "")
        return Attribution(None, "none", "no feature for this path")

    def estimate(self, change: Change) -> Estimate:
        who = self.attribute(change)
        if isinstance(change, InstanceChange):
            return self._instance(change, who)
        if self.lake is None:
            return Estimate(
                change, who, "no cost lake", None, "unknown", ("No cost lake: LLM changes are not priced.",)
            )
        if isinstance(change, ModelChange):
            return self._model(change, who)
        if isinstance(change, TokenCapChange):
            return self._cap(change, who)
        return self._call(change, who)

    def _model(self, change: ModelChange, who: Attribution) -> Estimate:
        assert self.lake is not None
        if change.old is None:
            return Estimate(
                change,
                who,
                "no call site in this change",
                None,
                "unknown",
                ("A model added without a new call in the same change: its traffic is not known.",),
            )
        traffic = self.lake.traffic(who.feature, change.old)
        if not traffic:
            where = f" in feature {who.feature}" if who.feature else ""
            return Estimate(
                change,
                who,
                f"no usage of {change.old}{where} in the last {self.window.days} days",
                None,
                "unknown",
            )
        before = [_price_traffic(self.config, t, t.model, self.price_day) for t in traffic]
        after = [_price_traffic(self.config, t, change.new, self.price_day) for t in traffic]
        basis = _basis(traffic, self.window)
        if any(p is None for p in after) or any(p is None for p in before):
            missing = change.new if any(p is None for p in after) else change.old
            return Estimate(
                change,
                who,
                basis,
                None,
                "unknown",
                (f"No price for `{missing}` (genai-prices or a pricing override).",),
            )
        delta = self._monthly(
            sum((a for a in after if a is not None), _ZERO) - sum((b for b in before if b is not None), _ZERO)
        )
        confidence: Confidence = (
            "high" if who.by == "config" else "low" if who.by == "organisation" else "medium"
        )
        notes = [
            f"Model swaps: the same tokens by kind (uncached input, cache reads/writes, output, reasoning) "
            f"priced at the new model's list price minus the old one's (genai-prices of {self.price_day}, "
            "finops.yaml overrides first); the new model's own token counts, retries and quality are not modelled."
        ]
        if who.by == "organisation":
            notes.append(
                f"`{change.old}` could not be tied to one feature: all its observed usage is the basis (an upper bound)."
            )
        return Estimate(change, who, basis, delta, confidence, tuple(notes))

    def _cap(self, change: TokenCapChange, who: Attribution) -> Estimate:
        assert self.lake is not None
        if who.feature is None:
            return Estimate(change, who, "no feature for this path", None, "unknown")
        traffic = self.lake.traffic(who.feature)
        if not traffic:
            return Estimate(
                change,
                who,
                f"no usage of feature {who.feature} in the last {self.window.days} days",
                None,
                "unknown",
            )
        basis = _basis(traffic, self.window)
        if change.old is None or change.new is None or change.old == 0:
            what = "added" if change.old is None else "removed"
            return Estimate(
                change,
                who,
                basis,
                None,
                "unknown",
                (
                    f"An output cap {what}: its effect depends on response lengths, which the lake does not hold.",
                ),
            )
        outputs = [_price_traffic(self.config, t, t.model, self.price_day, output_only=True) for t in traffic]
        if any(o is None for o in outputs):
            return Estimate(change, who, basis, None, "unknown")
        output_cost = sum((o for o in outputs if o is not None), _ZERO)
        ratio = Decimal(change.new) / Decimal(change.old)
        delta = self._monthly(output_cost * (ratio - 1))
        note = (
            f"max_tokens changes: at most the feature's output tokens scaled by new/old cap "
            f"({change.new:,}/{change.old:,} = {ratio.quantize(Decimal('0.01'))}): an upper bound, as only responses "
            "that reach the cap change length."
        )
        return Estimate(change, who, f"{basis}; output tokens only", delta, "low", (note,))

    def _call(self, change: CallSite, who: Attribution) -> Estimate:
        assert self.lake is not None
        if who.feature is None:
            return Estimate(
                change,
                who,
                "no feature for this path: traffic unknown",
                None,
                "unknown",
                ("A new call site outside any known feature: its traffic is unknown.",),
            )
        traffic = self.lake.traffic(who.feature)
        if not traffic:
            return Estimate(
                change,
                who,
                f"no usage of feature {who.feature} in the last {self.window.days} days",
                None,
                "unknown",
            )
        costs = [_price_traffic(self.config, t, change.model or t.model, self.price_day) for t in traffic]
        basis = _basis(traffic, self.window)
        if any(c is None for c in costs):
            return Estimate(change, who, basis, None, "unknown", (f"No price for `{change.model}`.",))
        cost = sum((c for c in costs if c is not None), _ZERO)
        requests = sum(t.all_requests for t in traffic)
        per_request = (cost / requests).quantize(Decimal("0.000001")) if requests else None
        priced = f"`{change.model}`" if change.model else "the feature's current models"
        note = (
            "New call sites: one more call per request the feature serves today, with the feature's average "
            "tokens per call, priced at the call's model (else the feature's current models)."
        )
        extra = f"; ${per_request} per call at {priced}" if per_request is not None else ""
        return Estimate(change, who, basis + extra, self._monthly(cost), "low", (note,))

    def _instance(self, change: InstanceChange, who: Attribution) -> Estimate:
        def monthly_cost(itype: str | None, count: int | None) -> tuple[Decimal | None, int]:
            if itype is None:
                return _ZERO, 0
            n = 1 if count is None else count
            hourly = self.instance_price(itype)
            return (None if hourly is None else hourly * HOURS_PER_MONTH * n), n

        old, old_n = monthly_cost(change.old_type, change.old_count)
        new, new_n = monthly_cost(change.new_type, change.new_count)
        sides = []
        if change.old_type is not None:
            sides.append(f"{old_n} × {change.old_type}")
        if change.new_type is not None:
            sides.append(f"{new_n} × {change.new_type}")
        basis = " → ".join(sides) + " × 730 h on demand"
        notes = [
            f"Instances: on-demand list price ({self.price_source()}) × 730 h per month, running all month; "
            "reservations, savings plans and spot are not applied."
        ]
        assumed = (change.old_type is not None and change.old_count is None) or (
            change.new_type is not None and change.new_count is None
        )
        if assumed:
            notes.append("An instance count the change does not show is taken as 1.")
        if old is None or new is None:
            unknown = change.old_type if old is None else change.new_type
            return Estimate(
                change,
                who,
                basis,
                None,
                "unknown",
                (f"No price for instance type `{unknown}` in the table.",),
            )
        delta = (new - old).quantize(_CENT)
        return Estimate(change, who, basis, delta, "medium" if assumed else "high", tuple(notes))


def check_policy(
    changes: Iterable[Change], config: FinOpsConfig, environment: str = PRODUCTION_ENVIRONMENT
) -> list[Violation]:
    """Models introduced in production paths that ``approved_models[environment]`` does not approve."""
    approved = config.approved_models.get(environment)
    globs = config.review.production_paths
    if approved is None or not globs:
        return []
    out: list[Violation] = []
    seen: set[tuple[str, int, str]] = set()
    for change in changes:
        if not any(glob_match(change.path, g) for g in globs):
            continue
        for model in change.introduced_models:
            if approved_name(model, approved) is not None:
                continue
            key = (change.path, change.line, model)
            if key not in seen:
                seen.add(key)
                out.append(Violation(change.path, change.line, model, environment, tuple(approved)))
    return out


def review_changes(
    changes: Sequence[Change],
    config: FinOpsConfig,
    con: duckdb.DuckDBPyConnection | None,
    today: date,
    *,
    days: int = DEFAULT_WINDOW_DAYS,
    instance_price: InstancePrice = default_instance_price,
    threshold: Decimal | None = None,
) -> Review:
    """Estimate every change on the traffic of the ``days`` days before ``today`` and check the policy.

    ``con``: a connection from ``tools.costs.open_costs`` (with ``usage_allocated``), or None without a
    cost lake (LLM changes are then unknown; instances are still priced). ``threshold`` overrides
    ``review.threshold``.
    """
    window = Period(today - timedelta(days=days), today, f"last {days} days")
    lake = UsageLake(con, window) if con is not None else None
    features = list(
        dict.fromkeys([*config.review.feature_paths.values(), *(f.feature for f in config.feature_value)])
    )
    if lake is not None:
        features = list(dict.fromkeys([*features, *lake.features(today)]))
    est = _Estimator(config, lake, window, instance_price, features)
    estimates = tuple(est.estimate(c) for c in changes)
    notes = [
        f"Traffic: the last {days} days before {today} in the cost lake ({window.start} to "
        f"{window.end - timedelta(days=1)}), scaled to 30 days per month.",
        "Confidence: high = a configured feature's observed traffic or a priced instance with its count; "
        "medium = a feature found by name or by its model, or an assumed instance count; "
        "low = an upper bound or a new call's assumed volume.",
    ]
    if config.approved_models.get(PRODUCTION_ENVIRONMENT) is None:
        notes.append(
            f"approved_models has no `{PRODUCTION_ENVIRONMENT}` entry: the model policy is not checked."
        )
    elif not config.review.production_paths:
        notes.append("review.production_paths is empty: no path is checked against the approved models.")
    return Review(
        estimates=estimates,
        violations=tuple(check_policy(changes, config)),
        window=window,
        threshold=config.review.threshold if threshold is None else threshold,
        currency=config.currency,
        notes=tuple(notes),
    )


# ----- Rendering ---------------------------------------------------------------------------------------------


def format_delta(amount: Decimal | None) -> str:
    if amount is None:
        return "unknown"
    q = amount.quantize(_CENT)
    if q == 0:
        return "$0.00"
    return f"{'+' if q > 0 else '−'}${abs(q):,}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(review: Review) -> str:
    """The PR comment: a table of the changes, the total, policy violations and the assumptions."""
    lines = [COMMENT_MARKER, f"### FinOps cost review: {format_delta(review.total)} per month"]
    summary = [f"{len(review.estimates)} change(s) that move AI spend"]
    if review.unknown:
        summary.append(f"{review.unknown} with an unknown cost")
    if review.violations:
        summary.append(f"**{len(review.violations)} policy violation(s)**")
    lines += ["", "; ".join(summary) + ".", ""]
    if review.violations:
        lines.append("**Policy** (merging needs an approved model or an updated `approved_models`):")
        lines += [f"- ❌ {_cell(v.message())}" for v in review.violations]
        lines.append("")
    if review.estimates:
        lines += [
            "| File | Change | Feature | Traffic basis | Monthly Δ | Confidence |",
            "|---|---|---|---|---:|---|",
        ]
        for e in review.estimates:
            c = e.change
            lines.append(
                f"| `{_cell(c.path)}:{c.line}` | {_cell(c.describe())} | {_cell(e.attribution.label())} | "
                f"{_cell(e.basis)} | {format_delta(e.monthly_delta)} | {e.confidence} |"
            )
        lines.append(f"| **Total** | | | | **{format_delta(review.total)}** | |")
        lines.append("")
    assumptions = review.assumptions()
    if assumptions:
        lines += ["<details><summary>Assumptions</summary>", ""]
        lines += [f"- {_cell(a)}" for a in assumptions]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
