"""The metrics hook on a real execution's history: counts, and durations from the events."""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.hooks import ExecutionInfo, HookEvent, hook_events
from stepflow.hooks.metrics import MemorySink, MetricsHook, state_machine_name
from stepflow.hooks.support import ExecutionFacts, epoch_seconds
from stepflow.testing import execute

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:e1"
DEFINITION = {
    "StartAt": "Hold",
    "States": {
        "Hold": {"Type": "Wait", "Seconds": 7, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True},
    },
}


def _history(definition: dict[str, Any] = DEFINITION) -> list[dict[str, Any]]:
    result = execute(definition, {"a": 1}, handlers={"arn:aws:states:::lambda:invoke": lambda x: x})
    return result.history


def _events(history: list[dict[str, Any]], **info: Any) -> list[HookEvent]:
    execution = ExecutionInfo(ARN, SM, "e1", **info)
    return list(hook_events(execution, history))


def _stamp(history: list[dict[str, Any]], event_type: str) -> float:
    found = next(e["timestamp"] for e in history if e["type"] == event_type)
    seconds = epoch_seconds(found)
    assert seconds is not None
    return seconds


def test_counts_and_durations_come_from_the_events_timestamps() -> None:
    # GIVEN a real execution whose Wait state takes 7 s of (virtual) time
    history = _history()
    sink = MemorySink()
    # WHEN its events reach the hook in one batch
    MetricsHook(sink).handle(_events(history))
    # THEN one start, one success, and the durations measured from the events
    assert [m.value for m in sink.named("ExecutionsStarted")] == [1.0]
    assert [m.value for m in sink.named("ExecutionsSucceeded")] == [1.0]
    expected = (_stamp(history, "ExecutionSucceeded") - _stamp(history, "ExecutionStarted")) * 1000
    [execution_time] = sink.named("ExecutionTime")
    assert execution_time.value == expected
    assert execution_time.value >= 7000  # the Wait's 7 s are in it: not a constant
    assert execution_time.unit == "Milliseconds"
    assert execution_time.dimensions == (("ExecutionType", "STANDARD"), ("StateMachine", "Orders"))
    hold, work = sink.named("StateTime")
    wait_ms = (_stamp(history, "WaitStateExited") - _stamp(history, "WaitStateEntered")) * 1000
    assert hold.value == wait_ms == 7000
    assert hold.dimensions[-1] == ("StateType", "Wait")
    assert work.dimensions[-1] == ("StateType", "Task")


def test_real_execution_type_is_the_dimension() -> None:
    sink = MemorySink()
    MetricsHook(sink).handle(_events(_history(), execution_type="EXPRESS"))
    assert {m.dimensions[0] for m in sink.metrics} == {("ExecutionType", "EXPRESS")}


def test_a_start_outside_the_batch_is_read_from_the_head_or_no_duration_is_emitted() -> None:
    history = _history()
    events = _events(history)
    end = [e for e in events if e.kind == "ExecutionSucceeded"]
    started = _stamp(history, "ExecutionStarted")
    # GIVEN only the end event in the batch, and no way to know the start
    blind = MemorySink()
    MetricsHook(blind).handle(end)
    # THEN the end is counted but no duration is made up
    assert [m.name for m in blind.metrics] == ["ExecutionsSucceeded"]
    # GIVEN the head's start date
    reads: list[str] = []

    def facts(arn: str) -> ExecutionFacts:
        reads.append(arn)
        return ExecutionFacts(started)

    informed = MemorySink()
    MetricsHook(informed, facts=facts).handle(end)
    [duration] = informed.named("ExecutionTime")
    assert duration.value == (_stamp(history, "ExecutionSucceeded") - started) * 1000
    assert reads == [ARN]
    # A redriven execution's head keeps its first start: no duration from it
    redriven = MemorySink()
    MetricsHook(redriven, facts=facts).handle(_events(history, redrive_count=1)[-1:])
    assert redriven.named("ExecutionTime") == []


def test_a_state_entered_in_one_batch_and_exited_in_the_next_is_timed_once() -> None:
    history = _history()
    events = _events(history)
    cut = next(i for i, e in enumerate(events) if e.event["type"] == "WaitStateExited")
    sink = MemorySink()
    hook = MetricsHook(sink)
    hook.handle(events[:cut])
    hook.handle(events[cut:])
    hook.handle(events)  # the stream delivers again: nothing counted twice
    assert [m.value for m in sink.named("ExecutionsSucceeded")] == [1.0]
    hold, _work = sink.named("StateTime")
    assert hold.value == 7000


def test_an_exit_without_its_entry_or_before_it_emits_no_duration() -> None:
    history = _history()
    events = _events(history)
    exits = [e for e in events if e.kind == "StateExited"]
    sink = MemorySink()
    MetricsHook(sink).handle(exits)
    assert sink.named("StateTime") == []


def test_failures_are_counted_by_their_end() -> None:
    definition = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "c"}}}
    sink = MemorySink()
    MetricsHook(sink).handle(_events(_history(definition)))
    assert [m.name for m in sink.metrics if m.unit == "Count"] == [
        "ExecutionsStarted",
        "ExecutionsFailed",
    ]


def test_state_machine_dimension_drops_versions_and_aliases() -> None:
    assert state_machine_name(SM) == "Orders"
    assert state_machine_name(SM + ":3") == "Orders"
    assert state_machine_name(SM + ":prod") == "Orders"


def _raw(id_: int, prev: int, kind: str, when: float, name: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"id": id_, "previousEventId": prev, "type": kind, "timestamp": when}
    if name is not None:
        event["stateEnteredEventDetails" if "Entered" in kind else "stateExitedEventDetails"] = {
            "name": name
        }
    return event


def test_concurrent_same_named_states_are_paired_by_their_thread() -> None:
    # GIVEN two Map iterations of state Work: the first entered exits first
    history = [
        _raw(1, 0, "ExecutionStarted", 0.0),
        _raw(3, 2, "TaskStateEntered", 10.0, "Work"),
        _raw(4, 2, "TaskStateEntered", 11.0, "Work"),
        _raw(5, 3, "TaskScheduled", 10.1),
        _raw(6, 4, "TaskScheduled", 11.1),
        _raw(7, 5, "TaskStarted", 10.2),
        _raw(8, 6, "TaskStarted", 11.2),
        _raw(9, 7, "TaskSucceeded", 11.9),
        _raw(10, 9, "TaskStateExited", 12.0, "Work"),
        _raw(11, 8, "TaskSucceeded", 19.9),
        _raw(12, 11, "TaskStateExited", 20.0, "Work"),
    ]
    events = _events(history)
    sink = MemorySink()
    hook = MetricsHook(sink)
    hook.handle(events[:5])  # across batches too
    hook.handle(events[5:])
    # THEN each exit is timed from its own entry (latest-entry pairing gives 1000, 10000)
    assert [m.value for m in sink.named("StateTime")] == [
        pytest.approx(2000.0),
        pytest.approx(9000.0),
    ]


def test_an_exit_whose_thread_is_unknown_pairs_with_the_latest_entry() -> None:
    history = [
        _raw(3, 2, "PassStateEntered", 10.0, "Work"),
        _raw(4, 2, "PassStateEntered", 11.0, "Work"),
        _raw(9, 8, "PassStateExited", 12.0, "Work"),  # 8: not a hook event
    ]
    sink = MemorySink()
    MetricsHook(sink).handle(_events(history))
    assert [m.value for m in sink.named("StateTime")] == [pytest.approx(1000.0)]
