"""``aws-sdk:<service>:<action>`` on moto in process, through the one task invoker.

Each workflow runs in a :class:`WorkflowEnvironment` whose invoker is the
:class:`IntegrationInvoker` over the default registry, with boto3 clients on
moto; every API call is counted (botocore's ``before-parameter-build`` event), so a test
tells one call from two.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from stepflow.integrations import IntegrationInvoker, aws_sdk, default_registry
from stepflow.limits import DEFAULT_LIMITS
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment
from stepflow.testing.result import ExecutionResult

from tests.moto_env import REGION, offline_aws

SDK = "arn:aws:states:::aws-sdk"


class CountingClients(FixedClients):
    """boto3 clients on moto, built on demand, counting each API call by operation."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.services: list[str] = []

    def for_task(
        self,
        service: str,
        role_arn: str,
        region: str | None = None,
        *,
        execution: str = "",
        via: str = "",
    ) -> Any:
        """The moto client of ``service`` (one per service), its calls counted."""
        self.services.append(service)
        if service not in self.clients:
            client = boto3.client(service, region_name=region or REGION)
            client.meta.events.register("before-parameter-build", self._count)
            self.clients[service] = client
        return self.clients[service]

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingClients]:
    with offline_aws(monkeypatch):
        yield CountingClients()


def run(
    clients: CountingClients, states: dict[str, Any], data: Any = None, **env: Any
) -> ExecutionResult:
    """Run a machine of ``states`` (first state first) on the integration invoker."""
    environment = WorkflowEnvironment(
        invoker=IntegrationInvoker(default_registry(), clients), **env
    )
    arn = environment.start({"StartAt": next(iter(states)), "States": states}, data)
    environment.run(arn)
    return environment.result(arn)


def task(action: str, parameters: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"{SDK}:{action}",
        "Parameters": parameters,
        "End": True,
        **fields,
    }


def test_s3_put_object_then_get_object_returns_the_body_as_text(clients: CountingClients) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt")
    put = task("s3:putObject", {"Bucket": "bkt", "Key": "k", "Body.$": "$.body"})
    put.pop("End")
    states = {
        "Put": {**put, "ResultPath": "$.put", "Next": "Get"},
        "Get": task("s3:getObject", {"Bucket": "bkt", "Key": "k"}),
    }
    result = run(clients, states, {"body": {"Dict": "Value"}})
    assert result.status == "SUCCEEDED", result.cause
    out = result.result
    # A JSON value is stored as its compact text, as on AWS (ETag of '{"Dict":"Value"}').
    assert out["Body"] == '{"Dict":"Value"}'
    assert out["ETag"] == '"49e31cee5aec8faf3345893addb14346"'
    assert out["ContentLength"] == 16
    assert out["LastModified"].endswith("Z") and "T" in out["LastModified"]
    assert "ResponseMetadata" not in out
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b'{"Dict":"Value"}'
    assert clients.calls == Counter({"PutObject": 1, "GetObject": 1})


def test_s3_list_buckets_has_timestamps_as_instants(clients: CountingClients) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="one")
    result = run(clients, {"L": task("s3:listBuckets", {})})
    assert result.status == "SUCCEEDED", result.cause
    (bucket,) = result.result["Buckets"]
    assert bucket["Name"] == "one"
    assert isinstance(bucket["CreationDate"], str) and bucket["CreationDate"].endswith("Z")
    assert clients.calls == Counter({"ListBuckets": 1})


def test_binary_body_comes_back_as_its_text(clients: CountingClients) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="bin", Body=b"binary data")
    s3.put_object(Bucket="bkt", Key="raw", Body=bytes([0xFF, 0x00, 0x41]))
    s3.put_object(Bucket="bkt", Key="empty", Body=b"")
    for key, text in (("bin", "binary data"), ("raw", "\ufffd\x00A"), ("empty", "")):
        result = run(clients, {"G": task("s3:getObject", {"Bucket": "bkt", "Key": key})})
        assert result.status == "SUCCEEDED", result.cause
        assert result.result["Body"] == text
    assert clients.calls == Counter({"GetObject": 3})


def test_s3_no_such_key_is_named_as_step_functions_names_it(clients: CountingClients) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="bkt")
    get = task("s3:getObject", {"Bucket": "bkt", "Key": "missing"})
    get["Catch"] = [{"ErrorEquals": ["S3.NoSuchKeyException"], "Next": "Caught"}]
    states = {"G": get, "Caught": {"Type": "Pass", "End": True}}
    result = run(clients, states)
    assert result.status == "SUCCEEDED"
    assert result.result["Error"] == "S3.NoSuchKeyException"
    assert "(Service: S3, Status Code: 404, Request ID: " in result.result["Cause"]
    assert clients.calls == Counter({"GetObject": 1})


