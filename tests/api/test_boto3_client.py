"""The real boto3 Step Functions client against the API Lambda over HTTP.

The service keeps its log and registry in DynamoDB on moto; the test drives
the stepper (the transition queue is an in-memory bus on a virtual clock), so
executions run to their end. Every error path must reach boto3 as a
``ClientError`` with the code AWS uses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import DOUBLE, PASS, ROLE, Api


def code_of(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**params)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(info.value.response["Error"]["Code"])


def test_lifecycle_through_boto3(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    arn = sfn.create_state_machine(name="Doubler", definition=DOUBLE, roleArn=ROLE)[
        "stateMachineArn"
    ]
    assert arn == "arn:aws:states:eu-west-1:111122223333:stateMachine:Doubler"
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert described["definition"] == DOUBLE
    assert described["creationDate"].year >= 2023  # parsed from an epoch number
    started = sfn.start_execution(stateMachineArn=arn, name="run-1", input='{"n": 4}')
    api.drain()
    done = sfn.describe_execution(executionArn=started["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"n": 8}
    assert done["stopDate"] > done["startDate"]
    events = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
    for_execution = sfn.describe_state_machine_for_execution(executionArn=started["executionArn"])
    assert for_execution["definition"] == DOUBLE


def test_paging_through_boto3(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    for i in range(5):
        sfn.create_state_machine(name=f"Paged{i}", definition=PASS, roleArn=ROLE)
    names = [
        machine["name"]
        for page in sfn.get_paginator("list_state_machines").paginate(
            PaginationConfig={"PageSize": 2}
        )
        for machine in page["stateMachines"]
    ]
    assert [n for n in names if n.startswith("Paged")] == [f"Paged{i}" for i in range(5)]

    arn = sfn.create_state_machine(name="Many", definition=DOUBLE, roleArn=ROLE)["stateMachineArn"]
    for i in range(5):
        sfn.start_execution(stateMachineArn=arn, name=f"x{i}", input='{"n": 1}')
        api.bus.now += 1
    api.drain()
    sfn.start_execution(stateMachineArn=arn, name="x5", input='{"n": 1}')
    pages = list(
        sfn.get_paginator("list_executions").paginate(
            stateMachineArn=arn, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["executions"]) for p in pages] == [2, 2, 2]
    assert [e["name"] for p in pages for e in p["executions"]] == [
        f"x{i}" for i in range(5, -1, -1)
    ]
    succeeded = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED", maxResults=3)
    assert [e["name"] for e in succeeded["executions"]] == ["x4", "x3", "x2"]
    rest = sfn.list_executions(
        stateMachineArn=arn,
        statusFilter="SUCCEEDED",
        maxResults=3,
        nextToken=succeeded["nextToken"],
    )
    assert [e["name"] for e in rest["executions"]] == ["x1", "x0"]

    execution = pages[-1]["executions"][-1]["executionArn"]  # x0, finished
    forward = [
        e["id"]
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution, PaginationConfig={"PageSize": 2}
        )
        for e in page["events"]
    ]
    backward = [
        e["id"]
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution, reverseOrder=True, PaginationConfig={"PageSize": 3}
        )
        for e in page["events"]
    ]
    assert forward == list(range(1, len(forward) + 1)) and backward == forward[::-1]


def test_every_error_reaches_boto3_with_its_code(stack: tuple[Any, Api]) -> None:
    sfn, _ = stack
    arn = sfn.create_state_machine(name="Errors", definition=DOUBLE, roleArn=ROLE)[
        "stateMachineArn"
    ]
    missing_sm = arn.replace("Errors", "Missing")
    missing_ex = "arn:aws:states:eu-west-1:111122223333:execution:Errors:nope"
    sfn.start_execution(stateMachineArn=arn, name="once", input="{}")
    cases = [
        (
            sfn.create_state_machine,
            {"name": "Errors", "definition": PASS, "roleArn": ROLE},
            "StateMachineAlreadyExists",
        ),
        (
            sfn.create_state_machine,
            {"name": "bad name", "definition": PASS, "roleArn": ROLE},
            "InvalidName",
        ),
        (
            sfn.create_state_machine,
            {"name": "Bad", "definition": "{", "roleArn": ROLE},
            "InvalidDefinition",
        ),
        (sfn.describe_state_machine, {"stateMachineArn": "nope"}, "InvalidArn"),
        (sfn.describe_state_machine, {"stateMachineArn": missing_sm}, "StateMachineDoesNotExist"),
        (sfn.start_execution, {"stateMachineArn": arn, "input": "[1,"}, "InvalidExecutionInput"),
        (
            sfn.start_execution,
            {"stateMachineArn": arn, "name": "once", "input": "[]"},
            "ExecutionAlreadyExists",
        ),
        (sfn.describe_execution, {"executionArn": missing_ex}, "ExecutionDoesNotExist"),
        (sfn.list_executions, {"stateMachineArn": arn, "nextToken": "zzz"}, "InvalidToken"),
        (
            sfn.list_executions,
            {"stateMachineArn": arn, "statusFilter": "NOPE"},
            "ValidationException",
        ),
        (
            sfn.describe_state_machine_alias,
            {"stateMachineAliasArn": arn + ":nope"},
            "ResourceNotFound",
        ),
        (sfn.start_sync_execution, {"stateMachineArn": arn}, "StateMachineTypeNotSupported"),
        (sfn.redrive_execution, {"executionArn": missing_ex}, "ExecutionDoesNotExist"),
    ]
    for call, params, code in cases:
        assert code_of(call, **params) == code, (call, params)


def test_malformed_requests_are_400s(stack: tuple[Any, Api]) -> None:
    sfn, _ = stack
    url = sfn.meta.endpoint_url
    import urllib.error
    import urllib.request

    def post(body: bytes, target: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        if target:
            headers["x-AMZ-target"] = target  # header names are case-insensitive
        request = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    checks = [
        (b"{nope", "AWSStepFunctions.ListStateMachines", "SerializationException"),
        (b"[1]", "AWSStepFunctions.ListStateMachines", "SerializationException"),
        (b"{}", "AWSStepFunctions.CreateStateMachine", "ValidationException"),
        (b'{"maxResults": "ten"}', "AWSStepFunctions.ListStateMachines", "ValidationException"),
        (b'{"bogus": 1}', "AWSStepFunctions.ListStateMachines", "ValidationException"),
        (b"{}", "AWSStepFunctions.SendTaskSuccess", "UnknownOperationException"),
        (b"{}", "Other.ListStateMachines", "UnknownOperationException"),
        (b"{}", None, "UnknownOperationException"),
        (b"\xff\xfe", "AWSStepFunctions.ListStateMachines", "SerializationException"),
    ]
    for body, target, code in checks:
        status, document = post(body, target)
        assert (status, document["__type"]) == (400, code), (body, target)
        assert document["message"]
    status, document = post(b"{}", "AWSStepFunctions.ListStateMachines")
    assert status == 200 and "stateMachines" in document
