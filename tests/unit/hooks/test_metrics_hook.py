"""The metrics hook on a real execution's history: counts, and durations from the events."""

from __future__ import annotations

from typing import Any

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
