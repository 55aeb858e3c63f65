"""RedriveExecution keeps AWS's 14-day window; DescribeExecution reports the redrive fields."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from stepflow.api import ApiError
from stepflow.runtime import InMemoryLog

from tests.api.conftest import FN, HANDLERS, Api

DAY = 86_400
WINDOW = 14 * DAY
FLAKY = json.dumps(
    {"StartAt": "Go", "States": {"Go": {"Type": "Task", "Resource": FN + "flaky", "End": True}}}
)
_OUTPUT = (
    botocore.session.get_session()
    .get_service_model("stepfunctions")
    .operation_model("DescribeExecution")
    .output_shape
)


def _failed(api: Api, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    def flaky(value: object) -> object:
        raise RuntimeError("down")

    monkeypatch.setitem(HANDLERS, "flaky", flaky)
    arn = api.machine("Flaky" + name, FLAKY)
    execution = str(api("StartExecution", stateMachineArn=arn, name=name)["executionArn"])
    api.drain()
    return execution


def _redrive_fields(described: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in described.items() if k.startswith("redrive")}
    for key, value in fields.items():  # each as botocore's shape has it
        shape = _OUTPUT.members[key]
        if shape.type_name == "string" and shape.enum:
            assert value in shape.enum
        expected = {"integer": int, "string": str, "timestamp": float}[shape.type_name]
        assert isinstance(value, expected), (key, value)
    return fields


def test_a_failed_execution_is_redrivable_until_the_window_ends(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = _failed(api, monkeypatch, "inside")
    described = api("DescribeExecution", executionArn=execution)
    assert _redrive_fields(described) == {"redriveCount": 0, "redriveStatus": "REDRIVABLE"}
    # one second before the window ends, the redrive goes through
    api.bus.now = described["stopDate"] + WINDOW - 1
    redrive_date = api("RedriveExecution", executionArn=execution)["redriveDate"]
    api.drain()
    described = api("DescribeExecution", executionArn=execution)
    assert described["status"] == "FAILED"
    assert _redrive_fields(described) == {
        "redriveCount": 1,
        "redriveDate": redrive_date,
        "redriveStatus": "REDRIVABLE",
    }


def test_past_the_window_redrive_is_refused_without_a_write(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    execution = _failed(api, monkeypatch, "outside")
    stopped = api("DescribeExecution", executionArn=execution)["stopDate"]
    api.bus.now = stopped + WINDOW + 1
    log = api.log
    assert isinstance(log, InMemoryLog)
    writes, before = log.writes, log.get(execution)
    with pytest.raises(ApiError) as refused:
        api("RedriveExecution", executionArn=execution)
    assert refused.value.code == "ExecutionNotRedrivable"
    assert "Execution redrivable period exceeded" in refused.value.message
    assert log.writes == writes and log.get(execution) == before
    described = api("DescribeExecution", executionArn=execution)
    assert _redrive_fields(described) == {
        "redriveCount": 0,
        "redriveStatus": "NOT_REDRIVABLE",
        "redriveStatusReason": "Execution redrivable period exceeded",
    }


def test_running_and_succeeded_executions_are_not_redrivable(api: Api) -> None:
    wait = json.dumps(
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
    )
    arn = api.machine("Waits", wait)
    execution = api("StartExecution", stateMachineArn=arn, name="w")["executionArn"]
    running = api("DescribeExecution", executionArn=execution)
    assert _redrive_fields(running)["redriveStatusReason"] == (
        "Execution is RUNNING and cannot be redriven"
    )
    api.drain()
    done = api("DescribeExecution", executionArn=execution)
    assert _redrive_fields(done) == {
        "redriveCount": 0,
        "redriveStatus": "NOT_REDRIVABLE",
        "redriveStatusReason": "Execution is SUCCEEDED and cannot be redriven",
    }
