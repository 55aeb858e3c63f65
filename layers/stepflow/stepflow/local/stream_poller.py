"""A DynamoDB stream poller acting as Lambda's event source mapping for the hooks dispatcher.

``stepflow local`` runs the real dispatcher handler
(:func:`stepflow.aws.hooks_lambda.handler`) on the log table's stream, as the
deployed stack does: one thread reads each shard in order (``GetRecords``),
hands the records to the handler in Lambda's event shape (binaries as base64
text, dates as epoch seconds) and honours ``batchItemFailures``: it resumes
at the lowest failed sequence number (a handler that raises fails the whole
batch: it is read again from its first record; the shard's position only
advances past what the handler accepted). A failed record is retried with
exponential backoff (``interval`` doubling up to ``max_backoff``); only once it
has failed more than ``max_retries`` times AND for at least ``retry_budget``
seconds is it given up (logged, as an on-failure destination would receive
it), so an outage of a dependency loses nothing while the shard is never
blocked forever. What the poller remembers is bounded: the latest
:data:`KEPT` errors and given-up records, one retry and one position per shard.

A shard iterator expires (AWS: 15 minutes after it was issued, e.g. when the
poller was stalled): the shard then resumes after the last record it passed,
at the record being retried, or, if it passed none yet, where it started.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepflow.local.gateway import CONTEXT

LOG = logging.getLogger(__name__)

StreamHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
"""A Lambda handler for DynamoDB stream events returning ``{"batchItemFailures": [...]}``."""

KEPT = 100
"""How many of the latest errors and given-up sequence numbers a poller keeps."""

STREAM_VIEW = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
"""The stream the CDK stack gives the log table (cdk/stepflow_cdk/storage.py)."""


def ensure_stream(dynamodb: Any, table: str) -> str:
    """The table's stream ARN, enabling the stream (``NEW_AND_OLD_IMAGES``) if it has none."""
    described = dynamodb.describe_table(TableName=table)["Table"]
    if not described.get("StreamSpecification", {}).get("StreamEnabled"):
        dynamodb.update_table(TableName=table, StreamSpecification=STREAM_VIEW)
        described = dynamodb.describe_table(TableName=table)["Table"]
    return str(described["LatestStreamArn"])


