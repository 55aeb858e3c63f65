"""A service task is refused when ANY string or map key of its parameters names an own resource.

``aws-sdk:*`` can call any action, and actions name their resources anywhere:
``RequestItems`` keyed by table name, ``TransactItems``, ``CopySource``,
``SecretId``, a PartiQL statement. The guard scans the whole parameter tree
(bounded: past a bound the task is refused, never passed unchecked) and fails
the task with ``States.Runtime`` before the inner invoker is called (counted).
The shipping path: tests/e2e/test_local_own_targets.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.aws.own_resources import own_resources
from stepflow.aws.settings import Settings
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.targets import (
    MAX_SCAN_DEPTH,
    MAX_SCAN_VALUES,
    OWN_TARGET_CAUSE,
    TOO_LARGE_TO_CHECK_CAUSE,
    OwnResources,
    OwnTargetGuard,
    secret_names,
)
from stepflow.testing import WorkflowEnvironment

ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:StepFlowSigningKey-Ab12Cd"
OWN = OwnResources.of(
    functions=["StepFlow-stepper", "StepFlow-runner"],
    queues=[
        f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/StepFlow-Transitions",
        f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/StepFlow-Tasks",
    ],
    queue_prefixes=["stepflow-tq-", "stepflow-tqdlq-"],
    tables=["StepFlow-Log"],
    buckets=["stepflow-payloads"],
    secrets=[SECRET_ARN],
)
SDK = "arn:aws:states:::aws-sdk:"
QUEUE = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/StepFlow-Transitions"


class Counting:
    """The inner invoker: counts the tasks that got past the guard."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        self.calls += 1
        return TaskOutcome.succeeded({"ran": True})


def guarded(resource: str, parameters: Any) -> tuple[TaskOutcome, int]:
    inner = Counting()
    outcome = OwnTargetGuard(inner, OWN)({"resource": resource, "input": parameters})
    return outcome, inner.calls


