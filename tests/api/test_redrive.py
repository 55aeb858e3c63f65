"""RedriveExecution through the service: errors for what cannot be redriven, then a rerun."""

from __future__ import annotations

import json

import pytest
from stepflow.api import ApiError

from tests.api.conftest import FN, HANDLERS, Api

FLAKY = json.dumps(
    {
        "StartAt": "Go",
        "States": {"Go": {"Type": "Task", "Resource": FN + "flaky", "End": True}},
    }
)


def test_redrive_reruns_a_failed_execution(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(value: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("down")
        return {"ok": True}

    monkeypatch.setitem(HANDLERS, "flaky", flaky)
    arn = api.machine("Flaky", FLAKY)
    execution = api("StartExecution", stateMachineArn=arn, name="x")["executionArn"]
    api.drain()
    assert api("DescribeExecution", executionArn=execution)["status"] == "FAILED"
    assert "redriveDate" in api("RedriveExecution", executionArn=execution)
    api.drain()
    described = api("DescribeExecution", executionArn=execution)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"ok": True}
    types = [e["type"] for e in api("GetExecutionHistory", executionArn=execution)["events"]]
    assert "ExecutionFailed" in types and types[-1] == "ExecutionSucceeded"
    assert types.count("ExecutionRedriven") == 1
    with pytest.raises(ApiError) as refused:  # a succeeded execution cannot be redriven
        api("RedriveExecution", executionArn=execution)
    assert refused.value.code == "ExecutionNotRedrivable"


def test_redrive_of_a_missing_execution(api: Api) -> None:
    with pytest.raises(ApiError) as missing:
        api(
            "RedriveExecution",
            executionArn="arn:aws:states:eu-west-1:111122223333:execution:M:none",
        )
    assert missing.value.code == "ExecutionDoesNotExist"
