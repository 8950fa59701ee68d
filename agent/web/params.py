"""The dashboard's URL query string: period, grouping and filters, parsed once and written back as links.

Every page is a GET form, so its URL holds everything needed to reproduce it (``?from=2024-09-01&
to=2024-10-01&by=team&team=search``). Empty values (a form's unset select) count as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from tools.errors import QueryError
from tools.periods import Period, resolve_period

#: the parameters that are not filters
RESERVED = frozenset(
    {"from", "to", "period", "by", "granularity", "format", "table", "metric", "token", "status", "rule"}
)


class ParamError(QueryError):
    """A query-string value the dashboard cannot use (answered with 400 and the reason)."""


@dataclass
class Params:
    """The parsed query string of one page; ``items`` keeps the original (non-empty) pairs in order."""

    items: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> Params:
        return cls([(k, v.strip()) for k, v in pairs if v.strip() and k != "token"])

    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.items:
            if k == name:
                return v
        return default

    def values(self, name: str) -> list[str]:
        """All values of a repeatable parameter; ``team=a,b`` and ``team=a&team=b`` mean the same."""
        out: list[str] = []
        for k, v in self.items:
            if k == name:
                out.extend(p.strip() for p in v.split(",") if p.strip())
        return list(dict.fromkeys(out))

    def filters(self, allowed: Mapping[str, str]) -> dict[str, list[str]]:
        return {name: self.values(name) for name in allowed if name not in RESERVED and self.values(name)}

    def day(self, name: str) -> date | None:
        text = self.get(name)
        if text is None:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ParamError(f"{name}={text!r} is not a date; use YYYY-MM-DD, e.g. 2024-09-01") from None

    def period(self, today: date, default: str = "last-30-days") -> Period:
        start, end = self.day("from"), self.day("to")
        if end is not None and start is None:
            raise ParamError("to= given without from=; give both, or neither")
        return resolve_period(self.get("period"), start, end, today, default=default)

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        value = self.get(name, default) or default
        allowed = list(choices)
        if value not in allowed:
            raise ParamError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
        return value

    def url(self, path: str, **changes: str | None) -> str:
        """``path`` with this query string, some parameters replaced (``None`` removes one)."""
        kept = [(k, v) for k, v in self.items if k not in changes]
        kept += [(k, v) for k, v in changes.items() if v is not None]
        return path + ("?" + urlencode(kept) if kept else "")
