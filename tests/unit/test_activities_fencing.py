"""Leases, heartbeats, timeouts and fencing of deferred tasks, on a virtual clock.

GIVEN an execution waiting on an activity, WHEN workers poll, die, come back
late or race, THEN exactly the current attempt's first report counts and every
other one is refused without touching the log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.activities import ActivityError
from stepflow.runtime.ports import ExecutionRecord

from tests.worker.harness import Harness, activity, task_machine


def harness(**task: Any) -> Harness:
    h = Harness(task_machine(activity("jobs"), **task), lease_seconds=60, max_deliveries=3)
    h.service.create_activity({"name": "jobs"})
    return h


def refused(call: Any, params: dict[str, Any]) -> str:
    with pytest.raises(ActivityError) as caught:
        call(params)
    return str(caught.value.code)


def succeed(h: Harness, token: str, output: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = h.service.send_task_success(
        {"taskToken": token, "output": json.dumps(output or {"ok": True})}
    )
    return result


def failures(h: Harness, arn: str) -> list[dict[str, Any]]:
    return [
        details
        for event in h.history(arn)
        for key, details in event.items()
        if key in ("activityTimedOutEventDetails", "activityFailedEventDetails")
    ]


def test_a_dead_worker_with_heartbeat_seconds_times_out_within_the_window() -> None:
    h = harness(HeartbeatSeconds=10)
    arn = h.start()
    token = h.poll("jobs", "doomed")["taskToken"]  # ... and the worker dies
    h.advance(9)
    assert h.status(arn) == "RUNNING"
    h.advance(1)
    assert failures(h, arn) == [
        {"error": "States.HeartbeatTimeout", "cause": "No heartbeat arrived in time."}
    ]
    assert h.types(arn)[-2:] == ["PassStateExited", "ExecutionSucceeded"]  # caught
    before = h.history(arn)
    assert refused(h.service.send_task_success, {"taskToken": token, "output": "{}"}) == (
        "TaskTimedOut"
    )
    assert refused(h.service.send_task_heartbeat, {"taskToken": token}) == "TaskTimedOut"
    assert h.history(arn) == before
    assert h.poll("jobs") == {}  # the stale message was dropped, not handed out
    assert h.queue.pending("jobs") == 0


def test_heartbeats_keep_a_slow_worker_alive_and_extend_its_lease() -> None:
    h = harness(HeartbeatSeconds=10)
    arn = h.start()
    token = h.poll("jobs", "slow")["taskToken"]
    for _ in range(12):  # two minutes: far beyond the heartbeat window and the lease
        h.advance(8)
        h.service.send_task_heartbeat({"taskToken": token})
        assert h.poll("jobs", "thief") == {}  # the lease holds: nobody else gets it
    succeed(h, token, {"slow": True})
    assert h.status(arn) == "SUCCEEDED"
    assert h.output(arn) == {"slow": True}
    assert h.queue.pending("jobs") == 0


def test_timeout_seconds_fails_the_task_with_states_timeout() -> None:
    h = harness(TimeoutSeconds=30)
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    h.advance(20)
    h.service.send_task_heartbeat({"taskToken": token})
    h.advance(10)
    assert failures(h, arn) == [{"error": "States.Timeout", "cause": "The task timed out."}]
    assert refused(h.service.send_task_success, {"taskToken": token, "output": "{}"}) == (
        "TaskTimedOut"
    )


def test_without_heartbeat_seconds_an_expired_lease_goes_to_another_worker() -> None:
    h = harness()
    arn = h.start({"job": 1})
    first = h.poll("jobs", "a")  # worker a dies holding the task
    h.advance(59)
    assert h.poll("jobs", "b") == {}
    h.advance(1)
    second = h.poll("jobs", "b")
    assert second["input"] == first["input"]
    assert second["taskToken"] != first["taskToken"]
    before = h.history(arn)
    # a comes back late: its delivery was superseded, so it is refused and changes nothing.
    assert refused(h.service.send_task_success, {"taskToken": first["taskToken"], "output": "1"})
    assert refused(h.service.send_task_heartbeat, {"taskToken": first["taskToken"]})
    assert h.history(arn) == before
    succeed(h, second["taskToken"], {"by": "b"})
    assert h.status(arn) == "SUCCEEDED"
    assert h.output(arn) == {"by": "b"}
    assert h.types(arn).count("ActivitySucceeded") == 1
    assert h.types(arn).count("ActivityStarted") == 1


def test_a_task_whose_lease_keeps_expiring_fails_after_the_delivery_limit() -> None:
    h = harness()
    arn = h.start()
    for _ in range(3):  # max_deliveries=3 hand-outs, every worker dies
        assert h.poll("jobs")
        h.advance(60)
    assert h.poll("jobs") == {}
    assert failures(h, arn)[0]["error"] == "States.TaskFailed"
    assert "expired 3 times" in failures(h, arn)[0]["cause"]
    assert h.status(arn) == "SUCCEEDED"  # caught by States.ALL
    assert h.queue.pending("jobs") == 0


def test_double_completion_adds_nothing() -> None:
    h = harness()
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    assert succeed(h, token) == {}
    done = h.history(arn)
    record = h.log.get(arn)
    assert refused(h.service.send_task_success, {"taskToken": token, "output": "{}"}) == (
        "TaskTimedOut"
    )
    assert refused(h.service.send_task_failure, {"taskToken": token, "error": "E"}) == (
        "TaskTimedOut"
    )
    assert h.history(arn) == done
    assert h.log.get(arn) == record


def test_two_workers_racing_to_complete_one_task_exactly_one_wins() -> None:
    # GIVEN two workers holding the same token (one duplicated its task)
    h = harness()
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    outcomes: list[str] = []
    commit = h.log.commit
    raced = False

    def racing_commit(
        record: ExecutionRecord, expected: int, events: Any, *, fence: Any = None
    ) -> None:
        # WHEN the second worker's result lands while the first one is committing
        nonlocal raced
        if not raced:
            raced = True
            outcomes.append("second: " + str(succeed(h, token, {"by": "second"})))
        commit(record, expected, events, fence=fence)

    h.log.commit = racing_commit  # type: ignore[method-assign,assignment]
    with pytest.raises(ActivityError) as lost:
        succeed(h, token, {"by": "first"})
    # THEN the first one's commit lost the race and it is refused
    assert lost.value.code == "TaskTimedOut"
    assert outcomes == ["second: {}"]
    assert h.types(arn).count("ActivitySucceeded") == 1
    assert h.output(arn) == {"by": "second"}


def test_a_failure_report_is_caught_like_any_task_error() -> None:
    h = harness()
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    h.service.send_task_failure({"taskToken": token, "error": "Boom", "cause": "it broke"})
    assert failures(h, arn) == [{"error": "Boom", "cause": "it broke"}]
    assert h.status(arn) == "SUCCEEDED"


def test_a_released_task_goes_to_the_next_worker_at_once() -> None:
    h = harness()
    arn = h.start()
    first = h.poll("jobs", "leaving")["taskToken"]
    h.service.release_task({"taskToken": first})
    second = h.poll("jobs", "next")["taskToken"]
    assert refused(h.service.send_task_success, {"taskToken": first, "output": "{}"})
    succeed(h, second)
    assert h.status(arn) == "SUCCEEDED"


def test_retry_makes_a_new_attempt_with_a_new_token() -> None:
    h = Harness(
        task_machine(
            activity("jobs"),
            TimeoutSeconds=5,
            Retry=[{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}],
        )
    )
    h.service.create_activity({"name": "jobs"})
    arn = h.start()
    old = h.poll("jobs")["taskToken"]
    h.advance(5)  # timed out ...
    h.advance(1)  # ... and retried
    new = h.poll("jobs")["taskToken"]
    assert old.split(".")[1] != new.split(".")[1]
    assert refused(h.service.send_task_success, {"taskToken": old, "output": "{}"})
    succeed(h, new, {"second": "attempt"})
    assert h.output(arn) == {"second": "attempt"}


def test_activity_tasks_of_child_executions_are_located_by_their_tokens() -> None:
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {"Work": {"Type": "Task", "Resource": activity("jobs"), "End": True}},
                },
                "End": True,
            }
        },
    }
    h = Harness(definition, child_limit=1)
    h.service.create_activity({"name": "jobs"})
    arn = h.start([1, 2, 3])
    seen = []
    while task := h.poll("jobs"):
        item = json.loads(task["input"])
        seen.append(item)
        succeed(h, task["taskToken"], item * 10)
        h.advance(0)
    assert sorted(seen) == [1, 2, 3]
    assert h.status(arn) == "SUCCEEDED"
    assert h.output(arn) == [10, 20, 30]


def test_released_tasks_do_not_count_against_the_expiry_limit() -> None:
    h = harness()  # max_deliveries=3
    arn = h.start()
    for _ in range(5):  # workers shutting down give it back, again and again
        h.service.release_task({"taskToken": h.poll("jobs")["taskToken"]})
    for _ in range(2):  # then two leases run out
        assert h.poll("jobs")
        h.advance(60)
    last = h.poll("jobs")
    succeed(h, last["taskToken"])
    assert h.status(arn) == "SUCCEEDED"
    assert failures(h, arn) == []


def test_other_commits_keep_the_leases_of_tasks_still_open() -> None:
    branch = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": activity("jobs"), "End": True}},
    }
    h = Harness(
        {
            "StartAt": "Both",
            "States": {"Both": {"Type": "Parallel", "Branches": [branch, branch], "End": True}},
        }
    )
    h.service.create_activity({"name": "jobs"})
    arn = h.start({"x": 1})
    first, second = h.poll("jobs"), h.poll("jobs")
    succeed(h, first["taskToken"], "one")  # a commit that is not about the second task
    record = h.log.get(arn)
    assert record is not None
    lease = h.log.lease(arn, second["taskToken"].split(".")[1])
    assert lease is not None and lease.delivery == 1 and lease.live(h.now)
    succeed(h, second["taskToken"], "two")
    assert sorted(h.output(arn)) == ["one", "two"]
    assert h.log.get(arn).attributes == {}  # type: ignore[union-attr]
