"""Live updates: events per second streamed and latency from commit to client (SSE).

Two runs: (1) the live route over the in-memory log behind the local gateway, a
writer committing ``--events`` events in commits of ``--per-commit`` while one
client streams them; latency is the client's receive time minus the commit's
(same process clock); (2) ``stepflow local`` on moto: the history of a finished
inline Map over ``--items`` items streamed from the start (the read rate).

Reproduce: .venv/bin/python bench/live_stream.py --events 5000 --items 200
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time

from stepflow.live.sse import LiveRoute
from stepflow.live.sse_client import follow
from stepflow.local import LocalStack
from stepflow.local.gateway import Gateway
from stepflow.runtime.memory import InMemoryLog
from stepflow.runtime.ports import ExecutionRecord

ARN = "arn:aws:states:us-east-1:000000000000:execution:bench:run"
WORK = "arn:aws:lambda:us-east-1:000000000000:function:work"
MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {"Work": {"Type": "Task", "Resource": WORK, "End": True}},
            },
            "End": True,
        }
    },
}


def _summary(label: str, count: int, seconds: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(
        f"{label}: {count} events in {seconds:.2f} s = {count / seconds:,.0f} events/s; "
        f"latency commit->client median {statistics.median(ordered) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def in_memory(events: int, per_commit: int, interval: float) -> None:
    """The route over the in-memory log: the driver's own cost, no store latency."""
    log = InMemoryLog()
    record = ExecutionRecord(ARN, "arn:m", "run", {}, "RUNNING", 0, {})
    committed: dict[int, float] = {}
    log.create(record, [{"id": 1, "type": "ExecutionStarted", "timestamp": 0.0}])
    committed[1] = time.perf_counter()
    route = LiveRoute(log, interval=interval)
    gateway = Gateway("127.0.0.1", 0, lambda e, c: {"statusCode": 404}, routes=[route]).start()
    received: dict[int, float] = {}

    def listen() -> None:
        for event in follow(gateway.url, ARN):
            received[event["id"]] = time.perf_counter()

    listener = threading.Thread(target=listen)
    listener.start()
    start = time.perf_counter()
    seq, next_id = 0, 2
    while next_id <= events:
        last = min(events, next_id + per_commit - 1)
        batch = [
            {"id": i, "type": "ExecutionSucceeded" if i == events else "PassStateEntered"}
            for i in range(next_id, last + 1)
        ]
        record = ExecutionRecord(ARN, "arn:m", "run", {}, "RUNNING", seq + 1, {})
        log.commit(record, seq, batch)
        now = time.perf_counter()
        committed.update(dict.fromkeys(range(next_id, last + 1), now))
        seq, next_id = seq + 1, last + 1
        time.sleep(0.001)
    listener.join()
    took = time.perf_counter() - start
    gateway.stop()
    assert sorted(received) == list(range(1, events + 1))
    lat = [received[i] - committed[i] for i in range(2, events + 1)]
    _summary(f"in-memory log, poll {interval * 1000:.0f} ms", events, took, lat)


def on_moto(items: int) -> None:
    """``stepflow local`` on moto: a finished execution's history streamed from the start.

    The rate at which the route reads DynamoDB (moto) and writes the stream; a live
    client is as late as one poll plus one such read after each commit.
    """
    with LocalStack(port=0, handlers={"work": lambda v: v}) as stack:
        sfn = stack.stepfunctions()
        machine = sfn.create_state_machine(
            name="bench", definition=json.dumps(MAP), roleArn="arn:aws:iam::000000000000:role/B"
        )["stateMachineArn"]
        arn = sfn.start_execution(
            stateMachineArn=machine, input=json.dumps({"items": list(range(items))})
        )["executionArn"]
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            time.sleep(0.1)
        start = time.perf_counter()
        got = [event["id"] for event in follow(stack.url, arn, timeout=120)]
        took = time.perf_counter() - start
        assert got == list(range(1, len(got) + 1))
        print(
            f"stepflow local (moto), finished Map of {items}: {len(got)} events streamed "
            f"in {took:.2f} s = {len(got) / took:,.0f} events/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--per-commit", type=int, default=5)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    for interval in (0.1, 0.01):
        in_memory(args.events, args.per_commit, interval)
    on_moto(args.items)


if __name__ == "__main__":
    main()
