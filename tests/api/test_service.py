"""The service on in-memory ports: every operation, its results and its errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.api import ApiError

from tests.api.conftest import DOUBLE, FN, PASS, ROLE, SM_PREFIX, Api


def error_of(api: Api, operation: str, **params: Any) -> str:
    with pytest.raises(ApiError) as info:
        api(operation, **params)
    return info.value.code


def test_create_describe_update_delete(api: Api) -> None:
    arn = api.machine("Orders", tracingConfiguration={"enabled": True})
    assert arn == SM_PREFIX + "Orders"
    described = api("DescribeStateMachine", stateMachineArn=arn)
    assert described["definition"] == PASS
    assert described["status"] == "ACTIVE" and described["type"] == "STANDARD"
    assert described["tracingConfiguration"] == {"enabled": True}
    revision = described["revisionId"]

    updated = api("UpdateStateMachine", stateMachineArn=arn, definition=DOUBLE)
    assert updated["revisionId"] != revision
    assert api("DescribeStateMachine", stateMachineArn=arn)["definition"] == DOUBLE
    same_role = api("UpdateStateMachine", stateMachineArn=arn, roleArn=ROLE)
    assert same_role["revisionId"] == updated["revisionId"]

    api("DeleteStateMachine", stateMachineArn=arn)
    assert error_of(api, "DescribeStateMachine", stateMachineArn=arn) == "StateMachineDoesNotExist"
    api("DeleteStateMachine", stateMachineArn=arn)  # deleting twice is fine


def test_create_errors(api: Api) -> None:
    api.machine("Orders")
    assert api.machine("Orders") == SM_PREFIX + "Orders"  # identical: idempotent
    assert (
        error_of(api, "CreateStateMachine", name="Orders", definition=DOUBLE, roleArn=ROLE)
        == "StateMachineAlreadyExists"
    )
    for bad in ("", "a b", "a:b", "semi;colon"):
        assert (
            error_of(api, "CreateStateMachine", name=bad, definition=PASS, roleArn=ROLE)
            == "InvalidName"
        ), bad
    # too long: botocore's declared maximum, a ValidationException as on AWS
    assert (
        error_of(api, "CreateStateMachine", name="x" * 81, definition=PASS, roleArn=ROLE)
        == "ValidationException"
    )
    with pytest.raises(ApiError) as info:
        api(
            "CreateStateMachine",
            name="Bad",
            definition='{"StartAt": "X", "States": {}}',
            roleArn=ROLE,
        )
    assert info.value.code == "InvalidDefinition"
    assert info.value.message == (
        "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: 'States' must contain "
        "at least one state at /States'"
    )
    assert (
        error_of(api, "CreateStateMachine", name="T", definition=PASS, roleArn=ROLE, type="FAST")
        == "StateMachineTypeNotSupported"
    )
    assert error_of(api, "DescribeStateMachine", stateMachineArn="arn:nope") == "InvalidArn"
    other_account = "arn:aws:states:eu-west-1:999999999999:stateMachine:Orders"
    assert error_of(api, "DescribeStateMachine", stateMachineArn=other_account) == "InvalidArn"
    assert (
        error_of(api, "UpdateStateMachine", stateMachineArn=SM_PREFIX + "Orders")
        == "MissingRequiredParameter"
    )
    assert (
        error_of(api, "UpdateStateMachine", stateMachineArn=SM_PREFIX + "Nope", definition=PASS)
        == "StateMachineDoesNotExist"
    )


def test_list_state_machines_pages(api: Api) -> None:
    names = [f"M{i:02d}" for i in range(7)]
    for name in reversed(names):
        api.machine(name)
    seen, token, pages = [], None, 0
    while True:
        page = api("ListStateMachines", maxResults=3, **({"nextToken": token} if token else {}))
        seen += [m["name"] for m in page["stateMachines"]]
        pages += 1
        token = page.get("nextToken")
        if token is None:
            break
    assert seen == names and pages == 3
    assert error_of(api, "ListStateMachines", nextToken="garbage") == "InvalidToken"
    assert error_of(api, "ListStateMachines", maxResults=1001) == "ValidationException"


def test_start_describe_and_finish(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    started = api("StartExecution", stateMachineArn=arn, name="e1", input='{"n": 21}')
    assert started["executionArn"] == "arn:aws:states:eu-west-1:111122223333:execution:Doubler:e1"
    running = api("DescribeExecution", executionArn=started["executionArn"])
    assert running["status"] == "RUNNING" and "stopDate" not in running
    assert json.loads(running["input"]) == {"n": 21}
    api.drain()
    done = api("DescribeExecution", executionArn=started["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"n": 42}
    assert done["stopDate"] >= done["startDate"] + 3600
    assert done["stateMachineArn"] == arn
    meta = api(
        "DescribeExecution", executionArn=started["executionArn"], includedData="METADATA_ONLY"
    )
    assert "input" not in meta and "output" not in meta


def test_failed_execution_reports_error_and_cause(api: Api) -> None:
    boom = {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": FN + "boom", "End": True}}}
    arn = api.machine("Boom", json.dumps(boom))
    execution = api("StartExecution", stateMachineArn=arn)["executionArn"]
    api.drain()
    described = api("DescribeExecution", executionArn=execution)
    assert described["status"] == "FAILED" and described["error"] == "ValueError"
    assert "boom" in described["cause"] and "output" not in described


def test_start_execution_is_idempotent_by_name(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    first = api("StartExecution", stateMachineArn=arn, name="same", input='{"n": 1}')
    again = api("StartExecution", stateMachineArn=arn, name="same", input='{"n": 1}')
    assert again == first
    assert (
        error_of(api, "StartExecution", stateMachineArn=arn, name="same", input='{"n": 2}')
        == "ExecutionAlreadyExists"
    )
    api.drain()
    assert (
        error_of(api, "StartExecution", stateMachineArn=arn, name="same", input='{"n": 1}')
        == "ExecutionAlreadyExists"
    )  # closed: a name is never reused


def test_start_execution_errors(api: Api) -> None:
    arn = api.machine()
    assert error_of(api, "StartExecution", stateMachineArn=arn, input="{not json") == (
        "InvalidExecutionInput"
    )
    assert error_of(api, "StartExecution", stateMachineArn=arn, name="a/b") == "InvalidName"
    assert error_of(api, "StartExecution", stateMachineArn=SM_PREFIX + "Nope") == (
        "StateMachineDoesNotExist"
    )
    assert error_of(api, "StartExecution", stateMachineArn="arn:aws:states:x") == "InvalidArn"
    missing = "arn:aws:states:eu-west-1:111122223333:execution:M:nope"
    for operation in ("DescribeExecution", "GetExecutionHistory", "StopExecution"):
        assert error_of(api, operation, executionArn=missing) == "ExecutionDoesNotExist"
        assert error_of(api, operation, executionArn=SM_PREFIX + "M") == "InvalidArn"


def test_list_executions_filters_and_pages(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    for i in range(5):
        api("StartExecution", stateMachineArn=arn, name=f"e{i}", input='{"n": 1}')
        api.bus.now += 1  # distinct start dates: newest first
    api.drain()
    for i in range(5, 8):
        api("StartExecution", stateMachineArn=arn, name=f"e{i}", input='{"n": 1}')
        api.bus.now += 1
    names, token = [], None
    while True:
        page = api(
            "ListExecutions",
            stateMachineArn=arn,
            maxResults=3,
            **({"nextToken": token} if token else {}),
        )
        names += [e["name"] for e in page["executions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert names == [f"e{i}" for i in reversed(range(8))]
    running = api("ListExecutions", stateMachineArn=arn, statusFilter="RUNNING")
    assert [e["name"] for e in running["executions"]] == ["e7", "e6", "e5"]
    assert all("stopDate" not in e for e in running["executions"])
    assert error_of(api, "ListExecutions", stateMachineArn=arn, statusFilter="DONE") == (
        "ValidationException"
    )
    assert error_of(api, "ListExecutions", stateMachineArn=SM_PREFIX + "Nope") == (
        "StateMachineDoesNotExist"
    )
    assert error_of(api, "ListExecutions", stateMachineArn=arn, nextToken="x") == "InvalidToken"


def test_history_pages_forward_and_backward(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    execution = api("StartExecution", stateMachineArn=arn, input='{"n": 1}')["executionArn"]
    api.drain()
    full = api("GetExecutionHistory", executionArn=execution)["events"]
    ids = [e["id"] for e in full]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 5

    def pages(reverse: bool) -> list[int]:
        seen, token = [], None
        while True:
            page = api(
                "GetExecutionHistory",
                executionArn=execution,
                maxResults=2,
                reverseOrder=reverse,
                **({"nextToken": token} if token else {}),
            )
            assert len(page["events"]) <= 2
            seen += [e["id"] for e in page["events"]]
            token = page.get("nextToken")
            if not token:
                return seen

    assert pages(False) == ids
    assert pages(True) == ids[::-1]
    bare = api("GetExecutionHistory", executionArn=execution, includeExecutionData=False)
    started = bare["events"][0]["executionStartedEventDetails"]
    assert "input" not in started and full[0]["executionStartedEventDetails"]["input"]
    forward = api("GetExecutionHistory", executionArn=execution, maxResults=2)["nextToken"]
    assert (
        error_of(
            api, "GetExecutionHistory", executionArn=execution, reverseOrder=True, nextToken=forward
        )
        == "InvalidToken"
    )


def test_stop_execution(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    execution = api("StartExecution", stateMachineArn=arn, input='{"n": 1}')["executionArn"]
    stopped = api("StopExecution", executionArn=execution, error="Halt", cause="by test")
    described = api("DescribeExecution", executionArn=execution)
    assert described["status"] == "ABORTED" and described["stopDate"] == stopped["stopDate"]
    assert described["error"] == "Halt" and described["cause"] == "by test"
    api.drain()  # the pending timer finds the execution over
    assert api("DescribeExecution", executionArn=execution)["status"] == "ABORTED"


def test_running_execution_keeps_its_definition_after_update(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE)
    execution = api("StartExecution", stateMachineArn=arn, input='{"n": 5}')["executionArn"]
    api("UpdateStateMachine", stateMachineArn=arn, definition=PASS)
    api.drain()
    assert json.loads(api("DescribeExecution", executionArn=execution)["output"]) == {"n": 10}
    described = api("DescribeStateMachineForExecution", executionArn=execution)
    assert described["definition"] == DOUBLE and described["stateMachineArn"] == arn
    later = api("StartExecution", stateMachineArn=arn, input='{"n": 5}')["executionArn"]
    api.drain()
    assert json.loads(api("DescribeExecution", executionArn=later)["output"]) == {"n": 5}


def test_versions_and_aliases(api: Api) -> None:
    arn = api.machine("Doubler", DOUBLE, publish=True, versionDescription="first")
    v1 = arn + ":1"
    assert api("PublishStateMachineVersion", stateMachineArn=arn)["stateMachineVersionArn"] == v1
    api("UpdateStateMachine", stateMachineArn=arn, definition=PASS, publish=True)
    v2 = arn + ":2"
    listed = api("ListStateMachineVersions", stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [v1, v2]
    assert api("DescribeStateMachine", stateMachineArn=v1)["definition"] == DOUBLE
    assert api("DescribeStateMachine", stateMachineArn=v1)["description"] == "first"

    on_v1 = api("StartExecution", stateMachineArn=v1, input='{"n": 4}')["executionArn"]
    alias = api(
        "CreateStateMachineAlias",
        name="live",
        routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}],
    )
    alias_arn = alias["stateMachineAliasArn"]
    assert alias_arn == arn + ":live"
    on_alias = api("StartExecution", stateMachineArn=alias_arn, input='{"n": 3}')["executionArn"]
    api.drain()
    assert json.loads(api("DescribeExecution", executionArn=on_v1)["output"]) == {"n": 8}
    described = api("DescribeExecution", executionArn=on_alias)
    assert json.loads(described["output"]) == {"n": 6}
    assert described["stateMachineVersionArn"] == v1
    only_v1 = api("ListExecutions", stateMachineArn=v1)["executions"]
    assert {e["executionArn"] for e in only_v1} == {on_v1, on_alias}

    api(
        "UpdateStateMachineAlias",
        stateMachineAliasArn=alias_arn,
        routingConfiguration=[{"stateMachineVersionArn": v2, "weight": 100}],
    )
    routing = api("DescribeStateMachineAlias", stateMachineAliasArn=alias_arn)
    assert routing["routingConfiguration"] == [{"stateMachineVersionArn": v2, "weight": 100}]
    assert error_of(api, "DeleteStateMachineVersion", stateMachineVersionArn=v2) == (
        "ConflictException"
    )
    api("DeleteStateMachineVersion", stateMachineVersionArn=v1)
    assert error_of(api, "StartExecution", stateMachineArn=v1) == "StateMachineDoesNotExist"
    aliases = api("ListStateMachineAliases", stateMachineArn=arn)["stateMachineAliases"]
    assert [a["stateMachineAliasArn"] for a in aliases] == [alias_arn]
    api("DeleteStateMachineAlias", stateMachineAliasArn=alias_arn)
    assert error_of(api, "DescribeStateMachineAlias", stateMachineAliasArn=alias_arn) == (
        "ResourceNotFound"
    )


def test_alias_errors(api: Api) -> None:
    arn = api.machine("M", publish=True)
    v1 = arn + ":1"
    route = [{"stateMachineVersionArn": v1, "weight": 100}]
    assert error_of(api, "CreateStateMachineAlias", name="123", routingConfiguration=route) == (
        "InvalidName"
    )
    half = [{"stateMachineVersionArn": v1, "weight": 50}]
    assert error_of(api, "CreateStateMachineAlias", name="a", routingConfiguration=half) == (
        "ValidationException"
    )
    ghost = [{"stateMachineVersionArn": arn + ":9", "weight": 100}]
    assert error_of(api, "CreateStateMachineAlias", name="a", routingConfiguration=ghost) == (
        "ResourceNotFound"
    )
    api("CreateStateMachineAlias", name="a", routingConfiguration=route)
    api("CreateStateMachineAlias", name="a", routingConfiguration=route)  # identical: fine
    assert (
        error_of(
            api,
            "CreateStateMachineAlias",
            name="a",
            routingConfiguration=route,
            description="other",
        )
        == "ConflictException"
    )
    assert (
        error_of(api, "PublishStateMachineVersion", stateMachineArn=arn, revisionId="stale")
        == "ConflictException"
    )


def test_start_sync_execution(api: Api) -> None:
    arn = api.machine("Fast", DOUBLE, type="EXPRESS")
    result = api("StartSyncExecution", stateMachineArn=arn, name="s1", input='{"n": 2}')
    assert result["status"] == "SUCCEEDED" and json.loads(result["output"]) == {"n": 4}
    assert result["executionArn"].startswith(
        "arn:aws:states:eu-west-1:111122223333:express:Fast:s1:"
    )
    boom = {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": FN + "boom", "End": True}}}
    failing = api.machine("Failing", json.dumps(boom), type="EXPRESS")
    failed = api("StartSyncExecution", stateMachineArn=failing)
    assert failed["status"] == "FAILED" and failed["error"] == "ValueError"
    standard = api.machine("Std")
    assert error_of(api, "StartSyncExecution", stateMachineArn=standard) == (
        "StateMachineTypeNotSupported"
    )


def test_start_sync_execution_runs_a_map_of_41_items_as_child_executions(api: Api) -> None:
    each = {
        "StartAt": "D",
        "States": {"D": {"Type": "Task", "Resource": FN + "double", "End": True}},
    }
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemProcessor": each, "End": True}},
    }
    arn = api.machine("Wide", json.dumps(definition), type="EXPRESS")
    items = [{"n": i} for i in range(41)]
    version = api("PublishStateMachineVersion", stateMachineArn=arn)["stateMachineVersionArn"]
    for target in (arn, version):  # children find the definition the execution started with
        result = api("StartSyncExecution", stateMachineArn=target, input=json.dumps(items))
        assert result["status"] == "SUCCEEDED", result
        assert json.loads(result["output"]) == [{"n": 2 * i} for i in range(41)]


def test_test_state(api: Api) -> None:
    task = {"Type": "Task", "Resource": FN + "double", "ResultPath": "$.r", "Next": "After"}
    result = api("TestState", definition=json.dumps(task), roleArn=ROLE, input='{"n": 3}')
    assert result["status"] == "SUCCEEDED" and result["nextState"] == "After"
    assert json.loads(result["output"]) == {"n": 3, "r": {"n": 6}}
    caught = {
        "Type": "Task",
        "Resource": FN + "boom",
        "Next": "After",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
    }
    result = api("TestState", definition=json.dumps(caught), roleArn=ROLE)
    assert result["status"] == "CAUGHT_ERROR" and result["nextState"] == "Handle"
    assert result["error"] == "ValueError"
    fail = {"Type": "Fail", "Error": "E", "Cause": "C"}
    result = api("TestState", definition=json.dumps(fail), roleArn=ROLE)
    assert (result["status"], result["error"], result["cause"]) == ("FAILED", "E", "C")
    choice = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Default": "No",
                "Choices": [{"Variable": "$.x", "NumericGreaterThan": 1, "Next": "Yes"}],
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Succeed"},
        },
    }
    result = api("TestState", definition=json.dumps(choice), stateName="C", input='{"x": 2}')
    assert result["nextState"] == "Yes"
    assert error_of(api, "TestState", definition="[]") == "InvalidDefinition"
    assert error_of(api, "TestState", definition='{"Type": "Nope"}') == "InvalidDefinition"


def test_validate_state_machine_definition(api: Api) -> None:
    assert api("ValidateStateMachineDefinition", definition=PASS) == {
        "result": "OK",
        "diagnostics": [],
        "truncated": False,
    }
    bad = json.dumps({"StartAt": "X", "States": {"A": {"Type": "Pass", "Next": "B"}}})
    result = api("ValidateStateMachineDefinition", definition=bad, maxResults=1)
    assert result["result"] == "FAIL" and result["truncated"] is True
    (diagnostic,) = result["diagnostics"]
    assert diagnostic["severity"] == "ERROR" and diagnostic["location"].startswith("/")
    assert diagnostic["code"] and diagnostic["message"]


def test_redrive_is_refused_clearly(api: Api) -> None:
    arn = api.machine()
    execution = api("StartExecution", stateMachineArn=arn)["executionArn"]
    assert error_of(api, "RedriveExecution", executionArn=execution) == "ExecutionNotRedrivable"


def test_a_recreated_state_machine_runs_its_own_version_1(api: Api) -> None:
    arn = api.machine("Again", DOUBLE, publish=True)
    api("DeleteStateMachine", stateMachineArn=arn)
    api.machine("Again", PASS, publish=True)
    execution = api("StartExecution", stateMachineArn=arn + ":1", input='{"n": 2}')
    api.drain()
    assert json.loads(
        api("DescribeExecution", executionArn=execution["executionArn"])["output"]
    ) == {"n": 2}


def test_executions_run_with_their_state_machines_or_versions_role(api: Api) -> None:
    """The role tasks are assumed through (and ``$$.Execution.RoleArn``) is the machine's."""
    role = json.dumps(
        {
            "StartAt": "P",
            "States": {
                "P": {"Type": "Pass", "Parameters": {"r.$": "$$.Execution.RoleArn"}, "End": True}
            },
        }
    )
    arn = api.machine("Roles", role, publish=True)
    other = "arn:aws:iam::111122223333:role/stepflow/Other"
    api("UpdateStateMachine", stateMachineArn=arn, roleArn=other)
    on_head = api("StartExecution", stateMachineArn=arn)["executionArn"]
    on_v1 = api("StartExecution", stateMachineArn=arn + ":1")["executionArn"]
    api.drain()
    outputs = [
        json.loads(api("DescribeExecution", executionArn=e)["output"])["r"]
        for e in (on_head, on_v1)
    ]
    assert outputs == [other, ROLE]
