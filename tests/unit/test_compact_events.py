"""Compact history events: the in-memory log's history is the one the dict events make.

The in-memory log takes compact events (states' entered and exited events as tuples);
a log that does not declare ``compact_events`` gets the dicts, as before. Both must
give the same history, event for event, the same writes and the same refusals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stepflow.engine.history_events import expand, takes_compact_events
from stepflow.runtime import ExecutionRecord, InMemoryLog
from stepflow.runtime.memory_chunks import Mixed
from stepflow.runtime.ports import UnstorableDataError
from stepflow.testing import WorkflowEnvironment

DOUBLE = "arn:aws:lambda:us-east-1:123456789012:function:double"
BOOM = "arn:aws:lambda:us-east-1:123456789012:function:boom"


class DictLog(InMemoryLog):
    """The in-memory log without compact events: the engine hands it dicts, as before."""

    compact_events = False


class Flaky(Exception):
    error = "Flaky"


def counter_loop(iterations: int) -> dict[str, Any]:
    """bench/throughput.py's loop: Check -> Increment -> Mark, ``iterations`` times."""
    return {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.i", "NumericLessThan": iterations, "Next": "Increment"}
                ],
                "Default": "Done",
            },
            "Increment": {
                "Type": "Pass",
                "Parameters": {
                    "i.$": "States.MathAdd($.i, 1)",
                    "label.$": "States.Format('itération {}', $.i)",
                },
                "Next": "Mark",
            },
            "Mark": {
                "Type": "Pass",
                "Result": {"marked": True},
                "ResultPath": "$.mark",
                "Next": "Check",
            },
            "Done": {"Type": "Succeed"},
        },
    }


FANOUT = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Each",
                    "States": {
                        "Each": {
                            "Type": "Map",
                            "ItemsPath": "$.items",
                            "ItemProcessor": {
                                "ProcessorConfig": {"Mode": "INLINE"},
                                "StartAt": "Double",
                                "States": {
                                    "Double": {
                                        "Type": "Task",
                                        "Resource": DOUBLE,
                                        "Retry": [
                                            {
                                                "ErrorEquals": ["Flaky"],
                                                "IntervalSeconds": 1,
                                                "MaxAttempts": 2,
                                            }
                                        ],
                                        "End": True,
                                    }
                                },
                            },
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "Boom",
                    "States": {
                        "Boom": {
                            "Type": "Task",
                            "Resource": BOOM,
                            "Catch": [
                                {
                                    "ErrorEquals": ["States.ALL"],
                                    "ResultPath": "$.caught",
                                    "Next": "Caught",
                                }
                            ],
                            "End": True,
                        },
                        "Caught": {"Type": "Pass", "Assign": {"seen": 1}, "End": True},
                    },
                },
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


def handlers() -> dict[str, Any]:
    calls: Counter[int] = Counter()

    def double(n: int) -> int:
        calls[n] += 1
        if calls[n] == 1 and n % 2:
            raise Flaky("first try")
        return 2 * n

    def boom(_: Any) -> Any:
        raise ValueError("always")

    return {DOUBLE: double, BOOM: boom}


def run(
    log: InMemoryLog, definition: dict[str, Any], value: Any, max_events: int | None = None
) -> tuple[Any, ...]:
    """Run to the end on ``log``: status, lazy history, eager history, events seen, writes."""
    seen: list[dict[str, Any]] = []
    env = WorkflowEnvironment(
        log=log, handlers=handlers(), start_time=1e9, on_event=seen.append, max_events=max_events
    )
    arn = env.start(definition, value, name="e", seed=7)
    env.run(arn)
    result = env.result(arn)
    return result.status, result.output, result.history, env.history(arn), seen, log.writes, arn


def same_both_ways(
    definition: dict[str, Any], value: Any, max_events: int | None = None
) -> list[dict[str, Any]]:
    compact, dicts = InMemoryLog(), DictLog()
    assert takes_compact_events(compact) and not takes_compact_events(dicts)
    got = run(compact, definition, value, max_events)
    want = run(dicts, definition, value, max_events)
    status, output, history, eager, seen, writes, arn = got
    assert (status, output, writes) == (want[0], want[1], want[5])
    assert history == eager == want[2] == want[3]  # event for event, lazy and paged
    assert [list(e) for e in history] == [list(e) for e in want[2]]  # keys in the same order
    assert seen == want[4]
    stored = [data for data, _ in compact._events[arn]]
    assert any(isinstance(data, Mixed) for data in stored)  # the compact form was used
    assert not any(isinstance(data, Mixed) for data, _ in dicts._events[arn])
    return history


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 40))
def test_the_counter_loop_records_the_same_history(iterations: int) -> None:
    history = same_both_ways(counter_loop(iterations), {"i": 0})
    assert len(history) == 2 * (3 * iterations + 2) + 2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(3, 40))
def test_the_event_cap_falls_on_the_same_event(max_events: int) -> None:
    history = same_both_ways(counter_loop(10), {"i": 0}, max_events)
    assert len(history) == max_events
    assert history[-1]["type"] == "ExecutionFailed"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 9), max_size=6))
def test_map_parallel_retry_and_catch_record_the_same_history(items: list[int]) -> None:
    history = same_both_ways(FANOUT, {"items": items})
    types = Counter(e["type"] for e in history)
    assert types["MapIterationSucceeded"] == len(items)
    assert types["LambdaFunctionFailed"] == 1 + len({n for n in items if n % 2})  # Boom, Flaky
    exits = [e for e in history if e["type"] == "PassStateExited"]
    assert exits[0]["stateExitedEventDetails"]["assignedVariables"] == {"seen": "1"}


