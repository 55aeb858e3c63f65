"""Map limit and Wait edge cases through boto3, the API Lambda and the stepper over moto.

The decide-level cases are in tests/unit/test_map_wait_edges.py; this proves
the same answers reach a boto3 caller: literals refused at CreateStateMachine,
paths failing the execution with AWS's error and cause.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ROLE, Api

BODY = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def _run(stack: tuple[Any, Api], name: str, definition: dict[str, Any], data: Any) -> Any:
    sfn, api = stack
    arn = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(data))
    api.drain()
    return sfn.describe_execution(executionArn=started["executionArn"])


def _map_from_variable(field: str, value: Any) -> dict[str, Any]:
    return {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Assign": {"limit": value}, "Next": "M"},
            "M": {"Type": "Map", f"{field}Path": "$limit", "ItemProcessor": BODY, "End": True},
        },
    }


def test_string_limits_from_variables_run(stack: tuple[Any, Api]) -> None:
    for i, field in enumerate(["MaxConcurrency", "ToleratedFailureCount"]):
        done = _run(stack, f"Str{i}", _map_from_variable(field, "2"), [1, 2, 3])
        assert (done["status"], json.loads(done["output"])) == ("SUCCEEDED", [1, 2, 3])


@pytest.mark.parametrize(
    ("name", "field", "value", "cause"),
    [
        ("Pct", "ToleratedFailurePercentage", 100.1, "must be between 0 and 100."),
        ("Cnt", "ToleratedFailureCount", -1, "ToleratedFailureCount cannot be negative."),
        ("Mc", "MaxConcurrency", "-1", "got '-1' instead."),
    ],
)
def test_out_of_range_paths_fail_the_execution(
    stack: tuple[Any, Api], name: str, field: str, value: Any, cause: str
) -> None:
    done = _run(stack, name, _map_from_variable(field, value), [1])
    assert (done["status"], done["error"]) == ("FAILED", "States.Runtime")
    assert done["cause"].startswith("An error occurred while executing the state 'M'")
    assert done["cause"].endswith(cause)


def test_a_negative_seconds_path_fails_the_execution(stack: tuple[Any, Api]) -> None:
    wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}}
    done = _run(stack, "Neg", wait, {"s": -1})
    assert (done["status"], done["error"]) == ("FAILED", "States.Runtime")
    assert done["cause"].endswith(
        "The SecondsPath parameter references a negative value: $.s == -1"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("ToleratedFailurePercentage", 101), ("ToleratedFailureCount", -1), ("MaxConcurrency", -1)],
)
def test_out_of_range_literals_are_invalid_definitions(
    stack: tuple[Any, Api], field: str, value: Any
) -> None:
    sfn, _ = stack
    definition = {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", field: value, "ItemProcessor": BODY, "End": True}},
    }
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="Lit", definition=json.dumps(definition), roleArn=ROLE)
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    assert field in refused.value.response["Error"]["Message"]
