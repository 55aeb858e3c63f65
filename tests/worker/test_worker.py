"""The worker SDK in-process: concurrency, failures, heartbeats, lost leases, drain, health."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from stepflow.worker import HealthServer, ServiceClient, TaskContext, Worker, idempotency_key

from tests.worker.harness import Harness, activity, task_machine

WAIT = 10.0  # generous bound for thread hand-offs; never reached when things work


def harness(**task: Any) -> Harness:
    h = Harness(task_machine(activity("jobs"), **task))
    h.service.create_activity({"name": "jobs"})
    return h


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(WAIT)


def client(h: Harness) -> ServiceClient:
    return ServiceClient(h.service, wait_seconds=0.05)


def test_tasks_run_with_bounded_concurrency_and_their_results_flow_on() -> None:
    h = harness()
    arns = [h.start({"n": i}) for i in range(8)]
    lock = threading.Lock()
    active, peak, keys = [0], [0], set()
    together = threading.Barrier(4, timeout=WAIT)

    def handler(task: Any, context: TaskContext) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            keys.add(context.idempotency_key)
        if task["n"] < 4:
            together.wait()  # the first four really run at the same time
        with lock:
            active[0] -= 1
        return {"double": task["n"] * 2}

    worker = Worker(client(h), activity("jobs"), handler, concurrency=4, heartbeat_seconds=60)
    with running(worker):
        for _ in range(int(WAIT / 0.01)):
            if worker.counts["succeeded"] == 8:
                break
            threading.Event().wait(0.01)
    assert [h.status(arn) for arn in arns] == ["SUCCEEDED"] * 8
    assert [h.output(arn) for arn in arns] == [{"double": i * 2} for i in range(8)]
    assert peak[0] == 4
    assert len(keys) == 8
    assert worker.counts["succeeded"] == 8


def until(condition: Any) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


def test_a_handler_exception_becomes_send_task_failure() -> None:
    h = harness()
    arn = h.start()

    class OutOfStock(Exception):
        pass

    def handler(task: Any, context: TaskContext) -> Any:
        raise OutOfStock("no widgets left")

    worker = Worker(client(h), activity("jobs"), handler, concurrency=1)
    with running(worker):
        until(lambda: worker.counts["failed"] == 1)
    [failed] = [e for e in h.history(arn) if e["type"] == "ActivityFailed"]
    assert failed["activityFailedEventDetails"] == {
        "error": "OutOfStock",
        "cause": "no widgets left",
    }


def test_heartbeats_are_sent_while_a_handler_runs() -> None:
    h = harness(HeartbeatSeconds=30)
    arn = h.start()
    service_client = client(h)
    beats: list[str] = []
    beat = service_client.send_task_heartbeat

    def counting(**kwargs: Any) -> Any:
        beats.append(kwargs["taskToken"])
        return beat(**kwargs)

    service_client.send_task_heartbeat = counting  # type: ignore[method-assign]
    enough = threading.Event()

    def handler(task: Any, context: TaskContext) -> Any:
        until(lambda: len(beats) >= 3)
        enough.set()
        return "ok"

    worker = Worker(service_client, activity("jobs"), handler, heartbeat_seconds=0.01)
    with running(worker):
        until(lambda: worker.counts["succeeded"] == 1)
    assert enough.is_set()
    assert h.status(arn) == "SUCCEEDED"


def test_a_refused_heartbeat_marks_the_task_lost_and_its_result_is_not_sent() -> None:
    h = harness(HeartbeatSeconds=10)
    arn = h.start()
    in_hand = threading.Event()

    def handler(task: Any, context: TaskContext) -> Any:
        in_hand.set()
        assert context.lost.wait(WAIT)  # the lease went: stop early
        return "too late"

    worker = Worker(client(h), activity("jobs"), handler, heartbeat_seconds=0.02)
    # Heartbeats happen in real time but the clock is virtual: time the task out by hand.
    with running(worker):
        assert in_hand.wait(WAIT)
        h.advance(10)
        until(lambda: worker.counts["refused"] == 1)
    timed_out = [e for e in h.history(arn) if e["type"] == "ActivityTimedOut"]
    assert timed_out[0]["activityTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"
    assert "ActivitySucceeded" not in h.types(arn)


def test_stop_lets_tasks_in_hand_finish_within_the_grace_period() -> None:
    h = harness()
    arn = h.start()
    in_hand, finish = threading.Event(), threading.Event()

    def handler(task: Any, context: TaskContext) -> Any:
        in_hand.set()
        finish.wait(WAIT)
        return "finished"

    worker = Worker(client(h), activity("jobs"), handler, grace_seconds=WAIT)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert in_hand.wait(WAIT)
    worker.stop("test")
    assert worker.status()["status"] == "draining"
    finish.set()
    thread.join(WAIT)
    assert worker.status()["status"] == "stopped"
    assert h.status(arn) == "SUCCEEDED"
    assert worker.counts["released"] == 0


def test_stop_releases_what_does_not_finish_in_time_to_the_next_worker_at_once() -> None:
    h = harness()
    arn = h.start({"n": 1})
    in_hand, never = threading.Event(), threading.Event()

    def stuck(task: Any, context: TaskContext) -> Any:
        in_hand.set()
        never.wait(WAIT)
        return "never reported"

    worker = Worker(client(h), activity("jobs"), stuck, grace_seconds=0)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert in_hand.wait(WAIT)
    worker.stop()
    thread.join(WAIT)
    assert worker.counts["released"] == 1
    # No lease to wait for (the clock does not even move): the next worker gets it now.
    task = h.poll("jobs", "next")
    assert json.loads(task["input"]) == {"n": 1}
    h.service.send_task_success({"taskToken": task["taskToken"], "output": '"rescued"'})
    never.set()
    assert h.output(arn) == "rescued"
    assert h.types(arn).count("ActivitySucceeded") == 1


def test_the_idempotency_key_is_per_attempt_not_per_delivery() -> None:
    h = harness()
    h.start()
    first = h.poll("jobs")["taskToken"]
    h.advance(60)  # the lease runs out: a second delivery of the same attempt
    second = h.poll("jobs")["taskToken"]
    assert first != second
    assert idempotency_key(first) == idempotency_key(second)
    h.start()
    other = h.poll("jobs")["taskToken"]
    assert idempotency_key(other) != idempotency_key(first)


def test_the_health_endpoint_reports_ok_then_draining() -> None:
    h = harness()
    worker = Worker(client(h), activity("jobs"), lambda task, context: task)
    health = HealthServer(worker.status, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{health.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            body = json.loads(response.read())
        assert (response.status, body["status"], body["in_flight"]) == (200, "ok", 0)
        worker.stop()
        with pytest.raises(urllib.error.HTTPError) as draining:
            urllib.request.urlopen(url, timeout=WAIT)
        assert draining.value.code == 503
        assert json.loads(draining.value.read())["status"] == "draining"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url.replace("/health", "/nope"), timeout=WAIT)
        assert missing.value.code == 404
    finally:
        health.stop()