def test_dynamodb_put_item_then_get_item(clients: CountingClients) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"id": {"S": "id1"}, "data": {"S": "HelloWorld"}}
    put = task("dynamodb:putItem", {"TableName": "t", "Item.$": "$.Item"})
    put.pop("End")
    states = {
        "Put": {**put, "ResultPath": "$.putItemOutput", "Next": "Get"},
        "Get": task("dynamodb:getItem", {"TableName": "t", "Key": {"id": {"S": "id1"}}}),
    }
    result = run(clients, states, {"Item": item})
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"Item": item}
    assert clients.calls == Counter({"PutItem": 1, "GetItem": 1})
    assert ddb.scan(TableName="t")["Count"] == 1


def test_dynamodb_null_item_fails_as_aws_reports_it(clients: CountingClients) -> None:
    put = task("dynamodb:putItem", {"TableName": "t", "Item.$": "$.Item"})
    result = run(clients, {"P": put}, {"Item": None})
    assert result.status == "FAILED"
    assert result.error == "DynamoDb.DynamoDbException"
    assert result.cause is not None and result.cause.startswith(
        "1 validation error detected: Value null at 'item' failed to satisfy constraint: "
        "Member must not be null (Service: DynamoDb, Status Code: 400, Request ID: "
    )
    assert clients.calls == Counter({"PutItem": 1})  # one attempt, refused by validation


def test_dynamodb_missing_table_is_a_modeled_error(clients: CountingClients) -> None:
    get = task("dynamodb:getItem", {"TableName": "nope", "Key": {"id": {"S": "1"}}})
    result = run(clients, {"G": get})
    assert result.status == "FAILED"
    assert result.error == "DynamoDb.ResourceNotFoundException"
    assert clients.calls == Counter({"GetItem": 1})


def test_secretsmanager_list_secrets(clients: CountingClients) -> None:
    result = run(clients, {"S": task("secretsmanager:listSecrets", {})})
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"SecretList": []}
    assert clients.services == ["secretsmanager"]
    assert clients.calls == Counter({"ListSecrets": 1})


def test_sfn_send_task_failure_with_a_bad_token(clients: CountingClients) -> None:
    # moto's Step Functions accepts any token; AWS's answer is stubbed (StepFlow's own
    # API answers for real in tests/e2e/test_local_aws_sdk.py).
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.meta.events.register("before-parameter-build", clients._count)
    stubber = Stubber(sfn)
    stubber.add_client_error(
        "send_task_failure",
        service_error_code="InvalidToken",
        service_message="Invalid Token: 'Invalid token'",
        http_status_code=400,
        expected_params={"taskToken": "NoSuchTaskToken"},
    )
    stubber.activate()
    clients.clients["stepfunctions"] = sfn
    send = task("sfn:sendTaskFailure", {"TaskToken.$": "$.TaskToken"})
    result = run(clients, {"Send": send}, {"TaskToken": "NoSuchTaskToken"})
    assert result.status == "FAILED"
    assert result.error == "Sfn.InvalidTokenException"
    assert result.cause is not None
    assert result.cause.startswith("Invalid Token: 'Invalid token' (Service: Sfn, ")
    assert "(Service: Sfn, Status Code: 400, Request ID: " in result.cause
    assert result.cause.endswith(") (SDK Attempt Count: 1)")
    assert clients.services == ["stepfunctions"]  # Step Functions' "sfn" is boto3's name
    assert clients.calls == Counter({"SendTaskFailure": 1})
    stubber.assert_no_pending_responses()


def test_an_unknown_service_or_action_fails_at_run_time_naming_the_resource(
    clients: CountingClients,
) -> None:
    for resource in (f"{SDK}:nosuch:thing", f"{SDK}:s3:noSuchAction", f"{SDK}:s3:GetObject"):
        states = {"T": {"Type": "Task", "Resource": resource, "End": True}}
        result = run(clients, states)
        assert result.status == "FAILED"
        assert result.error == "States.Runtime"
        assert result.cause is not None and resource in result.cause
    assert clients.calls == Counter()
    assert clients.services == []


