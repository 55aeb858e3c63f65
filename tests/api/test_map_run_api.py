"""The Map Run API through boto3 over HTTP, on the DynamoDB log (moto).

A parent execution (waiting) gets a map run as its outbox would start it; the
API then describes, lists, updates and lists the children of that run, and
answers the error paths with AWS's codes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stepflow.engine import StartMapRun
from stepflow.runtime.map_run_state import map_run_message

from tests.api.conftest import ROLE, Api

PREFIX = "arn:aws:states:eu-west-1:111122223333"
DEFINITION = json.dumps(
    {
        "StartAt": "Hold",
        "States": {
            "Hold": {"Type": "Wait", "Seconds": 3600, "Next": "Each"},
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Shape",
                    "States": {"Shape": {"Type": "Pass", "Parameters": {"r.$": "$"}, "End": True}},
                },
                "End": True,
            },
        },
    }
)


def start_run(sfn: Any, api: Api, name: str, items: list[Any], **spec: Any) -> tuple[str, str]:
    """A waiting parent and a map run of ``items`` started for it; (parent, map run) ARNs."""
    machine = f"{PREFIX}:stateMachine:Batch"
    if name == "p1":
        sfn.create_state_machine(name="Batch", definition=DEFINITION, roleArn=ROLE)
    parent = sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
    record = api.log.get(parent)
    assert record is not None
    run_id = f"run-{name}"
    run_arn = f"{PREFIX}:mapRun:Batch/Each:{run_id}"
    started = {
        "type": "MapRunStarted",
        "id": 99,
        "mapRunStartedEventDetails": {"mapRunArn": run_arn},
    }
    api.log.commit(replace(record, seq=record.seq + 1, outbox=()), record.seq, [started])
    full = {
        "map_run_arn": run_arn,
        "run_id": run_id,
        "execution_arn": parent,
        "state_name": "Each",
        "machine": "/Each",
        "execution_type": "STANDARD",
        "items": items,
        "scope": {"input": {}, "context": {}, "variables": {}},
        "max_concurrency": 0,
        **spec,
    }
    command = StartMapRun(run_id, full)
    api.bus.send(map_run_message(parent, f"{parent}#9#0", command, record.state_machine_arn))
    return parent, run_arn


def code_of(call: Any, **params: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**params)
    return str(info.value.response["Error"]["Code"])


def test_describe_list_and_children_of_a_map_run(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    parent, run_arn = start_run(sfn, api, "p1", [1, 2, 3], max_concurrency=2, tolerated_count=1)
    api.drain()
    described = sfn.describe_map_run(mapRunArn=run_arn)
    del described["ResponseMetadata"]
    assert described["status"] == "SUCCEEDED" and described["executionArn"] == parent
    assert described["maxConcurrency"] == 2 and described["toleratedFailureCount"] == 1
    assert described["toleratedFailurePercentage"] == 0.0
    assert described["stopDate"] >= described["startDate"]
    counts = {
        "pending": 0, "running": 0, "succeeded": 3, "failed": 0, "timedOut": 0, "aborted": 0,
        "total": 3, "resultsWritten": 0, "failuresNotRedrivable": 0, "pendingRedrive": 0,
    }  # fmt: skip
    assert described["itemCounts"] == counts and described["executionCounts"] == counts
    assert described["redriveCount"] == 0
    runs = sfn.list_map_runs(executionArn=parent)["mapRuns"]
    assert [(r["mapRunArn"], r["stateMachineArn"]) for r in runs] == [
        (run_arn, f"{PREFIX}:stateMachine:Batch/Each")
    ]
    kids = sfn.list_executions(mapRunArn=run_arn)["executions"]
    assert len(kids) == 3 and {k["status"] for k in kids} == {"SUCCEEDED"}
    assert all(k["executionArn"].startswith(f"{PREFIX}:execution:Batch/Each:") for k in kids)
    child = sfn.describe_execution(executionArn=kids[0]["executionArn"])
    assert child["mapRunArn"] == run_arn
    assert child["stateMachineArn"] == f"{PREFIX}:stateMachine:Batch/Each"
    assert json.loads(child["output"])["r"] in (1, 2, 3)
    machine = f"{PREFIX}:stateMachine:Batch"
    listed = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [e["executionArn"] for e in listed] == [parent]  # the children are not the machine's


def test_update_map_run_applies_to_the_running_run(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    _, run_arn = start_run(sfn, api, "p2", list(range(12)), max_concurrency=1)
    batch = api.bus.receive_batch(1)
    api.service.stepper.handle_batch(batch)
    api.bus.ack(batch[0])
    assert sfn.describe_map_run(mapRunArn=run_arn)["executionCounts"]["running"] == 1
    sfn.update_map_run(mapRunArn=run_arn, maxConcurrency=5, toleratedFailurePercentage=10)
    described = sfn.describe_map_run(mapRunArn=run_arn)
    assert described["maxConcurrency"] == 5 and described["toleratedFailurePercentage"] == 10.0
    assert described["executionCounts"]["running"] == 5
    api.drain()
    assert sfn.describe_map_run(mapRunArn=run_arn)["status"] == "SUCCEEDED"
    assert code_of(sfn.update_map_run, mapRunArn=run_arn, maxConcurrency=3) == (
        "ValidationException"
    )


def test_map_run_errors_as_aws(stack: tuple[Any, Api]) -> None:
    sfn, _ = stack
    missing = f"{PREFIX}:mapRun:Batch/Each:nope"
    assert code_of(sfn.describe_map_run, mapRunArn=missing) == "ResourceNotFound"
    assert code_of(sfn.describe_map_run, mapRunArn=f"{PREFIX}:execution:Batch:x") == "InvalidArn"
    assert code_of(sfn.update_map_run, mapRunArn=missing, maxConcurrency=1) == "ResourceNotFound"
    assert code_of(sfn.update_map_run, mapRunArn=missing) == "ValidationException"
    bad = {"mapRunArn": missing, "toleratedFailurePercentage": 101}
    assert code_of(sfn.update_map_run, **bad) == "ValidationException"
    assert code_of(sfn.list_map_runs, executionArn=f"{PREFIX}:execution:Batch:none") == (
        "ExecutionDoesNotExist"
    )
    assert code_of(sfn.list_executions, mapRunArn=missing) == "ResourceNotFound"
    both = {"mapRunArn": missing, "stateMachineArn": f"{PREFIX}:stateMachine:Batch"}
    assert code_of(sfn.list_executions, **both) == "ValidationException"
