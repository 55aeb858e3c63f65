"""``stepflow local --mock-config``'s test cases, against a fake API handler (no moto)."""

from __future__ import annotations

import json
from typing import Any

from stepflow.local.mocks import TestCases
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing.mocks import MockConfig

MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:Flow"
EXECUTION = "arn:aws:states:eu-west-1:111122223333:execution:Flow"
CONFIG = MockConfig.load(
    {
        "StateMachines": {"Flow": {"TestCases": {"T": {"Work": "R"}}}},
        "MockedResponses": {"R": {"0": {"Return": "mocked"}}},
    }
)


class FakeApi:
    """Answers starts as told, running the execution's first task meanwhile (as a poller may)."""

    def __init__(self, cases: TestCases) -> None:
        self.status: dict[str, str] = {}
        self.refuse = False
        self.seen: list[TaskOutcome] = []
        self.invoker = cases.invoker(lambda body: TaskOutcome.succeeded("handler"))

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        target = event["headers"]["X-Amz-Target"]
        request = json.loads(event["body"])
        if target.endswith("DescribeStateMachine"):
            definition = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "End": True,
                          "Resource": "arn:aws:states:::sqs:sendMessage"}}}  # fmt: skip
            return {"statusCode": 200, "body": json.dumps({"definition": json.dumps(definition)})}
        arn = f"{EXECUTION}:{request['name']}"
        if self.refuse or arn in self.status:
            return {"statusCode": 400, "body": json.dumps({"__type": "ExecutionAlreadyExists"})}
        self.seen.append(self.invoker({"execution_arn": arn, "state_name": "Work"}))
        self.status[arn] = "RUNNING"
        return {"statusCode": 200, "body": json.dumps({"executionArn": arn})}


def start(serve: Any, arn: str, name: str, sync: bool = False) -> dict[str, Any]:
    target = "AWSStepFunctions.Start" + ("SyncExecution" if sync else "Execution")
    body = json.dumps({"stateMachineArn": arn, "name": name, "input": "{}"})
    return dict(serve({"headers": {"X-Amz-Target": target}, "body": body}, None))


def test_cases_live_as_long_as_their_executions() -> None:
    api: FakeApi
    cases = TestCases(CONFIG, lambda arn: arn, lambda arn: api.status.get(arn))
    api = FakeApi(cases)
    serve = cases.gateway(api)
    assert start(serve, MACHINE + "#T", "a")["statusCode"] == 200
    assert api.seen[-1].output == "mocked"  # its first task ran before the answer: mocked
    assert cases.running() == [f"{EXECUTION}:a"]
    api.refuse = True
    assert start(serve, MACHINE + "#T", "b")["statusCode"] == 400
    assert cases.running() == [f"{EXECUTION}:a"]  # the refused start kept nothing
    api.refuse = False
    start(serve, MACHINE, "b")
    assert api.seen[-1].output == "handler"
    assert start(serve, MACHINE + "#T", "b")["statusCode"] == 400  # exists: changes nothing
    start(serve, MACHINE + "#T", "s", sync=True)
    assert api.seen[-1].output == "mocked" and f"{EXECUTION}:s" not in cases.running()
    api.status[f"{EXECUTION}:a"] = "SUCCEEDED"
    start(serve, MACHINE + "#T", "c")  # drops the ended execution's case and counts
    assert cases.running() == [f"{EXECUTION}:c"]
    counted = cases._mocked[0].calls
    assert counted == {(f"{EXECUTION}:c", "Work"): 1}
