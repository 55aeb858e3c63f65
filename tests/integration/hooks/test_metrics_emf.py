"""The metrics hook's EMF as deployed: exactly docs/hooks.md's dimensions, the event's time."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.hooks import ExecutionInfo, HookEvent
from stepflow.hooks.metrics import MetricsHook

pytest.importorskip("aws_lambda_powertools")

from stepflow.aws.hooks_wiring import PowertoolsSink

SM = "arn:aws:states:us-east-1:1:stateMachine:orders"
INFO = ExecutionInfo("arn:aws:states:us-east-1:1:execution:orders:e", SM, "e")


def _event(
    kind: Any, id_: int, when: float, event_type: str, state: str | None = None
) -> HookEvent:
    raw: dict[str, Any] = {"id": id_, "type": event_type, "timestamp": when}
    return HookEvent(kind, INFO, id_, when, raw, state)


def test_emf_has_exactly_the_documented_dimensions_and_the_events_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN Powertools told of a service (as a Lambda function's environment may)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stepflow-hooks")
    lines: list[str] = []
    hook = MetricsHook(PowertoolsSink("StepFlow", write=lines.append))
    hook.handle(
        [
            _event("ExecutionStarted", 1, 1700000000.0, "ExecutionStarted"),
            _event("StateEntered", 2, 1700000000.5, "TaskStateEntered", "Work"),
            _event("StateExited", 5, 1700000002.0, "TaskStateExited", "Work"),
            _event("ExecutionSucceeded", 6, 1700000003.25, "ExecutionSucceeded"),
        ]
    )
    documents = {name: doc for doc in map(json.loads, lines) for name in doc if name[0].isupper()
                 and name not in ("ExecutionType", "StateMachine", "StateType")}  # fmt: skip
    assert set(documents) == {"ExecutionsStarted", "StateTime", "ExecutionsSucceeded",
                              "ExecutionTime"}  # fmt: skip
    expected = {
        "ExecutionsStarted": (["ExecutionType", "StateMachine"], 1700000000000),
        "StateTime": (["ExecutionType", "StateMachine", "StateType"], 1700000002000),
        "ExecutionsSucceeded": (["ExecutionType", "StateMachine"], 1700000003250),
        "ExecutionTime": (["ExecutionType", "StateMachine"], 1700000003250),
    }
    for name, (dimensions, timestamp) in expected.items():
        document = documents[name]
        [directive] = document["_aws"]["CloudWatchMetrics"]
        # THEN each document has exactly the documented dimension set, no `service`
        assert directive["Dimensions"] == [dimensions], name
        assert "service" not in document
        # AND is stamped with its event's time, not the emit time
        assert document["_aws"]["Timestamp"] == timestamp, name
    assert documents["StateTime"]["StateType"] == "Task"
    assert documents["ExecutionTime"]["ExecutionTime"] == [pytest.approx(3250.0)]
    assert documents["ExecutionTime"]["StateMachine"] == "orders"
