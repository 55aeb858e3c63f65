"""End to end: a distributed Map's map run through boto3 against ``stepflow local``.

Needs the engine side of the distributed Map (``stepflow.engine.map_items``, another
change of issue 14): skipped until it is there.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.waiting import wait_for

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stepflow.engine.map_items") is None,
    reason="the engine side of the distributed Map is not there yet",
)

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"
CALLS: Counter[int] = Counter()
LOCK = threading.Lock()


def square(payload: Any) -> Any:
    with LOCK:
        CALLS[payload["i"]] += 1
    return {"sq": payload["i"] * payload["i"]}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"square": square}) as running:
        yield running


def test_a_standard_distributed_map_runs_its_children_and_shows_its_map_run(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 4,
                "Label": "Squares",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Square",
                    "States": {"Square": {"Type": "Task", "Resource": FN + "square", "End": True}},
                },
                "End": True,
            }
        },
    }
    arn = sfn.create_state_machine(name="Squares", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    items = [{"i": i} for i in range(20)]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]

    described = wait_for(sfn, execution, timeout=120)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"sq": i * i} for i in range(20)]
    assert all(CALLS[i] == 1 for i in range(20))
    [run] = sfn.list_map_runs(executionArn=execution)["mapRuns"]
    assert ":mapRun:Squares/Squares:" in run["mapRunArn"]
    map_run = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert map_run["status"] == "SUCCEEDED" and map_run["maxConcurrency"] == 4
    assert map_run["itemCounts"]["succeeded"] == map_run["itemCounts"]["total"] == 20
    children = sfn.list_executions(mapRunArn=run["mapRunArn"], maxResults=100)["executions"]
    assert len(children) == 20 and {c["status"] for c in children} == {"SUCCEEDED"}
    child = sfn.describe_execution(executionArn=children[0]["executionArn"])
    assert child["mapRunArn"] == run["mapRunArn"]