def test_a_lone_surrogate_is_refused_as_a_dict_event_is() -> None:
    definition = {
        "StartAt": "Odd",
        "States": {
            "Odd": {
                "Type": "Pass",
                "Parameters": {"s.$": "States.StringToJson('\"\\\\ud800\"')"},
                "Next": "Clean",
            },
            "Clean": {"Type": "Pass", "Result": "ok", "End": True},  # only events hold it
        },
    }
    compact = run(InMemoryLog(), definition, {})
    dicts = run(DictLog(), definition, {})
    assert compact[0] == dicts[0] == "FAILED"
    assert compact[2] == dicts[2]
    assert "lone surrogate" in compact[2][-1]["executionFailedEventDetails"]["cause"]


@pytest.mark.parametrize("where", ["text", "name"])
def test_the_log_refuses_a_compact_event_it_could_not_encode(where: str) -> None:
    """As it refuses the dict: same error, same message, nothing written."""
    odd = "\ud800"
    name, text = ("Odd", f'"{odd}"') if where == "text" else (odd, "{}")
    event = (2, 1, 1.5, "PassStateEntered", "stateEnteredEventDetails", name, "input", text)
    refused = []
    for log, written in ((InMemoryLog(), event), (DictLog(), expand(event))):
        record = ExecutionRecord("arn:e", "arn:sm", "e", {}, "RUNNING", 1, {}, (), 1.0)
        log.create(record, [])
        with pytest.raises(UnstorableDataError) as exc:
            log.commit(replace(record, seq=2), 1, [{"id": 1, "type": "X"}, written])
        assert log.history("arn:e").events == [] and log.writes == 1
        refused.append(str(exc.value))
    assert refused[0] == refused[1] and "lone surrogate" in refused[0]


def test_expand_gives_the_dict_the_engine_records() -> None:
    event = (3, 2, 1.5, "PassStateExited", "stateExitedEventDetails", "Mark", "output", "{}")
    assert expand(event) == {
        "id": 3,
        "previousEventId": 2,
        "timestamp": 1.5,
        "type": "PassStateExited",
        "stateExitedEventDetails": {
            "name": "Mark",
            "output": "{}",
            "outputDetails": {"truncated": False},
        },
    }
    plain = {"id": 1, "type": "ExecutionStarted"}
    assert expand(plain) is plain


def test_a_wrapper_that_forwards_attributes_gets_dicts() -> None:
    class Metered:
        def __init__(self, inner: InMemoryLog) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    assert Metered(InMemoryLog()).compact_events is True  # forwarded...
    assert not takes_compact_events(Metered(InMemoryLog()))  # ...but not taken for a declaration


@pytest.mark.parametrize("iterations", [0, 3, 200])
def test_the_lazy_history_pages_as_the_eager_one(iterations: int) -> None:
    log = InMemoryLog()
    *_, arn = run(log, counter_loop(iterations), {"i": 0})
    whole = log.history(arn, limit=10**9).events
    pages, token = [], None
    while True:
        page = log.history(arn, next_token=token, limit=7)
        pages.extend(page.events)
        if page.next_token is None:
            break
        token = page.next_token
    backwards = log.history(arn, reverse=True, limit=5).events
    assert pages == whole and backwards == whole[::-1][:5]


class _Event(dict[str, Any]):
    """A dict event of a subclass: frozen() splits such a commit by the general rule."""


_COMPACT = st.builds(
    lambda i, name, text: (
        i,
        i - 1,
        0.0,
        "PassStateEntered",
        "stateEnteredEventDetails",
        name,
        "input",
        text,
    ),
    st.integers(1, 99),
    st.sampled_from(["A", "é", "B"]),
    st.sampled_from(['{"i":1}', '"ü"', "{}"]),
)
_DICT = st.builds(lambda i: {"id": i, "type": "ExecutionStarted"}, st.integers(1, 99))


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.one_of(_COMPACT, _DICT), min_size=1, max_size=12))
def test_a_commit_is_split_in_c_as_by_the_general_rule(events: list[Any]) -> None:
    """frozen()'s split of compact and dict events (made in C) equals the general rule's."""
    from stepflow.runtime.memory_chunks import frozen

    general = [_Event(e) if isinstance(e, dict) else e for e in events]
    assert frozen(events) == frozen(general)
    [(stored, count)] = frozen(events)
    assert count == len(events)
    if all(isinstance(e, tuple) for e in events):
        assert stored == Mixed(tuple(events), None)
    elif isinstance(stored, Mixed):
        assert [e is None for e in stored.compact] == [isinstance(e, dict) for e in events]


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.one_of(_COMPACT, _DICT), max_size=12),
    where=st.integers(0, 12),
    field=st.sampled_from([5, 7]),
)
def test_a_lone_surrogate_anywhere_in_a_commit_is_refused(
    events: list[Any], where: int, field: int
) -> None:
    """Wherever the bad compact event falls among dict events, frozen() finds it."""
    from stepflow.runtime.memory_chunks import UnstorableValueError, frozen

    bad = list((3, 2, 0.0, "PassStateEntered", "stateEnteredEventDetails", "A", "input", "{}"))
    bad[field] = "\ud800" if field == 5 else '"\ud800"'
    commit = [*events[:where], tuple(bad), *events[where:]]
    with pytest.raises(UnstorableValueError, match="lone surrogate"):
        frozen(commit)
