"""End to end through ``stepflow local`` (boto3): an inline Map stopped past ``child_limit``
leaves its iterations' events in the parent's history, and an inline Map of at most
``child_limit`` items redriven runs only its unsuccessful iterations again.

Every handler counts its calls per item, so that once is told from twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.local import LocalStack

from tests.e2e.counting import FN, ROLE, calls, failed_run, slow, work
from tests.e2e.waiting import wait_for


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={"work": work, "slow": slow}) as running:
        yield running


def _machine(sfn: Any, name: str, tag: str, resource: str, **fields: Any) -> str:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"i.$": "$$.Map.Item.Index", "tag": tag},
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": FN + resource, "End": True}},
                },
                "End": True,
                **fields,
            }
        },
    }
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def _iterations(sfn: Any, arn: str) -> tuple[list[str], list[tuple[str, int]]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    found = []
    for event in events:
        if event["type"].startswith("MapIteration"):
            details = next(v for k, v in event.items() if k.endswith("EventDetails"))
            found.append((event["type"], int(details["index"])))
    return [e["type"] for e in events], found


def test_a_stopped_inline_map_run_leaves_its_iterations_events_in_the_history(
    stack: LocalStack,
) -> None:
    # 41 items (a map run): fewer than 500 events, so the run had reported none of
    # them when the stop came; they were never recorded before the fix.
    sfn = stack.stepfunctions()
    tag = "stopped-events"
    arn = _machine(sfn, "StoppedEvents", tag, "slow", MaxConcurrency=4)
    items = [{"n": i} for i in range(41)]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while sum(calls(tag).values()) < 6:
        assert time.monotonic() < deadline, "no iteration ran"
        time.sleep(0.05)
    called = set(calls(tag))  # started before the stop
    sfn.stop_execution(executionArn=execution, error="Stopped", cause="by the test")
    assert wait_for(sfn, execution)["status"] == "ABORTED"
    time.sleep(2)  # late reports of the stopped run must add nothing
    types, iterations = _iterations(sfn, execution)
    assert types[-1] == "ExecutionAborted" and types.count("ExecutionAborted") == 1
    started = [i for t, i in iterations if t == "MapIterationStarted"]
    succeeded = [i for t, i in iterations if t == "MapIterationSucceeded"]
    assert called <= set(started) and len(started) == len(set(started))  # each once
    assert set(succeeded) <= set(started) and len(succeeded) == len(set(succeeded))
    assert not any(t == "MapIterationAborted" for t, _ in iterations)  # as in the parent
    assert len(started) < 41


def test_an_inline_map_within_the_child_limit_redriven_runs_only_its_failed_iterations(
    stack: LocalStack,
) -> None:
    # AWS: RedriveExecution "reschedules and redrives only the iterations ... that failed
    # or aborted" of an Inline Map; in the parent (<= 40 items) all of them ran again.
    sfn = stack.stepfunctions()
    tag = "small-redrive"
    count = 12
    arn = _machine(sfn, "SmallRedrive", tag, "work", MaxConcurrency=3)
    execution = failed_run(sfn, arn, count, {7})
    first = calls(tag)
    _, before = _iterations(sfn, execution)
    succeeded_before = {i for t, i in before if t == "MapIterationSucceeded"}
    assert 7 not in succeeded_before and len(succeeded_before) >= 5
    sfn.redrive_execution(executionArn=execution)
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    total = calls(tag)
    assert all(total[i] == 1 for i in succeeded_before)  # once in all: kept by the redrive
    again = total - first
    assert set(again) == set(range(count)) - succeeded_before  # the others once each
    assert all(n == 1 for n in again.values()) and total[7] == 2
    _, after = _iterations(sfn, execution)
    started = sorted(i for t, i in after[len(before) :] if t == "MapIterationStarted")
    assert started == sorted(again)


def test_an_inline_map_run_abandoned_by_a_failed_parallel_sibling_records_its_aborts(
    stack: LocalStack,
) -> None:
    # As with the iterations in the parent: each started iteration ends in the history,
    # Succeeded or Aborted, before ParallelStateFailed (none was recorded before the fix).
    sfn = stack.stepfunctions()
    tag = "sibling-abort"
    mapped = json.loads(
        sfn.describe_state_machine(
            stateMachineArn=_machine(sfn, "SiblingMap", tag, "slow", MaxConcurrency=4)
        )["definition"]
    )
    failing = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 2, "Next": "F"},
            "F": {"Type": "Fail", "Error": "Sibling"},
        },
    }
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": [mapped, failing], "End": True}},
    }
    created = sfn.create_state_machine(
        name="SiblingAbort", definition=json.dumps(definition), roleArn=ROLE
    )
    items = [{"n": i} for i in range(41)]
    execution = sfn.start_execution(
        stateMachineArn=created["stateMachineArn"], input=json.dumps({"items": items})
    )["executionArn"]
    described = wait_for(sfn, execution, timeout=60)
    assert (described["status"], described["error"]) == ("FAILED", "Sibling")
    time.sleep(2)  # late reports of the cancelled run must add nothing
    types, iterations = _iterations(sfn, execution)
    started = [i for t, i in iterations if t == "MapIterationStarted"]
    succeeded = {i for t, i in iterations if t == "MapIterationSucceeded"}
    aborted = {i for t, i in iterations if t == "MapIterationAborted"}
    assert len(started) == len(set(started)) and 4 <= len(started) < 41
    assert not succeeded & aborted and succeeded | aborted == set(started)
    assert 1 <= len(aborted) <= 4
    # the run may start a few more between the parent's abandon and the cancel's arrival:
    # started after the abandon, they are in no history (and stopped at once)
    assert len(set(calls(tag)) - set(started)) <= 4
    last = max(i for i, t in enumerate(types) if t.startswith("MapIteration"))
    assert last < types.index("ParallelStateFailed")
