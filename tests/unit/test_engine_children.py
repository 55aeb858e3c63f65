"""Large inline Maps as map runs: the engine's side and the same Map through the Stepper."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stepflow.asl import parse
from stepflow.engine import (
    CancelMapRun,
    Complete,
    MapIterations,
    MapRunFinished,
    Start,
    StartMapRun,
    Stop,
    decide,
    new_execution,
)
from stepflow.runtime import InMemoryBus, InMemoryLog, Stepper
from stepflow.testing import execute

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Big"


def _map(processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Assign": {"k": 5}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "v.$": "$$.Map.Item.Value",
                    "i.$": "$$.Map.Item.Index",
                },
                "ItemProcessor": processor,
                "End": True,
                **fields,
            },
        },
    }


DOUBLE = {
    "StartAt": "P",
    "States": {
        "P": {
            "Type": "Pass",
            "Parameters": {
                "v.$": "States.MathAdd($.v, $.v)",
                "i.$": "$.i",
                "k.$": "$k",
                "tag.$": "$$.Execution.Input.tag",
                "name.$": "$$.Execution.Name",
            },
            "End": True,
        }
    },
}

FAILING = {
    "StartAt": "C",
    "States": {
        "C": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.v", "NumericEquals": 1, "Next": "F"}],
            "Default": "S",
        },
        "F": {"Type": "Fail", "Error": "Bad", "Cause": "item one"},
        "S": {"Type": "Succeed"},
    },
}


def _engine(definition: dict[str, Any], input: Any, child_limit: int) -> Any:
    state = new_execution(name="p", input=input, now=0.0, child_limit=child_limit)
    return parse(definition), decide(parse(definition), state, Start(), 0.0)


def _run(definition: dict[str, Any], input: Any, child_limit: int = 2) -> tuple[Any, InMemoryLog]:
    """Run ``definition`` through the Stepper (the deployment's path) until the bus drains."""
    log, bus = InMemoryLog(), InMemoryBus(0.0)
    machine = parse(definition)
    s = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _: machine,
        clock=lambda: bus.now,
        invoker=lambda body: None,  # type: ignore[arg-type,return-value]
        child_limit=child_limit,
    )
    record = s.start_execution(state_machine_arn=SM, name="e", input=input, seed=1)
    for _ in range(10_000):
        if not len(bus):
            break
        batch = bus.receive_batch(10)
        s.handle_batch(batch)
        for message in batch:
            bus.ack(message)
    final = log.get(record.execution_arn)
    assert final is not None
    return final, log


def _types(log: InMemoryLog, arn: str) -> Counter[str]:
    return Counter(e["type"] for e in log.history(arn).events)


def test_a_large_inline_map_asks_for_an_inline_map_run() -> None:
    _, decision = _engine(_map(DOUBLE, MaxConcurrency=3), {"items": [1, 2, 3]}, 2)
    (command,) = [c for c in decision.commands if isinstance(c, StartMapRun)]
    spec = command.spec
    assert spec["inline"] is True and spec["items"] == [1, 2, 3]
    assert spec["max_concurrency"] == 3 and spec["scope"]["variables"] == {"k": 5}
    assert spec["execution"]["name"] == "p"
    types = [e["type"] for e in decision.events]
    assert "MapStateStarted" in types and "MapRunStarted" not in types
    assert decision.state.frames[next(iter(decision.state.frames))].fanout is None


def test_a_small_map_stays_inline() -> None:
    _, decision = _engine(_map(DOUBLE), {"items": [1, 2], "tag": "t"}, 4)
    assert not any(isinstance(c, StartMapRun) for c in decision.commands)
    assert decision.state.status == "SUCCEEDED"


def test_a_duplicate_or_early_progress_report_is_applied_once() -> None:
    machine, decision = _engine(_map(DOUBLE), {"items": [1, 2, 3]}, 2)
    (command,) = [c for c in decision.commands if isinstance(c, StartMapRun)]
    state, seen = decision.state, []
    for report in (
        MapIterations(command.run_id, 2, [["Started", 1]]),  # early
        MapIterations(command.run_id, 1, [["Started", 0]]),
        MapIterations(command.run_id, 2, [["Started", 1]]),  # duplicate
        MapIterations(command.run_id, 1, [["Started", 0]]),  # duplicate
        MapIterations("another run", 3, [["Started", 2]]),  # stale
    ):
        step = decide(machine, state, report, 0.0)
        state = step.state
        seen.extend(e["mapIterationStartedEventDetails"]["index"] for e in step.events)
    assert seen == [1, 0]
    done = decide(machine, state, MapRunFinished(command.run_id, "SUCCEEDED", [7, 8, 9]), 0.0)
    assert done.state.status == "SUCCEEDED" and done.state.output == [7, 8, 9]
    again = decide(machine, done.state, MapRunFinished(command.run_id, "SUCCEEDED", [0]), 0.0)
    assert again.events == [] and again.commands == []


