"""bedrock, athena, glue, batch and ecs (request-response) against moto, through the runtime.

Each call is counted with a botocore event hook on the client: exactly one API
call per task attempt.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations import IntegrationInvoker, Registry, default_registry
from stepflow.integrations.athena import ATHENA
from stepflow.integrations.aws_sdk_shapes import to_output as from_api
from stepflow.integrations.aws_sdk_shapes import to_request as to_api
from stepflow.integrations.batch import BATCH
from stepflow.integrations.bedrock import BEDROCK
from stepflow.integrations.ecs import ECS
from stepflow.integrations.glue import GLUE
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment

from tests.moto_env import REGION, offline_aws

CLIENTS = ("athena", "glue", "batch", "ecs", "bedrock-runtime", "s3", "iam", "ec2")


class Counted:
    """Clients whose API calls are counted by operation name."""

    def __init__(self) -> None:
        self.clients = {name: boto3.client(name, region_name=REGION) for name in CLIENTS}
        self.calls: list[str] = []
        for client in self.clients.values():
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    with offline_aws(monkeypatch):
        yield Counted()


def run(aws: Counted, resource: str, parameters: Any, **task: Any) -> Any:
    registry = Registry()
    for integration in (ATHENA, GLUE, BATCH, ECS, BEDROCK):
        registry.register(integration)
    env = WorkflowEnvironment(invoker=IntegrationInvoker(registry, FixedClients(**aws.clients)))
    state = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **task}
    arn = env.start({"StartAt": "Call", "States": {"Call": state}}, {})
    env.run(arn)
    return env.result(arn)


def test_athena_query_lifecycle(aws: Counted) -> None:
    started = run(
        aws,
        "arn:aws:states:::athena:startQueryExecution",
        {
            "QueryString": "SELECT 1",
            "WorkGroup": "primary",
            "ResultConfiguration": {"OutputLocation": "s3://results/"},
        },
    )
    assert started.status == "SUCCEEDED", started.cause
    query_id = started.result["QueryExecutionId"]
    assert set(started.result) == {"QueryExecutionId"}  # no ResponseMetadata
    assert aws.calls == ["StartQueryExecution"]
    got = run(
        aws, "arn:aws:states:::athena:getQueryExecution", {"QueryExecutionId": query_id}
    ).result
    execution = got["QueryExecution"]
    assert execution["QueryExecutionId"] == query_id
    assert isinstance(execution["Status"]["SubmissionDateTime"], int)  # epoch milliseconds
    results = run(aws, "arn:aws:states:::athena:getQueryResults", {"QueryExecutionId": query_id})
    assert "ResultSet" in results.result
    stopped = run(aws, "arn:aws:states:::athena:stopQueryExecution", {"QueryExecutionId": query_id})
    assert stopped.status == "SUCCEEDED" and stopped.result == {}
    assert aws.calls.count("StartQueryExecution") == 1


def test_glue_start_job_run_and_its_error_name(aws: Counted) -> None:
    aws.clients["glue"].create_job(
        Name="etl", Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl"}
    )
    ok = run(aws, "arn:aws:states:::glue:startJobRun", {"JobName": "etl"})
    assert ok.status == "SUCCEEDED", ok.cause
    assert set(ok.result) == {"JobRunId"}
    missing = run(aws, "arn:aws:states:::glue:startJobRun", {"JobName": "nope"})
    assert missing.error == "Glue.EntityNotFoundException"
    assert "Service: AWSGlue" in missing.cause
    assert aws.calls == ["CreateJob", "StartJobRun", "StartJobRun"]


def _batch_queue(aws: Counted) -> None:
    iam, ec2, batch = aws.clients["iam"], aws.clients["ec2"], aws.clients["batch"]
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    env = batch.create_compute_environment(
        computeEnvironmentName="ce1",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role,
    )
    del subnet, group
    batch.create_job_queue(
        jobQueueName="queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName="def",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["true"]},
    )


def test_batch_submit_job_in_pascal_case(aws: Counted) -> None:
    _batch_queue(aws)
    before = aws.calls.count("SubmitJob")
    result = run(
        aws,
        "arn:aws:states:::batch:submitJob",
        {
            "JobName": "j1",
            "JobQueue": "queue",
            "JobDefinition": "def",
            "Parameters": {"inputKey": "camelCaseMapKeyStaysAsIs"},
            "ContainerOverrides": {"Environment": [{"Name": "A", "Value": "1"}]},
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    assert set(result.result) >= {"JobArn", "JobId", "JobName"}
    assert result.result["JobName"] == "j1"
    assert aws.calls.count("SubmitJob") == before + 1
    bad = run(
        aws,
        "arn:aws:states:::batch:submitJob",
        {"JobName": "j2", "JobQueue": "no-such-queue", "JobDefinition": "def"},
    )
    assert bad.status == "FAILED"
    assert bad.error is not None and bad.error.startswith("Batch.")


def test_ecs_run_task_in_pascal_case(aws: Counted) -> None:
    ecs = aws.clients["ecs"]
    ecs.create_cluster(clusterName="c1")
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )
    result = run(
        aws,
        "arn:aws:states:::ecs:runTask",
        {
            "Cluster": "c1",
            "TaskDefinition": "web",
            "LaunchType": "FARGATE",
            "Overrides": {
                "ContainerOverrides": [
                    {"Name": "app", "Environment": [{"Name": "TOKEN", "Value": "t"}]}
                ]
            },
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    out = result.result
    assert set(out) == {"Tasks", "Failures"}
    task = out["Tasks"][0]
    assert task["TaskDefinitionArn"].endswith("task-definition/web:1")
    assert task["ClusterArn"].endswith("cluster/c1")
    assert task["Overrides"]["ContainerOverrides"][0]["Environment"] == [
        {"Name": "TOKEN", "Value": "t"}
    ]
    assert aws.calls.count("RunTask") == 1
    missing = run(aws, "arn:aws:states:::ecs:runTask", {"Cluster": "nope", "TaskDefinition": "web"})
    assert missing.error == "ECS.ClusterNotFoundException"


def test_bedrock_invoke_model(aws: Counted) -> None:
    result = run(
        aws,
        "arn:aws:states:::bedrock:invokeModel",
        {
            "ModelId": "amazon.titan-text-express-v1",
            "Body": {"inputText": "Hello", "textGenerationConfig": {"maxTokenCount": 10}},
        },
    )
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"Body": {}, "ContentType": "application/json"}  # moto answers {}
    assert aws.calls == ["InvokeModel"]


def test_bedrock_invoke_model_sends_the_body_as_json(aws: Counted) -> None:
    seen: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    aws.clients["bedrock-runtime"].meta.events.register(
        "before-parameter-build.bedrock-runtime.InvokeModel", capture
    )
    run(
        aws,
        "arn:aws:states:::bedrock:invokeModel",
        {"ModelId": "m", "Body": {"prompt": "hi"}, "Accept": "application/json"},
    )
    (params,) = seen
    assert json.loads(params["body"]) == {"prompt": "hi"}
    assert params["modelId"] == "m"
    assert params["contentType"] == "application/json"


def test_bedrock_input_from_s3_and_output_refused(aws: Counted) -> None:
    s3 = aws.clients["s3"]
    s3.create_bucket(Bucket="prompts")
    s3.put_object(Bucket="prompts", Key="p.json", Body=b'{"inputText": "x"}')
    ok = run(
        aws,
        "arn:aws:states:::bedrock:invokeModel",
        {"ModelId": "m", "Input": {"S3Uri": "s3://prompts/p.json"}},
    )
    assert ok.status == "SUCCEEDED", ok.cause
    refused = run(
        aws,
        "arn:aws:states:::bedrock:invokeModel",
        {"ModelId": "m", "Body": {}, "Output": {"S3Uri": "s3://prompts/out"}},
    )
    assert refused.error == "States.Runtime"
    assert aws.calls.count("InvokeModel") == 1


def test_a_wrong_parameter_fails_without_a_call(aws: Counted) -> None:
    result = run(aws, "arn:aws:states:::glue:startJobRun", {"JobNam": "x"})
    assert result.error == "States.Runtime"
    assert "JobNam" in result.cause
    assert aws.calls == []


def test_sync_forms_run_where_aws_has_them() -> None:
    registry = default_registry()
    for polled in (
        "glue:startJobRun.sync",
        "athena:startQueryExecution.sync",
        "batch:submitJob.sync",
        "ecs:runTask.sync",
    ):
        assert registry.problem(f"arn:aws:states:::{polled}") is None, polled
    assert registry.problem("arn:aws:states:::glue:startJobRun.sync:2") is not None
    assert registry.problem("arn:aws:states:::athena:getQueryResults.sync") is not None
    assert registry.problem("arn:aws:states:::batch:submitJob.waitForTaskToken") is not None
    assert registry.problem("arn:aws:states:::ecs:runTask.waitForTaskToken") is None
    assert registry.problem("arn:aws:states:::athena:startQueryExecution") is None
    assert registry.problem("arn:aws:states:::athena:createWorkGroup") is not None
    for resource in (
        "arn:aws:states:::apigateway:invoke",
        "arn:aws:states:::apigateway:invoke.waitForTaskToken",
        "arn:aws:states:::http:invoke",
        "arn:aws:states:::bedrock:invokeModel",
        "arn:aws:states:::batch:submitJob",
    ):
        assert registry.problem(resource) is None, resource


def test_shapes_match_members_by_case_and_leave_map_keys_alone() -> None:
    model = boto3.client("batch", region_name=REGION).meta.service_model
    shape = model.operation_model("SubmitJob").input_shape
    api = to_api(shape, {"JobName": "j", "Parameters": {"KeepMe": "v"}, "Tags": {"Owner": "x"}})
    assert api == {"jobName": "j", "parameters": {"KeepMe": "v"}, "tags": {"Owner": "x"}}
    out_shape = model.operation_model("SubmitJob").output_shape
    assert from_api(out_shape, {"jobArn": "a", "jobName": "n", "jobId": "i"}) == {
        "JobArn": "a",
        "JobName": "n",
        "JobId": "i",
    }


def test_ecs_run_task_wait_for_token_runs_once_and_waits(aws: Counted) -> None:
    ecs = aws.clients["ecs"]
    ecs.create_cluster(clusterName="c2")
    ecs.register_task_definition(
        family="worker", containerDefinitions=[{"name": "app", "image": "busybox", "memory": 64}]
    )
    registry = Registry()
    registry.register(ECS)
    env = WorkflowEnvironment(invoker=IntegrationInvoker(registry, FixedClients(**aws.clients)))
    parameters = {
        "Cluster": "c2",
        "TaskDefinition": "worker",
        "LaunchType": "FARGATE",
        "Overrides": {
            "ContainerOverrides": [
                {"Name": "app", "Environment": [{"Name": "TOKEN", "Value.$": "$$.Task.Token"}]}
            ]
        },
    }
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken",
        "Parameters": parameters,
        "End": True,
    }
    arn = env.start({"StartAt": "Run", "States": {"Run": state}}, {})
    env.run(arn, skip_open_tasks=True)
    assert aws.calls.count("RunTask") == 1
    (task,) = ecs.describe_tasks(cluster="c2", tasks=ecs.list_tasks(cluster="c2")["taskArns"])[
        "tasks"
    ]
    token = task["overrides"]["containerOverrides"][0]["environment"][0]["value"]
    env.complete(token, {"exit": 0})
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result == {"exit": 0}
    submitted = [e for e in result.history if e["type"] == "TaskSubmitted"]
    assert len(submitted) == 1
    assert aws.calls.count("RunTask") == 1


def test_a_client_without_credentials_fails_the_task_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.config import Config

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    glue = boto3.session.Session().client(
        "glue", region_name=REGION, config=Config(retries={"max_attempts": 0})
    )
    registry = Registry()
    registry.register(GLUE)
    env = WorkflowEnvironment(invoker=IntegrationInvoker(registry, FixedClients(glue=glue)))
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::glue:startJobRun",
        "Parameters": {"JobName": "x"},
        "End": True,
    }
    arn = env.start({"StartAt": "Call", "States": {"Call": state}}, {})
    env.run(arn)
    result = env.result(arn)
    assert result.error == "Glue.SdkClientException"
    assert "credentials" in result.cause.lower()
