"""RedriveExecution of a map run's child through boto3 over HTTP: refused, as on AWS.

A Map Run's child workflow execution (a distributed Map's STANDARD child, or an
iteration of an inline Map run as a map run) is redriven by redriving its parent;
RedriveExecution on the child itself answers ``ExecutionNotRedrivable`` and changes
nothing. The parent's redrive still reruns the failed item once.
"""

from __future__ import annotations

import json
from typing import Any

import boto3  # type: ignore[import-untyped]

from tests.api.conftest import ROLE, Api
from tests.api.test_map_run_api import code_of
from tests.unit.test_engine_children import FAILING

FAILS_ON_1 = FAILING
"""Fails for the item ``{"v": 1}``."""


def _map(processor: dict[str, Any]) -> str:
    return json.dumps(
        {"StartAt": "M", "States": {"M": {"Type": "Map", "ItemProcessor": processor, "End": True}}}
    )


def _failed_parent(stack: tuple[Any, Api], name: str, processor: dict[str, Any], n: int) -> str:
    sfn, api = stack
    machine = sfn.create_state_machine(name=name, definition=_map(processor), roleArn=ROLE)
    started = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps([{"v": v} for v in range(n)])
    )
    api.drain()
    parent = started["executionArn"]
    assert sfn.describe_execution(executionArn=parent)["status"] == "FAILED"
    return str(parent)


def _refused_and_unchanged(sfn: Any, api: Api, child: str) -> None:
    before = sfn.get_execution_history(executionArn=child, maxResults=1000)["events"]
    assert sfn.describe_execution(executionArn=child)["status"] == "FAILED"
    assert code_of(sfn.redrive_execution, executionArn=child) == "ExecutionNotRedrivable"
    api.drain()
    assert sfn.describe_execution(executionArn=child)["status"] == "FAILED"
    after = sfn.get_execution_history(executionArn=child, maxResults=1000)["events"]
    assert after == before


def test_a_distributed_maps_child_is_not_redriven_directly(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    distributed = {
        **FAILS_ON_1,
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    }
    parent = _failed_parent(stack, "Dist", distributed, 5)
    (run,) = sfn.list_map_runs(executionArn=parent)["mapRuns"]
    children = sfn.list_executions(mapRunArn=run["mapRunArn"], statusFilter="FAILED")
    (child,) = [e["executionArn"] for e in children["executions"]]
    _refused_and_unchanged(sfn, api, child)
    sfn.redrive_execution(executionArn=parent)  # the parent's redrive reruns the item
    api.drain()
    assert sfn.describe_execution(executionArn=parent)["status"] == "FAILED"
    described = sfn.describe_execution(executionArn=child)
    assert (described["status"], described["redriveCount"]) == ("FAILED", 1)


def test_an_inline_maps_iteration_is_not_redriven_directly(stack: tuple[Any, Api]) -> None:
    sfn, api = stack
    _failed_parent(stack, "Inline", FAILS_ON_1, 45)  # past child_limit: a map run
    table = boto3.client("dynamodb", region_name="eu-west-1")
    items = table.scan(TableName="log", ProjectionExpression="pk")["Items"]
    iterations = {i["pk"]["S"][3:] for i in items if ":execution:Inline/M:" in i["pk"]["S"]}
    (failed,) = [arn for arn in iterations if arn.endswith("-1")]
    _refused_and_unchanged(sfn, api, failed)
