"""``.sync`` of polled services on the path that ships: boto3 against ``stepflow local``.

The stack's moto server holds the Glue job and runs the Athena query; the stack
polls them on its durable timers (every second here: ``poll_seconds=1``; AWS's
schedule is once a minute) through its SQS pollers, DynamoDB log and API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

pytest.importorskip("moto")
ROLE = "arn:aws:iam::123456789012:role/JobsRole"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, poll_seconds=1) as running:
        yield running


def run(stack: LocalStack, name: str, resource: str, parameters: dict[str, Any]) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}
    definition = {"StartAt": "Job", "States": {"Job": task}}
    sfn = stack.stepfunctions()
    machine = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")
    described = dict(wait_for(sfn, execution["executionArn"]))
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    described["types"] = [event["type"] for event in history]
    return described


def test_glue_start_job_run_sync_through_the_local_stack(stack: LocalStack) -> None:
    glue = stack.client("glue")
    glue.create_job(Name="etl", Role=ROLE, Command={"Name": "glueetl", "ScriptLocation": "s3://x"})
    described = run(
        stack, "glue-sync", "arn:aws:states:::glue:startJobRun.sync", {"JobName": "etl"}
    )
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["JobName"] == "etl" and output["JobRunState"] == "SUCCEEDED"
    runs = glue.get_job_runs(JobName="etl")["JobRuns"]
    assert [r["Id"] for r in runs] == [output["Id"]]  # started once
    types = described["types"]
    assert types[2:5] == ["TaskScheduled", "TaskStarted", "TaskSubmitted"]
    assert types.count("TaskSucceeded") == 1


def test_athena_start_query_execution_sync_through_the_local_stack(stack: LocalStack) -> None:
    parameters = {
        "QueryString": "SELECT 1",
        "WorkGroup": "primary",
        "ResultConfiguration": {"OutputLocation": "s3://results/"},
    }
    described = run(
        stack, "athena-sync", "arn:aws:states:::athena:startQueryExecution.sync", parameters
    )
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["QueryExecution"]["Status"]["State"] == "SUCCEEDED"
