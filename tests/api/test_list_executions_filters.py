"""ListExecutions by alias and by redriveFilter; the alias an execution was started through."""

from __future__ import annotations

import json

import pytest
from stepflow.api import ApiError

from tests.api.conftest import DOUBLE, FN, HANDLERS, PASS, Api

FLAKY = json.dumps(
    {"StartAt": "Go", "States": {"Go": {"Type": "Task", "Resource": FN + "flaky", "End": True}}}
)


def names(api: Api, **params: object) -> list[str]:
    return [e["name"] for e in api("ListExecutions", **params)["executions"]]


def test_an_execution_started_through_an_alias_names_it_and_is_listed_by_it(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE, publish=True)
    v1 = arn + ":1"
    alias = api(
        "CreateStateMachineAlias",
        name="live",
        routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}],
    )["stateMachineAliasArn"]
    other = api(
        "CreateStateMachineAlias",
        name="beta",
        routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}],
    )["stateMachineAliasArn"]
    via_alias = api("StartExecution", stateMachineArn=alias, name="a", input='{"n": 1}')
    api("StartExecution", stateMachineArn=v1, name="v", input='{"n": 1}')
    api("StartExecution", stateMachineArn=arn, name="h", input='{"n": 1}')
    described = api("DescribeExecution", executionArn=via_alias["executionArn"])
    assert described["stateMachineAliasArn"] == alias
    assert described["stateMachineVersionArn"] == v1
    assert names(api, stateMachineArn=alias) == ["a"]
    assert names(api, stateMachineArn=other) == []
    assert sorted(names(api, stateMachineArn=v1)) == ["a", "v"]
    listed = {e["name"]: e for e in api("ListExecutions", stateMachineArn=arn)["executions"]}
    assert sorted(listed) == ["a", "h", "v"]
    assert listed["a"]["stateMachineAliasArn"] == alias
    assert "stateMachineAliasArn" not in listed["v"] and "stateMachineAliasArn" not in listed["h"]
    with pytest.raises(ApiError) as missing:
        api("ListExecutions", stateMachineArn=arn + ":nope")
    assert missing.value.code == "ResourceNotFound"


def test_redrive_filter_lists_redriven_or_not(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(value: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("down")
        return {"ok": True}

    monkeypatch.setitem(HANDLERS, "flaky", flaky)
    arn = api.machine("Flaky", FLAKY)
    first = api("StartExecution", stateMachineArn=arn, name="first")["executionArn"]
    api.drain()
    api("RedriveExecution", executionArn=first)
    api("StartExecution", stateMachineArn=arn, name="second")
    api.drain()
    assert names(api, stateMachineArn=arn, redriveFilter="REDRIVEN") == ["first"]
    assert names(api, stateMachineArn=arn, redriveFilter="NOT_REDRIVEN") == ["second"]
    assert sorted(names(api, stateMachineArn=arn)) == ["first", "second"]
    with pytest.raises(ApiError) as bad:
        api("ListExecutions", stateMachineArn=arn, redriveFilter="SOMETIMES")
    assert bad.value.code == "ValidationException"
    assert api.machine("Plain", PASS)
