"""Over ``stepflow local`` with boto3: ``aws-sdk`` tasks and the resource checks of the API.

The stack is the one users run: its task clients call moto, and StepFlow's own
API for ``sfn``. Every API call the tasks make is counted on those clients.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

ROLE = "arn:aws:iam::123456789012:role/stepflow/SdkRole"
SDK = "arn:aws:states:::aws-sdk"


class Calls:
    """Counts the API calls the stack's own task clients make, by operation."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.calls: Counter[str] = Counter()
        self.hooked: set[str] = set()

    def hook(self, *services: str) -> Counter[str]:
        """Count ``services``' calls from now on; the counts so far."""
        for service in services:
            if service not in self.hooked:
                client = self.stack.wiring.task_clients.for_task(service, ROLE)
                client.meta.events.register("before-parameter-build", self._count)
                self.hooked.add(service)
        return Counter(self.calls)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


@pytest.fixture(scope="module")
def calls(stack: LocalStack) -> Calls:
    return Calls(stack)


def machine(*states: tuple[str, dict[str, Any]]) -> str:
    named = dict(states)
    names = list(named)
    for name, following in itertools.pairwise(names):
        named[name]["Next"] = following
    named[names[-1]]["End"] = True
    return json.dumps({"StartAt": names[0], "States": named})


def run(stack: LocalStack, name: str, definition: str, data: Any) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    arn = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=arn["stateMachineArn"], input=json.dumps(data))
    return wait_for(sfn, execution["executionArn"])


def test_validate_returns_the_unsupported_integration_warning(stack: LocalStack) -> None:
    definition = machine(
        ("T", {"Type": "Task", "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync"})
    )
    result = stack.stepfunctions().validate_state_machine_definition(
        definition=definition, severity="WARNING"
    )
    assert result["result"] == "OK"
    (diagnostic,) = result["diagnostics"]
    assert (diagnostic["severity"], diagnostic["code"]) == ("WARNING", "UNSUPPORTED_INTEGRATION")
    assert diagnostic["location"] == "/States/T/Resource"


def test_create_state_machine_refuses_an_unknown_sdk_service(stack: LocalStack) -> None:
    definition = machine(("T", {"Type": "Task", "Resource": f"{SDK}:nosuch:thing"}))
    sfn = stack.stepfunctions()
    with pytest.raises(ClientError) as info:
        sfn.create_state_machine(name="NoSuch", definition=definition, roleArn=ROLE)
    assert info.value.response["Error"]["Code"] == "InvalidDefinition"
    assert f"The resource provided {SDK}:nosuch:thing is not recognized" in str(info.value)
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    assert "NoSuch" not in names


def test_an_s3_workflow_puts_and_gets_an_object_once_each(stack: LocalStack, calls: Calls) -> None:
    stack.client("s3").create_bucket(Bucket="sdk-e2e")
    before = calls.hook("s3")
    definition = machine(
        ("Put", {"Type": "Task", "Resource": f"{SDK}:s3:putObject", "ResultPath": "$.put",
                 "Parameters": {"Bucket": "sdk-e2e", "Key": "k", "Body.$": "$.body"}}),
        ("Get", {"Type": "Task", "Resource": f"{SDK}:s3:getObject",
                 "Parameters": {"Bucket": "sdk-e2e", "Key": "k"}}),
    )  # fmt: skip
    described = run(stack, "S3RoundTrip", definition, {"body": ["List", "Data"]})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["Body"] == '["List","Data"]'
    assert output["ETag"] == '"6b23860357f6e63a0272b7f1143a663a"'  # AWS's, for this body
    assert output["LastModified"].endswith("Z")
    body = stack.client("s3").get_object(Bucket="sdk-e2e", Key="k")["Body"].read()
    assert body == b'["List","Data"]'
    assert calls.calls - before == Counter({"PutObject": 1, "GetObject": 1})
    history = stack.stepfunctions().get_execution_history(executionArn=described["executionArn"])
    scheduled = [
        e["taskScheduledEventDetails"] for e in history["events"] if e["type"] == "TaskScheduled"
    ]
    assert [(d["resourceType"], d["resource"]) for d in scheduled] == [
        ("aws-sdk:s3", "putObject"),
        ("aws-sdk:s3", "getObject"),
    ]


def test_sfn_send_task_failure_with_a_bad_token_is_sfn_invalid_token(
    stack: LocalStack, calls: Calls
) -> None:
    before = calls.hook("stepfunctions")
    definition = machine(
        ("Send", {"Type": "Task", "Resource": f"{SDK}:sfn:sendTaskFailure",
                  "Parameters": {"TaskToken.$": "$$.Execution.Input.TaskToken"}}),
    )  # fmt: skip
    described = run(stack, "BadToken", definition, {"TaskToken": "NoSuchTaskToken"})
    assert described["status"] == "FAILED"
    assert described["error"] == "Sfn.InvalidTokenException"
    assert "(Service: Sfn, Status Code: 400, Request ID: " in described["cause"]
    assert calls.calls - before == Counter({"SendTaskFailure": 1})


def test_wait_for_task_token_records_the_calls_response_as_task_submitted(
    stack: LocalStack, calls: Calls
) -> None:
    stack.client("s3").create_bucket(Bucket="sdk-token")
    before = calls.hook("s3")
    definition = machine(
        ("L", {"Type": "Task", "Resource": f"{SDK}:s3:listBuckets.waitForTaskToken",
               "Parameters": {}}),
    )  # fmt: skip
    sfn = stack.stepfunctions()
    arn = sfn.create_state_machine(name="Token", definition=definition, roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=arn["stateMachineArn"], input="{}")
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
        if any(e["type"] == "TaskSubmitted" for e in events):
            break
        time.sleep(0.05)
    types = [e["type"] for e in events]
    assert types[-3:] == ["TaskScheduled", "TaskStarted", "TaskSubmitted"]
    output = json.loads(events[-1]["taskSubmittedEventDetails"]["output"])
    assert "sdk-token" in [bucket["Name"] for bucket in output["Buckets"]]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "RUNNING"
    sfn.stop_execution(executionArn=execution["executionArn"])
    assert calls.calls - before == Counter({"ListBuckets": 1})