@dataclass(slots=True)
class _Retry:
    """A shard's record being retried: its failures, the first one's time, the next try."""

    number: str
    failures: int
    since: float
    due: float


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
        retry_budget: float = 60.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.streams, self.stream_arn, self.handler = streams, stream_arn, handler
        self.batch_size, self.interval, self.max_retries = batch_size, interval, max_retries
        self.retry_budget, self.max_backoff, self.clock = retry_budget, max_backoff, clock
        self.errors: list[BaseException] = []
        """The latest errors (at most :data:`KEPT`): the handler's, the stream endpoint's."""
        self.delivered = 0
        """How many records the handler has accepted."""
        self.given_up: list[str] = []
        """The latest sequence numbers given up (at most :data:`KEPT`)."""
        self.given_up_count = 0
        """How many records were given up in all."""
        self.renewed = 0
        """How many expired shard iterators were replaced."""
        self._iterators: dict[str, str | None] = {}
        self._retries: dict[str, _Retry] = {}
        self._positions: dict[str, str] = {}  # the last sequence number passed, per shard
        self._origins: dict[str, str] = {}  # where each shard was first read from
        self._outages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stream-poller", daemon=True)

    def start(self) -> StreamPoller:
        """Take the shards' latest positions, then start polling."""
        for shard in self._shards():
            self._origins[shard] = "LATEST"
            self._iterators[shard] = self._iterator(shard, "LATEST")
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop after the batch in hand (waits up to ``timeout``)."""
        self._stop.set()
        self._thread.join(timeout)

    def poll_once(self) -> int:
        """One pass over the shards; returns how many records were received.

        A shard whose failed record waits for its backoff is skipped.
        """
        shards = self._shards()
        for shard in shards:
            if shard not in self._iterators:
                self._origins[shard] = "TRIM_HORIZON"
                self._iterators[shard] = self._iterator(shard, "TRIM_HORIZON")
        for gone in set(self._iterators) - set(shards):  # past the stream's retention
            for kept in (self._iterators, self._retries, self._positions, self._origins):
                kept.pop(gone, None)
        handed = 0
        now = self.clock()
        for shard, iterator in list(self._iterators.items()):
            retry = self._retries.get(shard)
            if iterator is not None and (retry is None or now >= retry.due):
                try:
                    handed += self._poll_shard(shard, iterator)
                except Exception as exc:
                    if _error_code(exc) != "ExpiredIteratorException":
                        raise
                    self.renewed += 1
                    self._iterators[shard] = self._resume(shard)
        return handed

    # -- helpers ---------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once():  # nothing new, or a retry to pace
                    self._stop.wait(self.interval)
                self._outages = 0
            except Exception as exc:  # an outage of the endpoint: keep polling, as AWS does
                self._error(exc)
                self._outages += 1
                self._stop.wait(self._backoff(self._outages))

    def _backoff(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row: doubling, at most ``max_backoff``."""
        return float(min(self.max_backoff, self.interval * 2 ** min(failures - 1, 32)))

    def _error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        del self.errors[:-KEPT]

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

    def _resume(self, shard: str) -> str | None:
        """A new iterator for ``shard``, where its expired one stood."""
        retry = self._retries.get(shard)
        if retry is not None:
            return self._iterator(shard, "AT_SEQUENCE_NUMBER", retry.number)
        position = self._positions.get(shard)
        if position is not None:
            return self._iterator(shard, "AFTER_SEQUENCE_NUMBER", position)
        return self._iterator(shard, self._origins.get(shard, "TRIM_HORIZON"))

    def _poll_shard(self, shard: str, iterator: str) -> int:
        page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
        records = page.get("Records", [])
        following = page.get("NextShardIterator")
        if not records:
            self._iterators[shard] = following
            return 0
        numbers = [str(r["dynamodb"]["SequenceNumber"]) for r in records]
        event = {"Records": [lambda_record(r, self.stream_arn) for r in records]}
        try:
            answer = self.handler(event, CONTEXT) or {}
            failed = {str(f.get("itemIdentifier")) for f in answer.get("batchItemFailures", [])}
            first = min((numbers.index(n) for n in failed if n in numbers), default=None)
        except Exception as exc:  # as Lambda: a function error fails the whole batch
            LOG.exception("the stream handler failed on %d record(s)", len(records))
            self._error(exc)
            first = 0
        if first is None:  # only now does the shard's position advance
            self._iterators[shard] = following
            self._retries.pop(shard, None)
            self._positions[shard] = numbers[-1]
            self.delivered += len(records)
            return len(records)
        self.delivered += first
        if first:
            self._positions[shard] = numbers[first - 1]
        self._retry(shard, numbers[first])
        return len(records)

    def _retry(self, shard: str, number: str) -> None:
        """Resume at the failed record ``number`` after its backoff, or give it up."""
        now = self.clock()
        retry = self._retries.get(shard)
        if retry is None or retry.number != number:
            retry = _Retry(number, 0, now, now)
        retry.failures += 1
        if retry.failures > self.max_retries and now - retry.since >= self.retry_budget:
            # The on-failure destination's part.
            LOG.error("stream record %s: hooks failed %d times, skipped", number, retry.failures)
            self.given_up.append(number)
            del self.given_up[:-KEPT]
            self.given_up_count += 1
            self._retries.pop(shard, None)
            self._positions[shard] = number
            self._iterators[shard] = self._iterator(shard, "AFTER_SEQUENCE_NUMBER", number)
            return
        retry.due = now + self._backoff(retry.failures)
        self._retries[shard] = retry
        self._iterators[shard] = self._iterator(shard, "AT_SEQUENCE_NUMBER", number)


def _error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for anything else)."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    return str(error.get("Code", "")) if isinstance(error, Mapping) else ""


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
