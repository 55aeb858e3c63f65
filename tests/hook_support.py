"""Test support for hooks: a recording hook and the log table's stream read back from moto."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from stepflow.hooks import HookEvent, HookKind
from stepflow.local.stream_poller import lambda_record

WORK = "arn:aws:lambda:us-east-1:000000000000:function:work"
BOOM = "arn:aws:lambda:us-east-1:000000000000:function:boom"

MACHINE: dict[str, Any] = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "Right",
                    "States": {
                        "Right": {"Type": "Task", "Resource": WORK, "End": True},
                    },
                },
            ],
            "ResultPath": "$.both",
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Item",
                "States": {"Item": {"Type": "Task", "Resource": WORK, "End": True}},
            },
            "ResultPath": "$.each",
            "Next": "Risky",
        },
        "Risky": {
            "Type": "Task",
            "Resource": BOOM,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recovered"}],
            "Next": "Done",
        },
        "Recovered": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
"""Parallel, Map and a caught error: the run every hook test counts events of."""

INPUT = {"items": [1, 2, 3]}


def work(value: Any) -> Any:
    """The ``work`` task: echoes its input."""
    return value


def boom(value: Any) -> Any:
    """The ``boom`` task: always fails (the definition catches it)."""
    raise RuntimeError("boom")


HANDLERS = {"work": work, "boom": boom}


class RecordingHook:
    """Records every hook event it is given; drops repeats by their dedup key (counted)."""

    name = "recording"
    kinds: frozenset[HookKind] | None = None

    def __init__(self, fail_on: str | None = None, failures: int = 0) -> None:
        self.events: list[HookEvent] = []
        self.calls = 0
        self.repeats = 0
        self.fail_on, self.failures = fail_on, failures
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Record ``events``, or raise (``failures`` times) when one is of kind ``fail_on``."""
        with self._lock:
            self.calls += 1
            if self.failures and any(e.kind == self.fail_on for e in events):
                self.failures -= 1
                raise RuntimeError("the hook failed")
            for event in events:
                if event.dedup_key in self._seen:
                    self.repeats += 1
                    continue
                self._seen.add(event.dedup_key)
                self.events.append(event)

    def ids(self, execution_arn: str) -> list[int]:
        """The ids of the events recorded for one execution, in the order given."""
        with self._lock:
            return [e.id for e in self.events if e.execution.execution_arn == execution_arn]


def stream_records(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record of the stream, in Lambda's event shape, shard by shard."""
    records: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(lambda_record(r, stream_arn) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records
