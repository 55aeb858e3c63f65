"""Hostile hook events: odd timestamps, missing details, floods of open states."""

from __future__ import annotations

from typing import Any

from stepflow.hooks import ExecutionInfo, HookEvent
from stepflow.hooks.metrics import MemorySink, MetricsHook
from stepflow.hooks.status_change import status_change_detail
from stepflow.hooks.support import epoch_seconds

INFO = ExecutionInfo(
    "arn:aws:states:us-east-1:1:execution:m:e", "arn:aws:states:us-east-1:1:stateMachine:m"
)


def _event(
    kind: Any, stamp: Any, event: Any = None, state: str | None = None, i: int = 1
) -> HookEvent:
    return HookEvent(kind, INFO, i, stamp, event if event is not None else {}, state)


def test_timestamps_in_any_form_or_none() -> None:
    assert epoch_seconds(12.5) == 12.5
    assert epoch_seconds("1970-01-01T00:00:10Z") == 10.0
    assert epoch_seconds("yesterday") is None
    assert epoch_seconds(True) is None
    assert epoch_seconds(None) is None


def test_odd_events_give_no_wrong_numbers_and_no_crash() -> None:
    sink = MemorySink()
    hook = MetricsHook(sink)
    hook.handle(
        [
            _event("ExecutionStarted", "garbage"),
            _event("StateEntered", None, state="A", i=2),
            _event("StateExited", 5.0, {"type": 7}, state="A", i=3),
            _event("ExecutionSucceeded", {"not": "a time"}, i=4),
        ]
    )
    assert [m.name for m in sink.metrics] == ["ExecutionsStarted", "ExecutionsSucceeded"]
    # an end before its start (clock skew): counted, no negative duration
    skewed = MemorySink()
    MetricsHook(skewed).handle(
        [_event("ExecutionStarted", 10.0), _event("ExecutionFailed", 9.0, i=2)]
    )
    assert skewed.named("ExecutionTime") == []


def test_open_states_are_remembered_within_a_bound() -> None:
    hook = MetricsHook(MemorySink(), open_states=100)
    hook.handle([_event("StateEntered", 1.0, state=f"S{i}", i=i) for i in range(1, 5001)])
    assert len(hook._entered) == 100


def test_a_status_change_from_an_event_without_details() -> None:
    detail = status_change_detail(
        _event("ExecutionFailed", 2.0, {"executionFailedEventDetails": "x"})
    )
    assert detail["status"] == "FAILED"
    assert detail["error"] is None and detail["startDate"] is None
    assert detail["input"] is None and detail["inputDetails"] == {"included": False}
    assert detail["name"] == "e"
