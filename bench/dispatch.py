"""Deferred-task dispatch: latency (schedule -> worker receives) and one worker's throughput.

Everything runs in this one process against moto (in-process, ``mock_aws``):
the coordination log is ``DynamoDBLog`` on moto DynamoDB, activity task queues
are ``SQSTaskQueue`` on moto SQS, and one ``stepflow.worker.Worker`` leases
tasks through ``ActivityService`` (via ``ServiceClient``) with ``--concurrency``
threads. The transition bus is in memory (activity tasks do not use it).

* latency: one execution at a time, the worker idle and polling; measured from
  just before StartExecution (which commits the schedule and sends the task to
  SQS) until the handler runs. Median and p95 over ``--latency-runs``.
* throughput: ``--tasks`` executions scheduled first, then the worker started;
  tasks per second from its start until every execution has SUCCEEDED. Each
  task costs GetActivityTask (SQS receive + a guarded commit of ActivityStarted)
  and SendTaskSuccess (a guarded commit + SQS delete).

moto is not thread-safe (two threads' transactions interleave, one SQS message
reaches two receivers), so every moto call goes through one lock here and a long
poll is a 0 s receive followed by a 5 ms pause outside the lock. Real DynamoDB
and SQS need neither. Figures against the local stack (``stepflow local``, over HTTP) are left for
when its API exposes the activity operations.

Run: ``.venv/bin/python bench/dispatch.py [--tasks 300] [--latency-runs 50] [--concurrency 8]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3
from moto import mock_aws
from stepflow.activities import ActivityRouter, ActivityService
from stepflow.asl import parse
from stepflow.aws.dynamodb_log import DynamoDBLog, create_table
from stepflow.aws.sqs_task_queue import SQSTaskQueue
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog, Stepper
from stepflow.runtime.task_queue import InMemoryTaskQueue
from stepflow.worker import ServiceClient, TaskContext, Worker

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Dispatch"
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:bench"
DEFINITION = {
    "StartAt": "Work",
    "States": {"Work": {"Type": "Task", "Resource": ACTIVITY, "End": True}},
}


MOTO_LOCK = threading.Lock()
POLL_PAUSE = 0.005


class Serialized:
    """A boto3 client whose calls take turns (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            waits = kwargs.pop("WaitTimeSeconds", 0) if name == "receive_message" else 0
            with MOTO_LOCK:
                result = method(*args, **kwargs)
            if waits and not result.get("Messages"):
                time.sleep(POLL_PAUSE)
            return result

        return call


def build_memory() -> tuple[Stepper, ActivityService, CoordinationLog]:
    """The same on the in-memory twins: what the runtime itself costs, without moto."""
    log, bus, queue = InMemoryLog(), InMemoryBus(), InMemoryTaskQueue()
    machine = parse(DEFINITION)
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=time.time,
        invoker=lambda body: (False, None, "Unexpected", "inline"),
        router=ActivityRouter(queue, bus),
    )
    service = ActivityService(stepper=stepper, queue=queue)
    service.create_activity({"name": "bench"})
    return stepper, service, log


def build() -> tuple[Stepper, ActivityService, CoordinationLog]:
    create_table(boto3.client("dynamodb"), "bench-log")
    ddb = Serialized(boto3.client("dynamodb"))
    log = DynamoDBLog("bench-log", client=ddb)
    queue = SQSTaskQueue(client=Serialized(boto3.client("sqs")), prefix="bench-tq-")
    bus = InMemoryBus()
    machine = parse(DEFINITION)
    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=time.time,
        invoker=lambda body: (False, None, "Unexpected", "inline"),
        router=ActivityRouter(queue, bus),
    )
    service = ActivityService(stepper=stepper, queue=queue)
    service.create_activity({"name": "bench"})
    return stepper, service, log


def latency(stepper: Stepper, service: ActivityService, runs: int, concurrency: int) -> list[float]:
    received: dict[int, float] = {}
    arrived = threading.Condition()

    def handler(task: Any, context: TaskContext) -> Any:
        with arrived:
            received[task["n"]] = time.perf_counter()
            arrived.notify_all()
        return {}

    client = ServiceClient(service, wait_seconds=1)
    worker = Worker(client, ACTIVITY, handler, concurrency=concurrency, heartbeat_seconds=60)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)  # the pollers are waiting
    samples = []
    for n in range(runs):
        t0 = time.perf_counter()
        stepper.start_execution(state_machine_arn=SM, name=f"lat-{n}", input={"n": n}, seed=n)
        with arrived:
            arrived.wait_for(lambda n=n: n in received, timeout=30)
        samples.append(received[n] - t0)
    worker.stop()
    thread.join(30)
    return samples


def throughput(
    stepper: Stepper, service: ActivityService, log: CoordinationLog, tasks: int, concurrency: int
) -> tuple[float, float]:
    arns = []
    t0 = time.perf_counter()
    for n in range(tasks):
        record = stepper.start_execution(
            state_machine_arn=SM, name=f"tp-{n}", input={"n": n}, seed=n
        )
        arns.append(record.execution_arn)
    scheduling = time.perf_counter() - t0
    client = ServiceClient(service, wait_seconds=1)
    worker = Worker(client, ACTIVITY, lambda task, ctx: task, concurrency=concurrency)
    thread = threading.Thread(target=worker.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    while worker.counts["succeeded"] < tasks:
        time.sleep(0.01)
        if time.perf_counter() - start > 600:
            raise SystemExit(f"stalled: {worker.status()}")
    elapsed = time.perf_counter() - start
    worker.stop()
    thread.join(30)
    finished = [log.get(arn) for arn in arns]
    assert all(r is not None and r.status == "SUCCEEDED" for r in finished)
    return tasks / elapsed, tasks / scheduling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"date: {time.strftime('%Y-%m-%d')}")
    with mock_aws():
        report("moto (DynamoDB log + SQS task queue)", build(), args)
    report("in memory (InMemoryLog + InMemoryTaskQueue)", build_memory(), args)


def report(label: str, built: tuple[Stepper, ActivityService, CoordinationLog], args: Any) -> None:
    stepper, service, log = built
    samples = latency(stepper, service, args.latency_runs, args.concurrency)
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{label}:")
    print(
        f"  dispatch latency (schedule -> handler), {len(ms)} runs: "
        f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"
    )
    rate, scheduled = throughput(stepper, service, log, args.tasks, args.concurrency)
    print(
        f"  throughput, one worker process, concurrency {args.concurrency}: "
        f"{rate:.0f} tasks/s over {args.tasks} tasks (scheduling: {scheduled:.0f} executions/s)"
    )


if __name__ == "__main__":
    main()
