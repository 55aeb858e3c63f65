"""Deferred-task dispatch: latency (schedule -> worker receives) and one worker's throughput.

Three setups, in this order:

* local stack: ``stepflow local`` started as its own process (moto server,
  the API Gateway stand-in, the SQS pollers running the stepper); this
  process runs one ``stepflow.worker.Worker`` over boto3's ``stepfunctions``
  client, exactly as ``stepflow worker`` does against a deployment. Executions
  are started through the same API.
* moto in-process: the coordination log is ``DynamoDBLog`` on moto DynamoDB, activity task queues
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
and SQS need neither.
* in memory: the same on ``InMemoryLog`` and ``InMemoryTaskQueue``.

Run: ``.venv/bin/python bench/dispatch.py [--tasks 300] [--latency-runs 50] [--concurrency 8]
[--only local|moto|memory]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
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
from stepflow.local import free_port
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog, Stepper, TaskOutcome
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
        invoker=lambda body: TaskOutcome.failed("Unexpected", "inline"),
        router=ActivityRouter(queue, bus, signer=bus.signer),
    )
    service = ActivityService(stepper=stepper, queue=queue, signer=bus.signer)
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
        invoker=lambda body: TaskOutcome.failed("Unexpected", "inline"),
        router=ActivityRouter(queue, bus, signer=bus.signer),
    )
    service = ActivityService(stepper=stepper, queue=queue, signer=bus.signer)
    service.create_activity({"name": "bench"})
    return stepper, service, log


@contextmanager
def local_stack() -> Iterator[Any]:
    """``stepflow local`` in its own process; yields a boto3 Step Functions client for it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stepflow", "local", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "StepFlow local stack" in line:
                break
        else:
            raise SystemExit("stepflow local exited before it was ready")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep draining
        yield boto3.client(
            "stepfunctions",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    finally:
        process.terminate()
        process.wait(30)


class OverApi:
    """The bench's view of a running stack reached only through its Step Functions API."""

    def __init__(self, sfn: Any) -> None:
        self.sfn = sfn
        self.activity = sfn.create_activity(name="bench")["activityArn"]
        definition = {
            "StartAt": "Work",
            "States": {"Work": {"Type": "Task", "Resource": self.activity, "End": True}},
        }
        self.machine = sfn.create_state_machine(
            name="Dispatch",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::000000000000:role/StepFlowLocal",
        )["stateMachineArn"]

    def start(self, name: str, payload: Any) -> str:
        return str(
            self.sfn.start_execution(
                stateMachineArn=self.machine, name=name, input=json.dumps(payload)
            )["executionArn"]
        )

    def all_succeeded(self, arns: list[str]) -> bool:
        return all(
            self.sfn.describe_execution(executionArn=a)["status"] == "SUCCEEDED" for a in arns
        )


class InProcess:
    """The same view over a Stepper and ActivityService in this process."""

    def __init__(self, built: tuple[Stepper, ActivityService, CoordinationLog]) -> None:
        self.stepper, service, self.log = built
        self.activity = ACTIVITY
        self.sfn = ServiceClient(service, wait_seconds=1)
        self.seeds = itertools.count()

    def start(self, name: str, payload: Any) -> str:
        record = self.stepper.start_execution(
            state_machine_arn=SM, name=name, input=payload, seed=next(self.seeds)
        )
        return record.execution_arn

    def all_succeeded(self, arns: list[str]) -> bool:
        records = [self.log.get(arn) for arn in arns]
        return all(r is not None and r.status == "SUCCEEDED" for r in records)


Target = OverApi | InProcess


def latency(target: Target, runs: int, concurrency: int) -> list[float]:
    received: dict[int, float] = {}
    arrived = threading.Condition()

    def handler(task: Any, context: TaskContext) -> Any:
        with arrived:
            received[task["n"]] = time.perf_counter()
            arrived.notify_all()
        return {}

    worker = Worker(target.sfn, target.activity, handler, concurrency=concurrency)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)  # the pollers are waiting
    samples = []
    for n in range(runs):
        t0 = time.perf_counter()
        target.start(f"lat-{n}", {"n": n})
        with arrived:
            if not arrived.wait_for(partial(operator.contains, received, n), timeout=60):
                raise SystemExit(f"task {n} never reached the worker: {worker.status()}")
        samples.append(received[n] - t0)
    worker.stop()
    thread.join(60)
    return samples


def throughput(target: Target, tasks: int, concurrency: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    arns = [target.start(f"tp-{n}", {"n": n}) for n in range(tasks)]
    scheduling = time.perf_counter() - t0
    worker = Worker(target.sfn, target.activity, lambda task, ctx: task, concurrency=concurrency)
    thread = threading.Thread(target=worker.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    while worker.counts["succeeded"] < tasks:
        time.sleep(0.01)
        if time.perf_counter() - start > 600:
            raise SystemExit(f"stalled: {worker.status()}")
    elapsed = time.perf_counter() - start
    worker.stop()
    thread.join(60)
    deadline = time.monotonic() + 60  # the stepper commits the last results asynchronously
    while not target.all_succeeded(arns):
        if time.monotonic() > deadline:
            raise SystemExit("not every execution SUCCEEDED")
        time.sleep(0.2)
    return tasks / elapsed, tasks / scheduling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["local", "moto", "memory"])
    args = parser.parse_args()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"date: {time.strftime('%Y-%m-%d')}")
    runs: dict[str, Callable[[], None]] = {
        "local": lambda: run_local(args),
        "moto": lambda: run_moto(args),
        "memory": lambda: report(
            "in memory (InMemoryLog + InMemoryTaskQueue)", InProcess(build_memory()), args
        ),
    }
    for name, run in runs.items():
        if args.only in (None, name):
            run()


def run_local(args: Any) -> None:
    with local_stack() as sfn:
        report("local stack (stepflow local over HTTP, worker over boto3)", OverApi(sfn), args)


def run_moto(args: Any) -> None:
    with mock_aws():
        report("moto in-process (DynamoDB log + SQS task queue)", InProcess(build()), args)


def report(label: str, target: Target, args: Any) -> None:
    samples = latency(target, args.latency_runs, args.concurrency)
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{label}:")
    print(
        f"  dispatch latency (schedule -> handler), {len(ms)} runs: "
        f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"
    )
    rate, scheduled = throughput(target, args.tasks, args.concurrency)
    print(
        f"  throughput, one worker process, concurrency {args.concurrency}: "
        f"{rate:.0f} tasks/s over {args.tasks} tasks (scheduling: {scheduled:.0f} executions/s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
