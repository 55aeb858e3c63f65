"""End to end through ``stepflow local`` (boto3): large inline Maps, distributed Map redrive,
EXPRESS items that wait, and a 210 KB input through both kinds of Map.

The inline Maps here are past ``child_limit`` (40): their iterations run in a map run of
child executions. Every handler counts its calls per item, so that once is told from twice.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.counting import FN, ROLE, calls, count_task_sends, failed_run, slow, work
from tests.e2e.waiting import wait_for


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"work": work, "slow": slow}) as running:
        yield running


def _machine(sfn: Any, name: str, definition: dict[str, Any]) -> str:
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _settled(sfn: Any, map_run_arn: str) -> tuple[dict[str, Any], set[int]]:
    """DescribeMapRun once the reports of the children stopped with the run are counted,
    and the positions of the children that succeeded (an item each).

    Every child's end is counted once (docs/reliability.md, "A map run's counts"): a
    report that lost a race to the run's head is applied again in the same delivery,
    one deferred by the head's write rate comes back a second later. 30 s is far past
    both, and well under the steps queue's visibility timeout (180 s): a report lost or
    left to a redelivery fails here.
    """
    deadline = time.monotonic() + 30
    while True:
        described = sfn.describe_map_run(mapRunArn=map_run_arn)
        children = sfn.list_executions(mapRunArn=map_run_arn, maxResults=1000)["executions"]
        succeeded = {
            int(c["executionArn"].rsplit("-", 1)[1]) for c in children if c["status"] == "SUCCEEDED"
        }
        counts = described["itemCounts"]
        done = all(c["status"] != "RUNNING" for c in children) and counts["running"] == 0
        if done and counts["succeeded"] == len(succeeded):
            return described, succeeded
        assert time.monotonic() < deadline, (counts, len(succeeded))
        time.sleep(0.1)


def _inline(tag: str, **fields: Any) -> dict[str, Any]:
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "i.$": "$$.Map.Item.Index",
                    "tag": tag,
                    "v.$": "$$.Map.Item.Value",
                },
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {
                        "Work": {
                            "Type": "Task",
                            "Resource": FN + "work",
                            "Parameters": {"i.$": "$.i", "tag.$": "$.tag"},
                            "End": True,
                        }
                    },
                },
                "End": True,
                **fields,
            }
        },
    }


@pytest.mark.parametrize("count", [41, 200])
def test_an_inline_map_past_the_child_limit_runs_each_item_once_in_order(
    stack: LocalStack, count: int
) -> None:
    sfn = stack.stepfunctions()
    tag = f"inline{count}"
    arn = _machine(sfn, f"Inline{count}", _inline(tag))
    items = [{"n": i} for i in range(count)]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]

    described = wait_for(sfn, execution, timeout=180)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    assert calls(tag) == Counter(range(count))  # each item once, none twice
    events = _history(sfn, execution)
    succeeded = [
        e["mapIterationSucceededEventDetails"]["index"]
        for e in events
        if e["type"] == "MapIterationSucceeded"
    ]
    started = [
        e["mapIterationStartedEventDetails"]["index"]
        for e in events
        if e["type"] == "MapIterationStarted"
    ]
    assert sorted(succeeded) == list(range(count)) and sorted(started) == list(range(count))
    types = [e["type"] for e in events]
    assert types.index("MapStateSucceeded") > max(
        i for i, t in enumerate(types) if t.startswith("MapIteration")
    )
    assert not any(t.startswith("MapRun") for t in types)  # an inline Map shows no map run
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["executionArn"] for e in listed] == [execution]  # iterations are not listed


def test_a_distributed_map_redriven_after_too_many_failures_runs_only_those_again(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    tag = "redrive"
    definition = _inline(tag, ToleratedFailureCount=1, MaxConcurrency=5)
    definition["States"]["Each"]["ItemProcessor"]["ProcessorConfig"] = {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    arn = _machine(sfn, "RedriveDistributed", definition)
    count = 12
    error = "States.ExceedToleratedFailureThreshold"
    execution = failed_run(sfn, arn, count, {3, 5, 8}, error)
    [run] = sfn.list_map_runs(executionArn=execution)["mapRuns"]
    before, succeeded_before = _settled(sfn, run["mapRunArn"])
    assert before["status"] == "FAILED" and before["redriveCount"] == 0
    assert not succeeded_before & {3, 5, 8}
    first = calls(tag)  # a stopped child's Lambda may have been called: it runs again

    sfn.redrive_execution(executionArn=execution)
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    again = calls(tag) - first
    assert all(calls(tag)[i] == 1 for i in succeeded_before)  # not run again
    assert set(again) == set(range(count)) - succeeded_before  # the others once each
    assert all(n == 1 for n in again.values())
    after = sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert after["status"] == "SUCCEEDED" and after["redriveCount"] == 1
    counts = after["itemCounts"]
    assert (counts["succeeded"], counts["failed"], counts["total"]) == (count, 0, count)
    assert (counts["pending"], counts["running"]) == (0, 0)


def test_an_express_distributed_map_whose_items_wait_runs_each_item_once(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    tag = "express-wait"
    definition = _inline(tag)
    processor = definition["States"]["Each"]["ItemProcessor"]
    processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    processor["StartAt"] = "Pause"
    processor["States"]["Pause"] = {"Type": "Wait", "Seconds": 1, "Next": "Work"}
    arn = _machine(sfn, "ExpressWait", definition)
    count = 30
    items = [{"n": i} for i in range(count)]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    assert calls(tag) == Counter(range(count))


@pytest.mark.parametrize("mode", ["INLINE", "DISTRIBUTED"])
def test_a_210_kb_input_runs_through_a_map_of_41_items(stack: LocalStack, mode: str) -> None:
    # The Map's input (items and a 210 KB blob) is in the parent's head, the run's spec
    # and config, and each iteration's $$.Execution.Input: no record may pass 400 KB.
    sfn = stack.stepfunctions()
    tag = f"big-{mode}"
    definition = _inline(tag)
    if mode == "DISTRIBUTED":
        config = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        definition["States"]["Each"]["ItemProcessor"]["ProcessorConfig"] = config
    state = definition["States"]["Each"]
    state["ItemSelector"]["size.$"] = "States.ArrayLength($.blob)"
    state["ItemProcessor"]["States"]["Work"]["Parameters"]["size.$"] = "$.size"
    arn = _machine(sfn, f"Big{mode.title()}", definition)
    count = 41
    blob = ["x" * 1000] * 210  # 210 KB
    payload = json.dumps({"items": [{"n": i} for i in range(count)], "blob": blob})
    assert len(payload) > 210_000
    execution = sfn.start_execution(stateMachineArn=arn, input=payload)["executionArn"]
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    assert calls(tag) == Counter(range(count))


def test_stopping_the_parent_of_an_inline_map_run_stops_every_iteration(
    stack: LocalStack,
) -> None:
    sfn = stack.stepfunctions()
    tag = "stopped"
    definition = _inline(tag, MaxConcurrency=4)
    work_state = definition["States"]["Each"]["ItemProcessor"]["States"]["Work"]
    work_state["Resource"] = FN + "slow"
    arn = _machine(sfn, "StoppedInline", definition)
    count = 41
    items = [{"n": i} for i in range(count)]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while sum(calls(tag).values()) < 2:
        assert time.monotonic() < deadline, "no iteration ran"
        time.sleep(0.05)
    sfn.stop_execution(executionArn=execution, error="Stopped", cause="by the test")
    assert wait_for(sfn, execution)["status"] == "ABORTED"
    time.sleep(3)  # iterations in flight end; none may start any more
    settled = calls(tag)
    time.sleep(2)
    assert calls(tag) == settled  # nothing runs after the stop
    assert all(n == 1 for n in settled.values())  # each Lambda at most once
    assert sum(settled.values()) < count
    types = [e["type"] for e in _history(sfn, execution)]
    assert types[-1] == "ExecutionAborted" and types.count("ExecutionAborted") == 1
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["executionArn"] for e in listed] == [execution]


def test_an_inline_map_run_redriven_runs_only_its_failed_iterations_again(
    stack: LocalStack,
) -> None:
    # AWS: RedriveExecution "reschedules and redrives only the iterations ... that failed
    # or aborted" of an Inline Map (all 41 ran again before the review's fix).
    sfn = stack.stepfunctions()
    tag = "inline-redrive"
    arn = _machine(sfn, "InlineRedrive", _inline(tag))
    count = 41
    execution = failed_run(sfn, arn, count, {3})
    time.sleep(2)  # the iterations stopped with the Map end
    first = calls(tag)
    sfn.redrive_execution(executionArn=execution)
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    again = calls(tag) - first
    assert again[3] == 1 and all(n == 1 for n in again.values())
    assert sum(again.values()) < count  # not every iteration again
    assert set(range(count)) == set(calls(tag))
    events = _history(sfn, execution)
    redriven = [e["type"] for e in events].index("ExecutionRedriven")
    started = [
        e["mapIterationStartedEventDetails"]["index"]
        for e in events[redriven:]
        if e["type"] == "MapIterationStarted"
    ]
    assert 3 in started and len(started) == len(set(started)) == sum(again.values())


def test_a_parallel_and_a_map_run_each_task_once_committed_by_the_runner(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a Parallel of two tasks, then a Map of ten (under the child limit: inline)
    sfn = stack.stepfunctions()
    tag = "runnercommit"

    def task(i: int) -> dict[str, Any]:
        return {"Type": "Task", "Resource": FN + "work", "Parameters": {"i": i, "tag": tag}}

    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "B", "States": {"B": {**task(100 + b), "End": True}}}
                    for b in range(2)
                ],
                "ResultPath": "$.both",
                "Next": "Each",
            },
            **_inline(tag)["States"],
        },
    }
    arn = _machine(sfn, "RunnerCommits", definition)
    items = [{"n": i} for i in range(10)]
    sent = count_task_sends(stack, monkeypatch)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]
    # WHEN it runs through the runner pollers of stepflow local
    described = wait_for(sfn, execution, timeout=120)
    # THEN it succeeded, and each handler was called once
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(10)]
    assert calls(tag) == Counter([100, 101, *range(10)])
    # AND the runner committed the results itself, claiming ONE lease per commit's tasks
    # (the Parallel's two, then the Map's ten: issue 18, round 3; before, one per task),
    # none holding a recorded result (the fallback's; each result reached the head directly).
    # Each record lives in its commit's event item, beside the events its claim copied
    # (issue 18, round 10: stepflow.aws.log_claims); no lease has an item of its own.
    dynamodb = stack.client("dynamodb")
    items = dynamodb.query(
        TableName="stepflow-local",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"EX#{execution}"}},
        ConsistentRead=True,
    )["Items"]
    leases = [item for item in items if "version" in item]
    assert sorted(str(item["sk"]["S"]).split("#")[0] for item in leases) == ["EV", "EV"]
    assert all("events" in item or "events_z" in item for item in leases)
    assert not any(str(item["sk"]["S"]).startswith("TK#") for item in items)
    assert not any("result" in item for item in leases)
    # AND ONE message went to the tasks queue (the Parallel's two): the runner that
    # committed their results ran the Map's ten in place (issue 18, round 4)
    assert [len(m.body["group"]) for m in sent if m.execution_arn == execution] == [2]