def test_stopping_the_parent_cancels_its_run_once() -> None:
    machine, decision = _engine(_map(DOUBLE), {"items": [1, 2, 3]}, 1)
    (command,) = [c for c in decision.commands if isinstance(c, StartMapRun)]
    stopped = decide(machine, decision.state, Stop("Halt"), 0.0)
    assert [c.run_id for c in stopped.commands if isinstance(c, CancelMapRun)] == [command.run_id]
    assert isinstance(stopped.commands[-1], Complete) and stopped.state.status == "ABORTED"


def test_children_compute_what_inline_iterations_compute() -> None:
    definition = _map(DOUBLE, MaxConcurrency=3)
    input = {"items": list(range(12)), "tag": "t"}
    final, log = _run(definition, input)
    inline = execute(definition, input)
    assert final.status == "SUCCEEDED"
    unnamed = [{k: v for k, v in r.items() if k != "name"} for r in final.state["output"]]
    assert unnamed == [{k: v for k, v in r.items() if k != "name"} for r in inline.result]
    assert final.state["output"][3] == {"v": 6, "i": 3, "k": 5, "tag": "t", "name": "e"}
    types = _types(log, final.execution_arn)
    assert types["MapIterationStarted"] == types["MapIterationSucceeded"] == 12
    assert types["PassStateEntered"] == 1  # Init only: the iterations' states are the children's
    assert types["MapStateSucceeded"] == 1 and types["MapRunStarted"] == 0
    children = [r for arn, r in log._heads.items() if ":execution:Big/M:" in arn]
    assert len(children) == 12 and all(r.attributes == {"listed_under": ""} for r in children)


def test_a_failed_child_fails_the_map_with_its_error_and_is_caught() -> None:
    definition = _map(FAILING, Catch=[{"ErrorEquals": ["Bad"], "Next": "Caught"}])
    definition["States"]["M"].pop("End")
    definition["States"]["M"]["Next"] = "Caught"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    final, log = _run(definition, {"items": [0, 1, 2, 3], "tag": "t"})
    assert final.status == "SUCCEEDED"
    assert final.state["output"] == {"Error": "Bad", "Cause": "item one"}
    types = _types(log, final.execution_arn)
    assert types["MapIterationFailed"] == 1 and types["MapStateFailed"] == 1


def test_without_catch_the_execution_fails_with_the_childs_error() -> None:
    final, log = _run(_map(FAILING, MaxConcurrency=1), {"items": [0, 1, 2, 3], "tag": "t"})
    assert (final.status, final.state["error"]) == ("FAILED", "Bad")
    types = _types(log, final.execution_arn)
    assert types["MapIterationStarted"] == 2  # items 2 and 3 never started
    assert types["MapIterationSucceeded"] == types["MapIterationFailed"] == 1


def test_tolerated_failures_of_children() -> None:
    final, _ = _run(_map(FAILING, ToleratedFailureCount=1), {"items": [0, 1, 2], "tag": "t"})
    assert final.status == "SUCCEEDED"
    assert final.state["output"][1] == {"Error": "Bad", "Cause": "item one"}
    final, _ = _run(_map(FAILING, ToleratedFailureCount=0), {"items": [0, 1, 2], "tag": "t"})
    assert (final.status, final.state["error"]) == (
        "FAILED",
        "States.ExceedToleratedFailureThreshold",
    )


def test_a_runtime_error_in_a_child_fails_the_parent() -> None:
    broken = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "$.missing"}, "End": True}},
    }
    definition = _map(broken, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "M"}])
    final, _ = _run(definition, {"items": [1, 2, 3], "tag": 1})
    assert (final.status, final.state["error"]) == ("FAILED", "States.Runtime")


def test_progress_reports_are_batched_and_each_event_recorded_once(monkeypatch: Any) -> None:
    from stepflow.runtime import map_inline

    definition = _map(DOUBLE, MaxConcurrency=3)
    input = {"items": list(range(12)), "tag": "t"}
    quiet, _ = _run(definition, input)
    monkeypatch.setattr(map_inline, "REPORT_EVENTS", 4)
    chatty, log = _run(definition, input)
    types = _types(log, chatty.execution_arn)
    assert types["MapIterationStarted"] == types["MapIterationSucceeded"] == 12
    events = log.history(chatty.execution_arn).events
    indexes = [
        e["mapIterationSucceededEventDetails"]["index"]
        for e in events
        if "mapIterationSucceededEventDetails" in e
    ]
    assert sorted(indexes) == list(range(12))
    # each report is one commit of the parent: 24 events in reports of at least 4
    assert quiet.seq < chatty.seq <= quiet.seq + 24 // 4
