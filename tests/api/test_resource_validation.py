"""The API's definition checks of Task resources: what AWS refuses, and what StepFlow cannot run."""

from __future__ import annotations

import json

import pytest
from stepflow.api.errors import ApiError

from tests.api.conftest import PASS, ROLE, Api

SDK = "arn:aws:states:::aws-sdk"


def definition(resource: str) -> str:
    states = {"T": {"Type": "Task", "Resource": resource, "End": True}}
    return json.dumps({"StartAt": "T", "States": states})


UNSUPPORTED = definition("arn:aws:states:::sagemaker:createTrainingJob.sync")
UNKNOWN = definition(f"{SDK}:nosuch:thing")


def test_validate_returns_the_unsupported_integration_warning(api: Api) -> None:
    result = api("ValidateStateMachineDefinition", definition=UNSUPPORTED, severity="WARNING")
    assert result["result"] == "OK"
    (diagnostic,) = result["diagnostics"]
    assert diagnostic["severity"] == "WARNING"
    assert diagnostic["code"] == "UNSUPPORTED_INTEGRATION"
    assert diagnostic["location"] == "/States/T/Resource"
    assert "sagemaker:createTrainingJob.sync" in diagnostic["message"]
    # The default severity (ERROR) lists errors only, as on AWS.
    assert api("ValidateStateMachineDefinition", definition=UNSUPPORTED)["diagnostics"] == []


def test_validate_fails_an_unknown_sdk_service(api: Api) -> None:
    result = api("ValidateStateMachineDefinition", definition=UNKNOWN)
    assert result["result"] == "FAIL"
    (diagnostic,) = result["diagnostics"]
    assert diagnostic["code"] == "SCHEMA_VALIDATION_FAILED"
    assert diagnostic["message"].startswith(
        f"The resource provided {SDK}:nosuch:thing is not recognized."
    )


@pytest.mark.parametrize("resource", [f"{SDK}:nosuch:thing", "arn:aws:states:::dynamodb:query"])
def test_create_and_update_refuse_a_resource_aws_refuses(api: Api, resource: str) -> None:
    with pytest.raises(ApiError) as info:
        api("CreateStateMachine", name="M", definition=definition(resource), roleArn=ROLE)
    assert info.value.code == "InvalidDefinition"
    assert "is not recognized" in info.value.message and resource in info.value.message
    arn = api.machine("Ok", PASS)
    with pytest.raises(ApiError) as info:
        api("UpdateStateMachine", stateMachineArn=arn, definition=definition(resource))
    assert info.value.code == "InvalidDefinition"
    assert api("DescribeStateMachine", stateMachineArn=arn)["definition"] == PASS


def test_create_accepts_a_resource_stepflow_cannot_run(api: Api) -> None:
    arn = api.machine("Later", UNSUPPORTED)
    assert api("DescribeStateMachine", stateMachineArn=arn)["definition"] == UNSUPPORTED
    assert api.machine("Sdk", definition(f"{SDK}:s3:getObject"))
