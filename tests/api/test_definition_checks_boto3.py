"""AWS's warnings and InvalidDefinition wording, seen by the real boto3 client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ROLE, Api

NO_DOLLAR = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Parameters": {"id": "$.order.id"}, "End": True}},
}


def test_validate_returns_the_no_dollar_warning(stack: tuple[Any, Api]) -> None:
    sfn, _ = stack
    text = json.dumps(NO_DOLLAR)
    errors_only = sfn.validate_state_machine_definition(definition=text)
    assert errors_only["result"] == "OK" and errors_only["diagnostics"] == []
    answer = sfn.validate_state_machine_definition(definition=text, severity="WARNING")
    assert answer["result"] == "OK" and answer["truncated"] is False
    assert answer["diagnostics"] == [
        {
            "severity": "WARNING",
            "code": "NO_DOLLAR",
            "message": answer["diagnostics"][0]["message"],
            "location": "/States/A/Parameters/id",
        }
    ]
    assert "'id.$'" in answer["diagnostics"][0]["message"]
    # a warning never blocks a deployment
    created = sfn.create_state_machine(name="Warned", definition=text, roleArn=ROLE)
    assert created["stateMachineArn"].endswith(":Warned")


def test_invalid_definition_is_one_line_code_message_location(stack: tuple[Any, Api]) -> None:
    sfn, _ = stack
    broken = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Credentials": {},
                "Parameters": {"a.$": "nope", "b.$": "nope"},
                "End": True,
            }
        },
    }
    with pytest.raises(ClientError) as info:
        sfn.create_state_machine(name="Broken", definition=json.dumps(broken), roleArn=ROLE)
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidDefinition"
    message = error["Message"]
    assert "\n" not in message
    assert message.startswith("Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: ")
    assert message.endswith("'")
    assert message.count("SCHEMA_VALIDATION_FAILED: ") == 3
    for location in (
        "/States/A/Credentials",
        "/States/A/Parameters/a.$",
        "/States/A/Parameters/b.$",
    ):
        assert f" at {location}" in message
