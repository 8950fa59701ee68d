"""Errors a user can act on: what was wrong, where, and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FinOpsError(Exception):
    """Base class of every error the product reports to a user."""


@dataclass(frozen=True)
class Location:
    """Where in an input a problem is: a file and, when known, a line/row, a column or a JSON path."""

    path: Path | str
    line: int | None = None
    column: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        parts = [str(self.path)]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.key:
            parts.append(f"at {self.key}")
        if self.column:
            parts.append(f"column {self.column}")
        return ", ".join(parts)


class IngestError(FinOpsError):
    """Input that cannot be ingested. Nothing of the file was written."""

    def __init__(self, location: Location, problem: str, expected: str | None = None) -> None:
        self.location = location
        self.problem = problem
        self.expected = expected
        msg = f"{location}: {problem}"
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)


class QueryError(FinOpsError):
    """A cost query that cannot be answered as asked (unknown dimension, bad period ...)."""


class StoreError(FinOpsError):
    """The app database or the cost lake cannot be used as configured."""