ITEM = {"PutRequest": {"Item": {"pk": {"S": "x"}}}}
REFUSED: list[tuple[str, Any, str]] = [
    (f"{SDK}dynamodb:batchWriteItem", {"RequestItems": {"StepFlow-Log": [ITEM]}}, "table"),
    (
        f"{SDK}dynamodb:transactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "Orders", "Item": {"pk": {"S": "o"}}}},
                {"Delete": {"TableName": "StepFlow-Log", "Key": {"pk": {"S": "x"}}}},
            ]
        },
        "table",
    ),
    (
        f"{SDK}dynamodb:executeStatement",
        {"Statement": "DELETE FROM \"StepFlow-Log\" WHERE pk = 'x'"},
        "table",
    ),
    (
        f"{SDK}dynamodb:batchGetItem",
        {"RequestItems": {f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/StepFlow-Log": {}}},
        "table",
    ),
    (
        f"{SDK}sqs:sendMessageBatch",
        {"QueueUrl": QUEUE, "Entries": [{"Id": "1", "MessageBody": "{}"}]},
        "queue",
    ),
    (
        f"{SDK}sqs:sendMessage",
        {"QueueUrl": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/stepflow-tq-payments"},
        "queue",
    ),
    (
        f"{SDK}lambda:updateFunctionCode",
        {"FunctionName": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:StepFlow-runner:live"},
        "function",
    ),
    (f"{SDK}lambda:invoke", {"FunctionName": "StepFlow-stepper", "Payload": "{}"}, "function"),
    (
        f"{SDK}s3:copyObject",
        {"Bucket": "mine", "Key": "k", "CopySource": "stepflow-payloads/payloads/abc"},
        "bucket",
    ),
    (
        f"{SDK}s3:copyObject",
        {"Bucket": "mine", "Key": "k", "CopySource": "/stepflow%2Dpayloads%252Fx"},
        "bucket",
    ),
    (f"{SDK}s3:getObject", {"Bucket": "STEPFLOW-PAYLOADS", "Key": "k"}, "bucket"),
    (f"{SDK}secretsmanager:getSecretValue", {"SecretId": SECRET_ARN}, "secret"),
    (f"{SDK}secretsmanager:getSecretValue", {"SecretId": "StepFlowSigningKey"}, "secret"),
    (
        f"{SDK}secretsmanager:getSecretValue",
        {"SecretId": f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:StepFlowSigningKey"},
        "secret",
    ),
    (f"{SDK}secretsmanager:describeSecret", {"SecretId": "StepFlowSigningKey-Zz99Yy"}, "secret"),
    # Optimised integrations too, in any field: the message of a user queue names the table.
    (
        "arn:aws:states:::sqs:sendMessage",
        {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/orders", "MessageBody": {"t": QUEUE}},
        "queue",
    ),
    (
        "arn:aws:states:::dynamodb:putItem",
        {"TableName": "Orders", "Item": {"StepFlow-Log": 1}},
        "table",
    ),
]


@pytest.mark.parametrize(("resource", "parameters", "kind"), REFUSED)
def test_a_task_naming_an_own_resource_anywhere_is_refused_before_any_call(
    resource: str, parameters: Any, kind: str
) -> None:
    outcome, calls = guarded(resource, parameters)
    assert (outcome.ok, outcome.error) == (False, "States.Runtime")
    assert (outcome.cause or "").startswith(f"{OWN_TARGET_CAUSE}: {kind} ")
    assert calls == 0


@pytest.mark.parametrize(
    ("resource", "parameters"),
    [
        (f"{SDK}dynamodb:batchWriteItem", {"RequestItems": {"StepFlow-Log-archive": [ITEM]}}),
        (f"{SDK}dynamodb:getItem", {"TableName": "my-StepFlow-Log", "Key": {}}),
        (
            f"{SDK}s3:copyObject",
            {"Bucket": "b", "Key": "k", "CopySource": "other/stepflow-payloads2"},
        ),
        (f"{SDK}secretsmanager:getSecretValue", {"SecretId": "StepFlowSigningKey2"}),
        (f"{SDK}secretsmanager:getSecretValue", {"SecretId": "team/StepFlowSigningKey"}),
        (f"{SDK}sqs:sendMessage", {"QueueUrl": "https://sqs/1/orders-tq-x", "MessageBody": "x"}),
        (f"{SDK}s3:listBuckets", None),
        ("arn:aws:states:::sns:publish", {"TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": 7}),
    ],
)
def test_other_names_run_once(resource: str, parameters: Any) -> None:
    outcome, calls = guarded(resource, parameters)
    assert outcome.ok
    assert calls == 1


def test_a_lambda_function_resource_is_not_scanned_its_payload_goes_to_the_users_function() -> None:
    outcome, calls = guarded(
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:work", {"t": "StepFlow-Log"}
    )
    assert outcome.ok and calls == 1


def test_secret_names_of_each_reference_form() -> None:
    assert secret_names(SECRET_ARN) == {"StepFlowSigningKey-Ab12Cd", "StepFlowSigningKey"}
    assert secret_names("team/key") == {"team/key"}
    assert secret_names(" ") == set()
    assert OWN.owns("secret", "StepFlowSigningKey")
    assert not OWN.owns("secret", "Other")


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "parameters",
    [
        {"Entries": ["x"] * MAX_SCAN_VALUES},
        {"Item": _nested(MAX_SCAN_DEPTH + 1)},
        {"Item": [[[[[[[[[[[]]]]]]]]]]] * (MAX_SCAN_VALUES // 10)},
    ],
)
def test_a_tree_too_large_to_scan_is_refused_not_skipped(parameters: Any) -> None:
    outcome, calls = guarded(f"{SDK}dynamodb:putItem", parameters)
    assert (outcome.ok, outcome.error) == (False, "States.Runtime")
    assert (outcome.cause or "").startswith(TOO_LARGE_TO_CHECK_CAUSE)
    assert calls == 0


def test_a_tree_within_the_bounds_runs_and_a_name_deep_inside_is_found() -> None:
    assert guarded(f"{SDK}dynamodb:putItem", {"Item": _nested(MAX_SCAN_DEPTH - 2)})[1] == 1
    deep: Any = {"a": "StepFlow-Log"}
    for _ in range(MAX_SCAN_DEPTH - 3):
        deep = [deep]
    outcome, calls = guarded(f"{SDK}dynamodb:putItem", {"Item": deep})
    assert (outcome.error, calls) == ("States.Runtime", 0)


def test_in_memory_an_sdk_batch_write_to_the_log_fails_the_execution_uncaught() -> None:
    inner = Counting()
    env = WorkflowEnvironment(invoker=OwnTargetGuard(inner, OWN))
    state = {
        "Type": "Task",
        "Resource": f"{SDK}dynamodb:batchWriteItem",
        "Parameters": {"RequestItems": {"StepFlow-Log": [ITEM]}},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
        "End": True,
    }
    arn = env.start({"StartAt": "T", "States": {"T": state, "Caught": {"Type": "Succeed"}}})
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert OWN_TARGET_CAUSE in (result.cause or "")
    assert inner.calls == 0


def test_a_deployments_own_resources_include_the_signing_secret_and_the_activity_dlq() -> None:
    settings = Settings(
        table_name="StepFlow-Log",
        queue_url=QUEUE,
        payload_bucket="stepflow-payloads",
        signing_secret_arn=SECRET_ARN,
        activity_dlq_arn=f"arn:aws:sqs:us-east-1:{ACCOUNT}:StepFlow-ActivityDlq",
        own_functions="StepFlow-stepper",
    )
    own = own_resources(settings)
    assert own.named_in_tree({"SecretId": "StepFlowSigningKey"}) == ("secret", "StepFlowSigningKey")
    assert own.named_in_tree({"QueueUrl": f"https://x/{ACCOUNT}/StepFlow-ActivityDlq"}) == (
        "queue",
        "StepFlow-ActivityDlq",
    )
    assert own.named_in_tree({"RequestItems": {"StepFlow-Log": []}}) == ("table", "StepFlow-Log")
    assert own.named_in_tree({"Payload": "StepFlow-stepper2"}) is None
