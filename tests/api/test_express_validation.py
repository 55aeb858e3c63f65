"""EXPRESS workflows refuse `.sync`, `.waitForTaskToken` and activities at creation, as AWS does.

AWS's texts (localstack's recorded snapshots of AWS, test_sfn_api_express):
``Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machine does not
support '.waitForTaskToken' service integration  at /States/Publish/Resource'`` (two spaces),
``... '.sync' service integration at ...`` and ``... Activity ARN at ...``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.api.errors import ApiError

from tests.api.conftest import PASS, ROLE, Api, boto3_stack

CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
SYNC = "arn:aws:states:::states:startExecution.sync"
ACTIVITY = "arn:aws:states:eu-west-1:111122223333:activity:work"
REFUSALS = {
    CALLBACK: "Express state machine does not support '.waitForTaskToken' service integration  at",
    SYNC: "Express state machine does not support '.sync' service integration at",
    ACTIVITY: "Express state machine does not support Activity ARN at",
}


def task_machine(resource: str, name: str = "Publish") -> str:
    return json.dumps(
        {"StartAt": name, "States": {name: {"Type": "Task", "Resource": resource, "End": True}}}
    )


def distributed(resource: str, execution_type: str) -> str:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
        "StartAt": "T",
        "States": {"T": {"Type": "Task", "Resource": resource, "End": True}},
    }
    states = {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}
    return json.dumps({"StartAt": "M", "States": states})


@pytest.mark.parametrize("resource", list(REFUSALS))
def test_an_express_machine_refuses_what_aws_refuses(api: Api, resource: str) -> None:
    with pytest.raises(ApiError) as info:
        api(
            "CreateStateMachine",
            name="E",
            definition=task_machine(resource),
            roleArn=ROLE,
            type="EXPRESS",
        )
    assert info.value.code == "InvalidDefinition"
    assert info.value.message == (
        "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: "
        f"{REFUSALS[resource]} /States/Publish/Resource'"
    )
    # The same definition is a STANDARD machine's right.
    api("CreateStateMachine", name="S", definition=task_machine(resource), roleArn=ROLE)


def test_an_express_distributed_map_refuses_them_in_its_processor_only(api: Api) -> None:
    with pytest.raises(ApiError) as info:
        api("CreateStateMachine", name="D", definition=distributed(SYNC, "EXPRESS"), roleArn=ROLE)
    assert f"{REFUSALS[SYNC]} /States/M/ItemProcessor/States/T/Resource'" in info.value.message
    api("CreateStateMachine", name="D", definition=distributed(SYNC, "STANDARD"), roleArn=ROLE)


def test_update_and_validate_apply_the_express_rules(api: Api) -> None:
    arn = api("CreateStateMachine", name="E", definition=PASS, roleArn=ROLE, type="EXPRESS")[
        "stateMachineArn"
    ]
    with pytest.raises(ApiError) as info:
        api("UpdateStateMachine", stateMachineArn=arn, definition=task_machine(CALLBACK))
    assert info.value.code == "InvalidDefinition"
    assert api("DescribeStateMachine", stateMachineArn=arn)["definition"] == PASS
    found = api("ValidateStateMachineDefinition", definition=task_machine(ACTIVITY), type="EXPRESS")
    assert found["result"] == "FAIL"
    assert found["diagnostics"] == [
        {
            "severity": "ERROR",
            "code": "SCHEMA_VALIDATION_FAILED",
            "message": "Express state machine does not support Activity ARN",
            "location": "/States/Publish/Resource",
        }
    ]
    assert (
        api("ValidateStateMachineDefinition", definition=task_machine(ACTIVITY))["result"] == "OK"
    )


@pytest.fixture(scope="module")
def sfn() -> Iterator[Any]:
    with boto3_stack() as (client, _):
        yield client


def test_boto3_sees_aws_error_for_an_express_callback(sfn: Any) -> None:
    with pytest.raises(ClientError) as info:
        sfn.create_state_machine(
            name="E", definition=task_machine(CALLBACK), roleArn=ROLE, type="EXPRESS"
        )
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    assert error["Message"] == (
        "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machine does "
        "not support '.waitForTaskToken' service integration  at /States/Publish/Resource'"
    )
