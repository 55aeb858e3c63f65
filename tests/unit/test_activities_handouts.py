"""One lease record per delivery: exactly-once hand-outs and whole, current tokens (in memory).

GIVEN executions waiting on activity or callback tasks, WHEN pollers race for
the same queue message or a token is truncated or altered, THEN each delivery
goes to one poller and every token but the whole, current one is refused
without a single write to the log.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from stepflow.activities import ActivityError
from stepflow.runtime import TaskOutcome
from stepflow.runtime.task_queue import InMemoryTaskQueue, Lease

from tests.worker.harness import Harness, activity, task_machine

LAMBDA_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"


class EchoingQueue:
    """A task queue that, like SQS under load, hands each message to a second receiver too."""

    def __init__(self, inner: InMemoryTaskQueue) -> None:
        self.inner = inner
        self._echoes: list[Lease] = []
        self._lock = threading.Lock()
        self.receives = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def receive(self, name: str, *, lease_seconds: int, wait_seconds: float = 0) -> Lease | None:
        with self._lock:
            if self._echoes:
                echo = self._echoes.pop()
                self.receives += 1
                return replace(echo, receive_count=echo.receive_count + 1)
        lease = self.inner.receive(name, lease_seconds=lease_seconds, wait_seconds=wait_seconds)
        if lease is not None:
            with self._lock:
                self._echoes.append(lease)
                self.receives += 1
        return lease


def code_of(call: Any, params: dict[str, Any]) -> str:
    with pytest.raises(ActivityError) as refused:
        call(params)
    return str(refused.value.code)


@pytest.mark.parametrize(("tasks", "pollers"), [(20, 8), (3, 4)])
def test_racing_pollers_on_a_duplicating_queue_get_each_task_once(tasks: int, pollers: int) -> None:
    # GIVEN executions waiting on one activity task each, on a queue that delivers twice
    h = Harness(task_machine(activity("jobs")), lease_seconds=60)
    h.service.create_activity({"name": "jobs"})
    queue = EchoingQueue(h.queue)
    h.service.queue = queue  # type: ignore[assignment]
    arns = [h.start({"i": i}) for i in range(tasks)]
    handed: list[str] = []
    runs: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(pollers)

    def poll(n: int) -> None:
        start.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(h.status(arn) == "RUNNING" for arn in arns):
            task = h.service.get_activity_task(
                {"activityArn": activity("jobs"), "workerName": f"p{n}", "waitSeconds": 0}
            )
            if "taskToken" in task:
                payload = json.loads(task["input"])
                with lock:
                    handed.append(task["taskToken"])
                    runs[payload["i"]] += 1
                h.service.send_task_success({"taskToken": task["taskToken"], "output": "{}"})

    # WHEN pollers race for them in threads
    threads = [threading.Thread(target=poll, args=(n,)) for n in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # THEN each task went to one poller, once, though the queue delivered it twice
    assert queue.receives > tasks  # echoes were received
    assert (len(handed), len(set(handed))) == (tasks, tasks)
    assert runs == Counter(range(tasks))
    assert [h.status(arn) for arn in arns] == ["SUCCEEDED"] * tasks
    assert all(h.types(arn).count("ActivityStarted") == 1 for arn in arns)


def variants(token: str) -> list[str]:
    """Every proper prefix of ``token`` and every single-character alteration of it."""
    altered = [token[:i] + ("A" if c != "A" else "B") + token[i + 1 :] for i, c in enumerate(token)]
    dotted = [token[:i] + "." + token[i + 1 :] for i, c in enumerate(token) if c != "."]
    extended = [token + "x", token + ".0", token + "." + token.rsplit(".", 1)[-1], token * 200]
    return [token[:n] for n in range(len(token))] + altered + dotted + extended


def assert_all_refused(h: Harness, arn: str, token: str) -> None:
    writes, history = h.log.writes, h.history(arn)
    for bad in variants(token):
        for call in (h.service.send_task_success, h.service.send_task_heartbeat):
            code = code_of(call, {"taskToken": bad, "output": "{}"})
            assert code in ("InvalidToken", "TaskTimedOut"), bad
    assert h.log.writes == writes  # not one write, for thousands of refusals
    assert h.history(arn) == history
    assert h.status(arn) == "RUNNING"


def test_every_truncated_or_altered_activity_token_is_refused_without_a_write() -> None:
    h = Harness(task_machine(activity("jobs")))
    h.service.create_activity({"name": "jobs"})
    arn = h.start()
    token = h.poll("jobs")["taskToken"]
    # GIVEN its delivery suffix removed, the token looks like a callback token: refused
    base = token.rsplit(".", 2)[0]
    assert code_of(h.service.send_task_success, {"taskToken": base, "output": "{}"}) == (
        "InvalidToken"
    )
    assert_all_refused(h, arn, token)
    # AND the whole token still works, once: a replay is refused and writes nothing
    h.service.send_task_success({"taskToken": token, "output": '{"ok": 1}'})
    assert h.status(arn) == "SUCCEEDED"
    writes = h.log.writes
    assert code_of(h.service.send_task_success, {"taskToken": token, "output": "{}"}) in (
        "TaskTimedOut",
        "InvalidToken",
    )
    assert h.log.writes == writes
    assert h.types(arn).count("ActivitySucceeded") == 1


def test_every_truncated_or_altered_callback_token_is_refused_without_a_write() -> None:
    tokens: list[str] = []

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        tokens.append(body["input"]["Payload"]["token"])
        return TaskOutcome.succeeded({})

    machine = task_machine(
        LAMBDA_WAIT, Parameters={"FunctionName": "f", "Payload": {"token.$": "$$.Task.Token"}}
    )
    h = Harness(machine, invoker=invoke)
    arn = h.start()
    [token] = tokens
    # GIVEN a delivery suffix added to a callback token (forged): refused too
    forged = f"{token}.1.{'0' * 32}"
    assert code_of(h.service.send_task_success, {"taskToken": forged, "output": "{}"}) == (
        "InvalidToken"
    )
    assert_all_refused(h, arn, token)
    h.service.send_task_success({"taskToken": token, "output": '{"ok": 1}'})
    assert h.status(arn) == "SUCCEEDED"


def test_a_worker_whose_lease_expired_cannot_complete_and_the_current_holder_can() -> None:
    h = Harness(task_machine(activity("jobs")), lease_seconds=60)
    h.service.create_activity({"name": "jobs"})
    arn = h.start()
    stale = h.poll("jobs", "late")["taskToken"]
    h.advance(61)  # its lease ran out
    current = h.poll("jobs", "current")["taskToken"]
    writes = h.log.writes
    for token in (stale, stale.rsplit(".", 2)[0]):  # whole, or with its delivery removed
        assert code_of(h.service.send_task_success, {"taskToken": token, "output": "1"}) in (
            "TaskTimedOut",
            "InvalidToken",
        )
        assert code_of(h.service.release_task, {"taskToken": token}) in (
            "TaskTimedOut",
            "InvalidToken",
        )
    assert h.log.writes == writes
    h.service.send_task_success({"taskToken": current, "output": '"mine"'})
    assert (h.status(arn), h.output(arn)) == ("SUCCEEDED", "mine")


class SlowHandOutQueue(EchoingQueue):
    """A queue whose receive returns half a second after it started the visibility timeout."""

    def __init__(self, inner: InMemoryTaskQueue, h: Harness) -> None:
        super().__init__(inner)
        self.h = h

    def receive(self, name: str, *, lease_seconds: int, wait_seconds: float = 0) -> Lease | None:
        lease = self.inner.receive(name, lease_seconds=lease_seconds, wait_seconds=wait_seconds)
        if lease is not None:
            self.h.bus.now += 0.5
        return lease


def test_a_redelivery_right_after_the_visibility_timeout_is_handed_out() -> None:
    # GIVEN a hand-out that records its lease half a second after the queue's timer started
    h = Harness(task_machine(activity("jobs")), lease_seconds=60)
    h.service.create_activity({"name": "jobs"})
    h.service.queue = SlowHandOutQueue(h.queue, h)  # type: ignore[assignment]
    arn = h.start()
    stale = h.poll("jobs", "dies")["taskToken"]
    # WHEN the queue delivers the message again as soon as its visibility ran out
    h.advance(59.5)
    again = h.poll("jobs", "next")
    # THEN the lease record has run out too: the task goes to the next worker at once
    assert "taskToken" in again and again["taskToken"] != stale
    h.service.send_task_success({"taskToken": again["taskToken"], "output": "{}"})
    assert h.status(arn) == "SUCCEEDED"


def test_a_heartbeat_after_a_release_is_refused_and_the_task_stays_free() -> None:
    # GIVEN a worker that gave its task back (a shutdown) while its heartbeat thread still ran
    h = Harness(task_machine(activity("jobs")), lease_seconds=600)
    h.service.create_activity({"name": "jobs"})
    arn = h.start()
    token = h.poll("jobs", "leaving")["taskToken"]
    h.service.release_task({"taskToken": token})
    writes = h.log.writes
    # WHEN that late heartbeat arrives
    assert code_of(h.service.send_task_heartbeat, {"taskToken": token}) == "TaskTimedOut"
    # THEN nothing is written and the next poll gets the task at once (no hidden message)
    assert h.log.writes == writes
    again = h.poll("jobs", "next")
    assert "taskToken" in again
    h.service.send_task_success({"taskToken": again["taskToken"], "output": '"done"'})
    assert (h.status(arn), h.output(arn)) == ("SUCCEEDED", "done")


def repairs(h: Harness) -> int:
    return sum(1 for message in h.bus.sent if message.kind == "repair")


def test_a_repair_message_precedes_only_commits_with_messages_to_send() -> None:
    # GIVEN a stepper that sends a delayed repair message before a commit (the API's)
    h = Harness(task_machine(activity("jobs")), lease_seconds=600)
    h.stepper.repair_delay = 60
    h.service.create_activity({"name": "jobs"})
    # WHEN an execution starts: its first commit holds the activity task to send
    arn = h.start()
    assert repairs(h) == 1
    # a hand-out and a heartbeat write the log but leave nothing to send: no repair message
    token = h.poll("jobs", "w")["taskToken"]
    h.service.send_task_heartbeat({"taskToken": token})
    assert repairs(h) == 1
    # the result's commit schedules the next state's messages (the end: none to send)
    h.service.send_task_success({"taskToken": token, "output": "{}"})
    assert h.status(arn) == "SUCCEEDED"
    assert repairs(h) == 1
