"""A Map over many items through the durable runtime: time, partitions, item sizes.

Each item runs as a child execution in its own partition (DESIGN.md invariant
5). Prints the wall time, the writes per partition (the parent's against the
busiest child's) and the largest head and event items stored, for the
in-memory log and for the DynamoDB log on moto.

Reproduce: .venv/bin/python bench/big_map.py --items 10000 --moto-items 300
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from typing import Any, cast

import boto3
from moto import mock_aws
from stepflow.asl import parse
from stepflow.aws.dynamodb_log import DynamoDBLog, create_table
from stepflow.runtime import InMemoryLog
from stepflow.runtime.ports import CoordinationLog, ExecutionRecord
from stepflow.testing import WorkflowEnvironment

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
DEFINITION = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"id.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "StartAt": "Work",
                "States": {
                    "Work": {"Type": "Task", "Resource": FN + "work", "Next": "Shape"},
                    "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": True},
                },
            },
            "End": True,
        }
    },
}


class CountingLog:
    """Counts writes per partition around any log."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: Counter[str] = Counter()

    def create(self, record: ExecutionRecord, events: Any) -> None:
        self.writes[record.execution_arn] += 1
        self.inner.create(record, events)

    def commit(
        self, record: ExecutionRecord, expected_seq: int, events: Any, *, fence: Any = None
    ) -> None:
        self.writes[record.execution_arn] += 1
        self.inner.commit(record, expected_seq, events, fence=fence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(log: CoordinationLog, items: int) -> tuple[float, CountingLog, str]:
    counting = CountingLog(log)
    env = WorkflowEnvironment(
        log=cast(CoordinationLog, counting),
        handlers={"work": lambda item: {"id": item["id"], "ok": True}},
        start_time=0.0,
    )
    started = time.perf_counter()
    arn = env.start(parse(DEFINITION), {"items": list(range(items))}, name="big", seed=1)
    env.run(arn)
    elapsed = time.perf_counter() - started
    final = log.get(arn)
    assert final is not None and final.status == "SUCCEEDED", final
    return elapsed, counting, arn


def report(label: str, items: int, elapsed: float, counting: CountingLog, parent: str) -> None:
    children = {arn: n for arn, n in counting.writes.items() if arn != parent}
    print(f"{label}: {items} items in {elapsed:.1f} s ({items / elapsed:,.0f} items/s)")
    print(
        f"  partitions: {len(children) + 1}; writes to the parent: {counting.writes[parent]}, "
        f"to the busiest child: {max(children.values())}"
    )


def largest_items(client: Any, table: str) -> tuple[int, int]:
    """The largest HEAD and EV item sizes in bytes (names and values, roughly as billed)."""
    head = event = 0
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            size = sum(len(k) + len(str(v)) for k, v in item.items())
            if item["sk"]["S"] == "HEAD":
                head = max(head, size)
            elif item["sk"]["S"].startswith("EV#"):
                event = max(event, size)
        if "LastEvaluatedKey" not in page:
            return head, event
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--moto-items", type=int, default=300)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    report("in-memory log", args.items, *run(InMemoryLog(), args.items))
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "bench")
        elapsed, counting, parent = run(DynamoDBLog("bench", client=client), args.moto_items)
        report("DynamoDB log on moto", args.moto_items, elapsed, counting, parent)
        head, event = largest_items(client, "bench")
        print(f"  largest HEAD item: {head:,} bytes; largest EV item: {event:,} bytes")
    print(
        f"reproduce: .venv/bin/python bench/big_map.py --items {args.items} "
        f"--moto-items {args.moto_items}"
    )


if __name__ == "__main__":
    main()
