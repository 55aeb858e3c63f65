"""Execution state survives JSON encoding between any two decisions."""

from __future__ import annotations

import heapq
import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine import (
    Complete,
    Continue,
    ContinueLater,
    Event,
    RunTask,
    Start,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    decide,
    new_execution,
)
from stepflow.engine.codec import decode_state, encode_state
from stepflow.testing import execute

FN = "arn:aws:lambda:us-east-1:123456789012:function:"

WORKFLOW = {
    "StartAt": "Set",
    "States": {
        "Set": {"Type": "Pass", "Assign": {"k": 2}, "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "M",
                    "States": {
                        "M": {
                            "Type": "Map",
                            "MaxConcurrency": 2,
                            "ItemsPath": "$.xs",
                            "ItemProcessor": {
                                "StartAt": "T",
                                "States": {
                                    "T": {
                                        "Type": "Task",
                                        "Resource": FN + "mul",
                                        "Parameters": {"x.$": "$", "k.$": "$k"},
                                        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5}],
                                        "End": True,
                                    }
                                },
                            },
                            "End": True,
                        }
                    },
                },
                {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}},
            ],
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}


class Flaky(Exception):
    pass


def mul(payload: dict[str, Any]) -> int:
    return int(payload["x"] * payload["k"])


def run_with_roundtrips(definition: dict[str, Any], value: Any) -> tuple[str, Any, list[str]]:
    """A minimal driver that JSON-encodes and decodes the state after every decision."""
    machine = parse(definition)
    now = 1_000.0
    state = new_execution(name="rt", input=value, now=now)
    pending: list[Event] = [Start()]
    timers: list[tuple[float, str]] = []
    types: list[str] = []
    failed_once: set[Any] = set()
    while pending or timers:
        if pending:
            event = pending.pop(0)
        else:
            now, timer_id = heapq.heappop(timers)
            event = TimerFired(timer_id)
        decision = decide(machine, state, event, now)
        state = decode_state(json.loads(json.dumps(encode_state(decision.state))))
        types += [e["type"] for e in decision.events]
        for command in decision.commands:
            if isinstance(command, RunTask):
                x = command.input["x"]
                if x == 3 and x not in failed_once:
                    failed_once.add(x)
                    pending.append(TaskFailed(command.task_id, "Flaky", "once"))
                else:
                    pending.append(TaskSucceeded(command.task_id, mul(command.input)))
            elif isinstance(command, StartTimer):
                heapq.heappush(timers, (command.fire_at, command.timer_id))
            elif isinstance(command, ContinueLater):
                pending.append(Continue())
            elif isinstance(command, Complete):
                return command.status, command.output, types
    raise AssertionError("the execution did not complete")


def test_roundtrips_between_decisions_do_not_change_the_outcome() -> None:
    calls: set[int] = set()

    def handler(payload: dict[str, Any]) -> int:
        if payload["x"] == 3 and 3 not in calls:
            calls.add(3)
            raise Flaky("once")
        return mul(payload)

    reference = execute(WORKFLOW, {"xs": [1, 2, 3, 4]}, handlers={"mul": handler})
    status, output, types = run_with_roundtrips(WORKFLOW, {"xs": [1, 2, 3, 4]})
    assert (
        (status, output)
        == ("SUCCEEDED", reference.result)
        == ("SUCCEEDED", [[2, 4, 6, 8], {"xs": [1, 2, 3, 4]}])
    )
    assert types == [e["type"] for e in reference.history]


def test_an_unknown_format_is_refused() -> None:
    data = encode_state(new_execution(name="x", input={}, now=0.0))
    data["format"] = 99
    with pytest.raises(ValueError, match="format"):
        decode_state(data)
