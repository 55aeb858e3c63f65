"""Poison data through the shipped path: boto3 against ``stepflow local``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import stepflow
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def test_string_to_json_surrogate_fails_the_execution_others_unaffected(stack: LocalStack) -> None:
    sfn = stepflow.client(
        stack.url, region="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    # GIVEN a machine that waits, then parses its input with States.StringToJson
    definition = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {
                "Type": "Pass",
                "Parameters": {"v.$": "States.StringToJson($.s)"},
                "End": True,
            },
        },
    }
    arn = sfn.create_state_machine(name="poison", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    # WHEN one execution's ASCII input parses into a lone surrogate, another's does not
    bad = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"s": '"\\ud800"'}))
    good = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"s": '"fine"'}))
    # THEN DescribeExecution shows the first FAILED with States.Runtime, the second SUCCEEDED
    failed = wait_for(sfn, bad["executionArn"])
    assert (failed["status"], failed["error"]) == ("FAILED", "States.Runtime"), failed
    assert "lone surrogate" in failed["cause"]
    succeeded = wait_for(sfn, good["executionArn"])
    assert succeeded["status"] == "SUCCEEDED"
    assert json.loads(succeeded["output"]) == {"v": "fine"}
    # AND the failed one's history ends with a single ExecutionFailed
    events = sfn.get_execution_history(executionArn=bad["executionArn"])["events"]
    assert [e["type"] for e in events].count("ExecutionFailed") == 1
    assert events[-1]["type"] == "ExecutionFailed"
