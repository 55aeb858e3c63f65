"""A DynamoDB stream poller acting as Lambda's event source mapping for the hooks dispatcher.

``stepflow local`` runs the real dispatcher handler
(:func:`stepflow.aws.hooks_lambda.handler`) on the log table's stream, as the
deployed stack does: one thread reads each shard in order (``GetRecords``),
hands the records to the handler in Lambda's event shape (binaries as base64
text, dates as epoch seconds) and honours ``batchItemFailures``: it resumes
at the lowest failed sequence number, and after ``max_retries`` failed
deliveries of the same record it gives up on it (logged, as an on-failure
destination would receive it) so the shard is not blocked forever.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from stepflow.local.gateway import CONTEXT

LOG = logging.getLogger(__name__)

StreamHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
"""A Lambda handler for DynamoDB stream events returning ``{"batchItemFailures": [...]}``."""

STREAM_VIEW = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
"""The stream the CDK stack gives the log table (cdk/stepflow_cdk/storage.py)."""


def ensure_stream(dynamodb: Any, table: str) -> str:
    """The table's stream ARN, enabling the stream (``NEW_AND_OLD_IMAGES``) if it has none."""
    described = dynamodb.describe_table(TableName=table)["Table"]
    if not described.get("StreamSpecification", {}).get("StreamEnabled"):
        dynamodb.update_table(TableName=table, StreamSpecification=STREAM_VIEW)
        described = dynamodb.describe_table(TableName=table)["Table"]
    return str(described["LatestStreamArn"])


class StreamPoller:
    """One thread polling every shard of ``stream_arn`` and calling ``handler``.

    Shards present at :meth:`start` are read from their latest record (what was
    committed before is not replayed); shards found later from their start.
    """

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: StreamHandler,
        *,
        batch_size: int = 100,
        interval: float = 0.2,
        max_retries: int = 3,
    ) -> None:
        self.streams, self.stream_arn, self.handler = streams, stream_arn, handler
        self.batch_size, self.interval, self.max_retries = batch_size, interval, max_retries
        self.errors: list[BaseException] = []
        self.delivered = 0
        """How many records the handler has accepted."""
        self.given_up: list[str] = []
        """Sequence numbers dropped after ``max_retries`` failed deliveries."""
        self._iterators: dict[str, str | None] = {}
        self._failures: dict[str, int] = {}
        self._failed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stream-poller", daemon=True)

    def start(self) -> StreamPoller:
        """Take the shards' latest positions, then start polling."""
        for shard in self._shards():
            self._iterators[shard] = self._iterator(shard, "LATEST")
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop after the batch in hand (waits up to ``timeout``)."""
        self._stop.set()
        self._thread.join(timeout)

    def poll_once(self) -> int:
        """One pass over the shards; returns how many records were received."""
        for shard in self._shards():
            if shard not in self._iterators:
                self._iterators[shard] = self._iterator(shard, "TRIM_HORIZON")
        handed = 0
        for shard, iterator in list(self._iterators.items()):
            if iterator is not None:
                handed += self._poll_shard(shard, iterator)
        return handed

    # -- helpers ---------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._failed = False
                if not self.poll_once() or self._failed:  # nothing new, or a retry to pace
                    self._stop.wait(self.interval)
            except Exception as exc:  # an outage of the endpoint: keep polling, as AWS does
                self.errors.append(exc)
                self._stop.wait(1.0)

    def _shards(self) -> list[str]:
        described = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [str(shard["ShardId"]) for shard in described.get("Shards", [])]

    def _iterator(self, shard: str, kind: str, number: str | None = None) -> str | None:
        extra = {"SequenceNumber": number} if number is not None else {}
        found = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType=kind, **extra
        )
        iterator = found.get("ShardIterator")
        return str(iterator) if iterator else None

    def _poll_shard(self, shard: str, iterator: str) -> int:
        page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        records = page.get("Records", [])
        self._iterators[shard] = page.get("NextShardIterator")
        if not records:
            return 0
        event = {"Records": [lambda_record(r, self.stream_arn) for r in records]}
        answer = self.handler(event, CONTEXT) or {}
        failed = [str(f.get("itemIdentifier")) for f in answer.get("batchItemFailures", [])]
        numbers = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
        first = min((numbers.index(n) for n in failed if n in numbers), default=None)
        if first is None:
            self.delivered += len(records)
            return len(records)
        self.delivered += first
        self._failed = True
        number = numbers[first]
        self._failures[number] = self._failures.get(number, 0) + 1
        if self._failures[number] > self.max_retries:  # the on-failure destination's part
            LOG.error("stream record %s: hooks failed %d times, skipped", number, self.max_retries)
            self.given_up.append(number)
            self._iterators[shard] = self._iterator(shard, "AFTER_SEQUENCE_NUMBER", number)
        else:
            self._iterators[shard] = self._iterator(shard, "AT_SEQUENCE_NUMBER", number)
        return len(records)


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """A ``GetRecords`` record as Lambda delivers it (JSON: base64 binaries, epoch dates)."""
    converted = {key: _jsonable(value) for key, value in record.items()}
    converted["eventSourceARN"] = stream_arn
    return converted


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    return value
