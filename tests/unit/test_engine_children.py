"""Large Maps as child executions: the engine's side (StartChild / ChildFinished)."""

from __future__ import annotations

from typing import Any

from stepflow.asl import parse
from stepflow.engine import (
    CancelChild,
    ChildFinished,
    Command,
    Complete,
    ExecutionState,
    NotifyParent,
    Start,
    StartChild,
    Stop,
    decide,
    new_child_execution,
    new_execution,
)
from stepflow.testing import execute

ARN = "arn:parent"


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
                "k.$": "$k",
                "tag.$": "$$.Execution.Input.tag",
            },
            "End": True,
        }
    },
}


class Driver:
    """Runs a parent and its children on the pure engine, delivering in a chosen order."""

    def __init__(self, definition: dict[str, Any], input: Any, child_limit: int) -> None:
        self.machine = parse(definition)
        self.parent = new_execution(name="p", input=input, now=0.0, child_limit=child_limit)
        self.children: dict[str, ExecutionState] = {}
        self.pending: list[StartChild] = []
        self.reports: list[ChildFinished] = []
        self.cancelled: list[str] = []
        self.max_running = 0
        self.history: list[dict[str, Any]] = []
        self._parent(Start())

    def _parent(self, event: Any) -> None:
        decision = decide(self.machine, self.parent, event, 0.0)
        self.parent = decision.state
        self.history.extend(decision.events)
        self._commands(decision.commands)
        self.max_running = max(self.max_running, len(self.parent.children))

    def _commands(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, StartChild):
                self.pending.append(command)
            elif isinstance(command, CancelChild):
                self.cancelled.append(command.child_id)
            elif isinstance(command, NotifyParent):
                assert command.parent_arn == ARN
                self.reports.append(command.event)

    def run_child(self, command: StartChild) -> None:
        child = new_child_execution(self.parent, ARN, command)
        decision = decide(self.machine, child, Start(), 0.0)
        self.children[command.child_id] = decision.state
        self._commands(decision.commands)

    def run(self) -> None:
        while self.pending or self.reports:
            while self.pending:
                self.run_child(self.pending.pop(0))
            while self.reports:
                self._parent(self.reports.pop(0))


def test_children_compute_what_inline_iterations_compute() -> None:
    definition = _map(DOUBLE, MaxConcurrency=3)
    input = {"items": list(range(12)), "tag": "t"}
    driver = Driver(definition, input, child_limit=4)
    driver.run()
    inline = execute(definition, input)
    assert driver.parent.status == "SUCCEEDED"
    assert driver.parent.output == inline.result
    assert driver.parent.output[3] == {"v": 6, "k": 5, "tag": "t"}
    assert len(driver.children) == 12 and driver.max_running <= 3
    types = [e["type"] for e in driver.history]
    assert types.count("MapIterationStarted") == types.count("MapIterationSucceeded") == 12
    assert "PassStateEntered" in types and types.count("PassStateEntered") == 1  # Init only
    child = next(iter(driver.children.values()))
    assert [e["type"] for e in decide(driver.machine, child, Start(), 0).events] == []


def test_a_small_map_stays_inline() -> None:
    driver = Driver(_map(DOUBLE), {"items": [1, 2], "tag": "t"}, child_limit=4)
    assert driver.pending == [] and driver.parent.status == "SUCCEEDED"


def test_the_window_bounds_running_children_even_without_max_concurrency() -> None:
    from stepflow.engine.children import WINDOW

    driver = Driver(_map(DOUBLE), {"items": list(range(WINDOW + 20)), "tag": "t"}, 1)
    assert len(driver.pending) == WINDOW
    driver.run()
    assert driver.parent.status == "SUCCEEDED" and len(driver.parent.output) == WINDOW + 20


def test_a_duplicate_report_changes_nothing() -> None:
    driver = Driver(_map(DOUBLE, MaxConcurrency=1), {"items": [1, 2, 3], "tag": "t"}, 1)
    driver.run_child(driver.pending.pop(0))
    report = driver.reports[0]
    driver._parent(driver.reports.pop(0))
    before = driver.parent.copy()
    again = decide(driver.machine, driver.parent, report, 0.0)
    assert again.events == [] and again.commands == [] and again.state == before


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


def test_a_failed_child_fails_the_map_cancels_the_rest_and_is_caught() -> None:
    definition = _map(FAILING, Catch=[{"ErrorEquals": ["Bad"], "Next": "Caught"}])
    definition["States"]["M"].pop("End")
    definition["States"]["M"]["Next"] = "Caught"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    driver = Driver(definition, {"items": [0, 1, 2, 3], "tag": "t"}, child_limit=2)
    started = driver.pending
    driver.pending = []
    driver.run_child(started[1])  # item 1 fails while the others still run
    driver._parent(driver.reports.pop(0))
    assert driver.cancelled == [c.child_id for i, c in enumerate(started) if i != 1]
    assert driver.parent.status == "SUCCEEDED"
    assert driver.parent.output == {"Error": "Bad", "Cause": "item one"}
    types = [e["type"] for e in driver.history]
    assert "MapIterationFailed" in types and "MapIterationAborted" in types
    assert driver.parent.children == {}


def test_tolerated_failures_of_children() -> None:
    definition = _map(FAILING, ToleratedFailureCount=1)
    driver = Driver(definition, {"items": [0, 1, 2], "tag": "t"}, child_limit=1)
    driver.run()
    assert driver.parent.status == "SUCCEEDED"
    assert driver.parent.output[1] == {"Error": "Bad", "Cause": "item one"}


def test_a_runtime_error_in_a_child_fails_the_parent() -> None:
    broken = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "$.missing"}, "End": True}},
    }
    driver = Driver(
        _map(broken, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "M"}]),
        {"items": [1, 2], "tag": 1},
        1,
    )
    driver.run()
    assert (driver.parent.status, driver.parent.error) == ("FAILED", "States.Runtime")


def test_stopping_the_parent_cancels_its_children() -> None:
    driver = Driver(_map(DOUBLE), {"items": [1, 2, 3], "tag": "t"}, child_limit=1)
    ids = {c.child_id for c in driver.pending}
    decision = decide(driver.machine, driver.parent, Stop("Halt"), 0.0)
    assert {c.child_id for c in decision.commands if isinstance(c, CancelChild)} == ids
    assert isinstance(decision.commands[-1], Complete) and decision.state.status == "ABORTED"
