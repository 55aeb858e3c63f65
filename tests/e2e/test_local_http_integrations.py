"""End to end: boto3 against ``stepflow local`` running apigateway:invoke on a local HTTP server.

Until the local stack builds its invoker from the integration registry (the
"core" branch of issue 13), the stack here gets
``IntegrationInvoker(default_registry(), RoleClients(...))`` explicitly: the
same invoker, the same registry, with the stack's SQS pollers, DynamoDB log and
API in front.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for
from tests.unit.http_target import HttpTarget, http_target

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTarget]:
    with http_target() as running:
        yield running


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0) as running:
        yield running


def run(stack: LocalStack, name: str, definition: dict[str, Any], payload: Any) -> dict[str, Any]:
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=machine, input=json.dumps(payload))
    described = wait_for(sfn, execution["executionArn"])
    described["events"] = sfn.get_execution_history(executionArn=execution["executionArn"])[
        "events"
    ]
    return dict(described)


def definition(**task: Any) -> dict[str, Any]:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::apigateway:invoke",
        "Parameters": {
            "ApiEndpoint.$": "$.ApiEndpoint",
            "Method": "POST",
            "Stage": "prod",
            "Path.$": "$.Path",
            "RequestBody.$": "$.Body",
        },
        "End": True,
        **task,
    }
    return {"StartAt": "Call", "States": {"Call": state}}


def test_apigateway_invoke_through_the_local_stack(stack: LocalStack, target: HttpTarget) -> None:
    before = target.count("id_func")
    described = run(
        stack,
        "apigw-echo",
        definition(),
        {"ApiEndpoint": target.url, "Path": "id_func", "Body": {"order": 7}},
    )
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["ResponseBody"] == {"order": 7}
    assert output["StatusCode"] == 200 and output["StatusText"] == "OK"
    assert target.count("id_func") == before + 1
    types = [e["type"] for e in described["events"]]
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    scheduled = next(e for e in described["events"] if e["type"] == "TaskScheduled")
    details = scheduled["taskScheduledEventDetails"]
    assert (details["resourceType"], details["resource"]) == ("apigateway", "invoke")


def test_apigateway_error_is_caught_by_name_and_retried_once_per_attempt(
    stack: LocalStack, target: HttpTarget
) -> None:
    before = target.count("status/403")
    described = run(
        stack,
        "apigw-error",
        definition(
            Retry=[{"ErrorEquals": ["ApiGateway.403"], "MaxAttempts": 1, "IntervalSeconds": 1}]
        ),
        {"ApiEndpoint": target.url, "Path": "status/403", "Body": "x"},
    )
    assert described["status"] == "FAILED"
    assert described["error"] == "ApiGateway.403"
    assert json.loads(described["cause"]) == {"message": "Missing Authentication Token"}
    assert target.count("status/403") == before + 2


def test_http_invoke_with_a_connection_in_the_stacks_moto(
    stack: LocalStack, target: HttpTarget
) -> None:
    events = stack.client("events")
    arn = events.create_connection(
        Name="partner",
        AuthorizationType="API_KEY",
        AuthParameters={"ApiKeyAuthParameters": {"ApiKeyName": "x-api-key", "ApiKeyValue": "k1"}},
    )["ConnectionArn"]
    before = target.count("inspect")
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {
            "ApiEndpoint": f"{target.url}/inspect",
            "Method": "POST",
            "Authentication": {"ConnectionArn": arn},
            "RequestBody": {"id.$": "$.id"},
        },
        "End": True,
    }
    described = run(stack, "http-invoke", {"StartAt": "Call", "States": {"Call": state}}, {"id": 3})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["StatusCode"] == "200"
    assert output["ResponseBody"]["headers"]["x-api-key"] == "k1"
    assert output["ResponseBody"]["body"] == {"id": 3}
    assert target.count("inspect") == before + 1


def test_glue_and_ecs_run_against_the_stacks_moto(stack: LocalStack) -> None:
    stack.client("glue").create_job(
        Name="etl", Role="arn:aws:iam::000000000000:role/glue", Command={"Name": "glueetl"}
    )
    ecs = stack.client("ecs")
    ecs.create_cluster(clusterName="local")
    ecs.register_task_definition(
        family="job", containerDefinitions=[{"name": "app", "image": "busybox", "memory": 64}]
    )
    definition = {
        "StartAt": "Glue",
        "States": {
            "Glue": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun",
                "Parameters": {"JobName": "etl"},
                "ResultPath": "$.glue",
                "Next": "Ecs",
            },
            "Ecs": {
                "Type": "Task",
                "Resource": "arn:aws:states:::ecs:runTask",
                "Parameters": {
                    "Cluster": "local",
                    "TaskDefinition": "job",
                    "LaunchType": "FARGATE",
                },
                "ResultSelector": {"arn.$": "$.Tasks[0].TaskArn"},
                "ResultPath": "$.ecs",
                "Next": "Missing",
            },
            "Missing": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun",
                "Parameters": {"JobName": "no-such-job"},
                "Catch": [{"ErrorEquals": ["Glue.EntityNotFoundException"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    described = run(stack, "glue-ecs", definition, {})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["Error"] == "Glue.EntityNotFoundException"
    assert ecs.list_tasks(cluster="local")["taskArns"]
    types = [e["type"] for e in described["events"]]
    assert types.count("TaskSucceeded") == 2 and types.count("TaskFailed") == 1
