"""The life cycle of a remediation request, as a pure state machine (no I/O, no clock).

```
pending --approve (last one needed)--> approved --start--> executing --succeed--> succeeded
   |  \\--approve (more needed)--> pending          |  \\--dry_run--> dry_run     \\--fail--> failed
   |--reject--> rejected                           |--drift--> superseded (a fresh request is proposed)
   |--expire--> expired  <--expire-- approved      |--expire--> expired
   \\--cancel--> cancelled <--cancel-- approved
succeeded | failed --start_rollback--> rolling_back --rolled_back--> rolled_back
                                                     \\--rollback_failed--> rollback_failed
```
The store applies a transition with one conditional UPDATE ``WHERE status = <from>``; this module says which
transitions exist, so an illegal one is refused with a reason before any write.
"""

from __future__ import annotations

from typing import Literal

from tools.errors import FinOpsError

Status = Literal[
    "pending",
    "approved",
    "executing",
    "succeeded",
    "failed",
    "dry_run",
    "rolling_back",
    "rolled_back",
    "rollback_failed",
    "rejected",
    "expired",
    "cancelled",
    "superseded",
]
Event = Literal[
    "approve",
    "approve_final",
    "reject",
    "expire",
    "cancel",
    "drift",
    "start",
    "dry_run",
    "succeed",
    "fail",
    "start_rollback",
    "rolled_back",
    "rollback_failed",
]

STATUSES: tuple[Status, ...] = (
    "pending",
    "approved",
    "executing",
    "succeeded",
    "failed",
    "dry_run",
    "rolling_back",
    "rolled_back",
    "rollback_failed",
    "rejected",
    "expired",
    "cancelled",
    "superseded",
)

TRANSITIONS: dict[tuple[Status, Event], Status] = {
    ("pending", "approve"): "pending",
    ("pending", "approve_final"): "approved",
    ("pending", "reject"): "rejected",
    ("pending", "expire"): "expired",
    ("pending", "cancel"): "cancelled",
    ("approved", "expire"): "expired",
    ("approved", "cancel"): "cancelled",
    ("approved", "drift"): "superseded",
    ("approved", "start"): "executing",
    ("approved", "dry_run"): "dry_run",
    ("executing", "succeed"): "succeeded",
    ("executing", "fail"): "failed",
    ("succeeded", "start_rollback"): "rolling_back",
    ("failed", "start_rollback"): "rolling_back",
    ("rolling_back", "rolled_back"): "rolled_back",
    ("rolling_back", "rollback_failed"): "rollback_failed",
}

#: no event leaves these
TERMINAL: frozenset[Status] = frozenset(s for s in STATUSES if not any(frm == s for frm, _ in TRANSITIONS))
#: a person can still decide these
OPEN: frozenset[Status] = frozenset({"pending"})

_WHY_NOT: dict[str, str] = {
    "approved": "it is already approved",
    "executing": "it is executing now",
    "succeeded": "it has already been executed",
    "failed": "its execution failed",
    "dry_run": "it was approved and planned in dry-run mode",
    "rolling_back": "it is being rolled back",
    "rolled_back": "it has already been rolled back",
    "rollback_failed": "its rollback failed; see `finops approvals show`",
    "rejected": "it was rejected",
    "expired": "it expired",
    "cancelled": "it was cancelled",
    "superseded": "the resource changed after the proposal, so it was replaced by a fresh request",
    "pending": "it is still waiting for approval",
}


class IllegalTransition(FinOpsError):
    def __init__(self, status: str, event: str) -> None:
        self.status = status
        self.event = event
        reason = _WHY_NOT.get(status, f"its status is {status!r}")
        super().__init__(f"cannot {event.replace('_', ' ')} this request: {reason}")


def next_status(status: str, event: str) -> Status:
    """The status after ``event``; raises ``IllegalTransition`` (with the reason in words) if not allowed."""
    try:
        return TRANSITIONS[(status, event)]  # type: ignore[index]
    except KeyError:
        raise IllegalTransition(status, event) from None


def can(status: str, event: str) -> bool:
    return (status, event) in TRANSITIONS


def sources(event: Event) -> list[Status]:
    """The statuses ``event`` may leave (for the store's ``WHERE status IN (...)``)."""
    return [frm for frm, ev in TRANSITIONS if ev == event]


def explain(status: str) -> str:
    return _WHY_NOT.get(status, status)
