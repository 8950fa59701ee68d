"""The request life cycle: every legal transition, and every illegal one refused with a reason."""

from __future__ import annotations

import itertools

import pytest

from approvals.machine import STATUSES, TERMINAL, TRANSITIONS, IllegalTransition, can, next_status, sources

EVENTS = sorted({event for _, event in TRANSITIONS})

LEGAL = [
    ("pending", "approve", "pending"),
    ("pending", "approve_final", "approved"),
    ("pending", "reject", "rejected"),
    ("pending", "expire", "expired"),
    ("pending", "cancel", "cancelled"),
    ("approved", "start", "executing"),
    ("approved", "dry_run", "dry_run"),
    ("approved", "drift", "superseded"),
    ("approved", "expire", "expired"),
    ("approved", "cancel", "cancelled"),
    ("executing", "succeed", "succeeded"),
    ("executing", "fail", "failed"),
    ("succeeded", "start_rollback", "rolling_back"),
    ("failed", "start_rollback", "rolling_back"),
    ("rolling_back", "rolled_back", "rolled_back"),
    ("rolling_back", "rollback_failed", "rollback_failed"),
]


@pytest.mark.parametrize(("status", "event", "after"), LEGAL)
def test_machine_allows_each_documented_transition(status: str, event: str, after: str) -> None:
    assert next_status(status, event) == after and can(status, event)


def test_machine_has_exactly_the_documented_transitions() -> None:
    assert {(s, e): a for s, e, a in LEGAL} == TRANSITIONS


@pytest.mark.parametrize(
    ("status", "event"),
    [(s, e) for s, e in itertools.product(STATUSES, EVENTS) if (s, e) not in TRANSITIONS],
)
def test_machine_refuses_every_other_transition_with_a_reason(status: str, event: str) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_status(status, event)
    assert str(info.value).startswith(f"cannot {event.replace('_', ' ')} this request: ")
    assert not can(status, event)


def test_machine_never_executes_or_rolls_back_twice() -> None:
    assert not can("executing", "start") and not can("succeeded", "start")
    assert not can("rolled_back", "start_rollback") and not can("pending", "start_rollback")
    with pytest.raises(IllegalTransition, match="already been rolled back"):
        next_status("rolled_back", "start_rollback")


def test_machine_terminal_states_have_no_way_out() -> None:
    assert set(TERMINAL) == {
        "rejected",
        "expired",
        "cancelled",
        "superseded",
        "dry_run",
        "rolled_back",
        "rollback_failed",
    }
    for status in TERMINAL:
        assert not any(can(status, e) for e in EVENTS)


def test_machine_sources_lists_the_states_an_event_leaves() -> None:
    assert sources("start_rollback") == ["succeeded", "failed"]
    assert sources("expire") == ["pending", "approved"]