def test_a_parameter_of_the_wrong_type_is_the_services_validation_error(
    clients: CountingClients,
) -> None:
    listing = task("s3:listObjectsV2", {"Bucket": "bkt", "MaxKeys": "many"})
    result = run(clients, {"L": listing})
    assert result.status == "FAILED"
    assert result.error == "S3.S3Exception"
    assert result.cause is not None and "MaxKeys" in result.cause
    assert "(Service: S3, Status Code: 400" in result.cause
    unknown = task("s3:listBuckets", {"NoSuchMember": 1})
    result = run(clients, {"L": unknown})
    assert result.error == "S3.S3Exception"
    assert result.cause is not None and "NoSuchMember" in result.cause
    assert clients.calls == Counter({"ListObjectsV2": 1, "ListBuckets": 1})  # no retry


def test_a_response_over_the_payload_limit_is_data_limit_exceeded(
    clients: CountingClients,
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="big", Body=b"x" * (DEFAULT_LIMITS.max_payload_bytes + 1))
    result = run(clients, {"G": task("s3:getObject", {"Bucket": "bkt", "Key": "big"})})
    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"
    assert clients.calls == Counter({"GetObject": 1})


def test_wait_for_task_token_sends_once_and_waits(clients: CountingClients) -> None:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="bkt")
    states = {"L": {"Type": "Task", "Resource": f"{SDK}:s3:listBuckets.waitForTaskToken",
                    "Parameters": {}, "End": True}}  # fmt: skip
    environment = WorkflowEnvironment(invoker=IntegrationInvoker(default_registry(), clients))
    arn = environment.start({"StartAt": "L", "States": states}, {})
    environment.run(arn)
    assert environment.result(arn).status == "RUNNING"
    types = [event["type"] for event in environment.history(arn)]
    assert types[-3:] == ["TaskScheduled", "TaskStarted", "TaskSubmitted"]
    (open_task,) = environment.open_tasks(arn)
    environment.complete(open_task.token, {"done": True})
    environment.run(arn)
    assert environment.result(arn).result == {"done": True}
    assert clients.calls == Counter({"ListBuckets": 1})


def test_the_send_of_a_wait_for_task_token_task_is_its_outcome(clients: CountingClients) -> None:
    """The invoker's outcome is the send's response (TaskSubmitted's output on the runtime)."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="bkt")
    invoker = IntegrationInvoker(default_registry(), clients)
    body = {
        "resource": f"{SDK}:s3:listBuckets.waitForTaskToken",
        "input": {},
        "task_token": "token",
        "role_arn": "arn:aws:iam::123456789012:role/R",
    }
    outcome = invoker(body)
    assert outcome.ok
    assert [bucket["Name"] for bucket in outcome.output["Buckets"]] == ["bkt"]
    assert json.loads(json.dumps(outcome.output)) == outcome.output  # plain JSON
    assert clients.calls == Counter({"ListBuckets": 1})


def test_a_body_past_the_memory_bound_is_not_read(
    clients: CountingClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_sdk, "MAX_BODY_BYTES", 1000)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="big", Body=b"y" * 1001)
    s3.put_object(Bucket="bkt", Key="fits", Body=b"y" * 1000)
    result = run(clients, {"G": task("s3:getObject", {"Bucket": "bkt", "Key": "big"})})
    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"
    assert result.cause is not None and "1000 bytes" in result.cause
    result = run(clients, {"G": task("s3:getObject", {"Bucket": "bkt", "Key": "fits"})})
    assert result.status == "SUCCEEDED"
    assert clients.calls == Counter({"GetObject": 2})


def test_parameters_that_are_not_an_object_fail_as_the_services_validation_error(
    clients: CountingClients,
) -> None:
    states = {"L": {"Type": "Task", "Resource": f"{SDK}:s3:listBuckets",
                    "InputPath": "$.list", "End": True}}  # fmt: skip
    result = run(clients, states, {"list": [1, 2]})
    assert result.status == "FAILED"
    assert result.error == "S3.S3Exception"
    assert clients.calls == Counter()


def test_a_camel_case_api_is_spoken_in_pascal_case_both_ways(clients: CountingClients) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    role = "arn:aws:iam::123456789012:role/R"
    arn = sfn.create_state_machine(name="m", definition=definition, roleArn=role)
    describe = task("sfn:describeStateMachine", {"StateMachineArn": arn["stateMachineArn"]})
    result = run(clients, {"D": describe})
    assert result.status == "SUCCEEDED", result.cause
    out = result.result
    assert out["StateMachineArn"] == arn["stateMachineArn"]
    assert out["Name"] == "m" and out["RoleArn"] == role
    assert out["CreationDate"].endswith("Z")
    assert not any(key[:1].islower() for key in out)
    assert clients.calls == Counter({"DescribeStateMachine": 1})
