"""The contract of a scheduled job (``finops serve``'s scheduler and ``finops jobs run``).

A job is a plain function ``fn(ctx: JobContext) -> dict`` referenced as ``"module:function"``; it returns a
JSON-able summary of what it did (stored with the run and printed by ``finops jobs run``). The scheduler
runs it at most once per (job, period): ``ctx.period`` names the period the run is for (``2024-09-21`` for
a daily job, ``2024-W38`` weekly, ``2024-09`` monthly, ``2024-Q3`` quarterly), so a retry, a second replica
or a takeover after a crash never sends the same alert twice. Jobs never sleep and read the time from
``ctx.now`` (tests inject it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from config.model import FinOpsConfig
    from config.settings import Settings
    from tools.store.db import Database
    from tools.store.lake import Lake


@dataclass
class JobContext:
    """What a job may use. ``slack`` is None without SLACK_BOT_TOKEN (jobs then skip sending, and say so)."""

    db: Database
    lake: Lake
    config: FinOpsConfig
    settings: Settings
    now: datetime  # timezone-aware UTC
    period: str
    slack: WebClient | None = None
    aws: Any = None  # AWS client factory for cloud actions / inventory; None: from config
    #: the clock of approval decisions (expiry, freeze windows, audit times): the wall clock unless a test
    #: injects one — never ``now``, which is the (possibly past) moment the run is *for*
    approvals_clock: Callable[[], datetime] | None = None

    @property
    def today(self) -> date:
        return self.now.date()


JobFn = Callable[[JobContext], dict[str, Any]]
