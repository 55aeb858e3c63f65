"""DynamoDB stream records of the coordination log -> the hook events they commit.

The log's table has a stream (``NEW_AND_OLD_IMAGES``). A record arrives in
Lambda's event shape (``eventName``, ``eventID``, ``dynamodb.Keys``/
``NewImage``/``OldImage``/``SequenceNumber`` in DynamoDB JSON, binaries as
base64 text; ``stepflow local``'s poller converts moto's records to it).

What a record adds:

- a STANDARD execution: the history events of the commit that wrote them,
  decoded by the log's own event-item code (plain, compressed or offloaded),
  read from whichever record the commit made first:

  - a head (INSERT or MODIFY) whose new image carries pending events
    (``ev_sk``, ``ev_seq``, ``ev``/``ev_z``: a commit made as one head update)
    and whose old image carries none or another ``ev_sk``; the same ``ev_sk``
    again (an outbox clear, a commit without events) adds nothing;
  - an ``EV#`` item's INSERT (a commit made as a transaction), unless it is
    ``flushed``: pending events a later commit moved out of the head, already
    read from the head's record. Event items are otherwise never modified; a
    REMOVE is the sweeper's.

- an EXPRESS execution (no history items, as on AWS): its head's status
  changes (``OldImage`` vs ``NewImage``): ``ExecutionStarted`` when it becomes
  RUNNING, ``Execution<Succeeded|Failed|TimedOut|Aborted>`` when it ends. Its
  ``EV#`` items and a head's ``ev_*``, if any, are ignored: one execution is
  never read both ways.

Leases (``TK#``), journals, internal child partitions (``EX#<arn>#<child>``)
and every other item are ignored. A malformed or unreadable record (a corrupt
or dangling event item or head ``ev_*``, whatever the decoder raises) is logged
and skipped, never failing the batch; each execution is decoded on its own. Only
an outage (the table or the payload store unreachable) marks the first record of
the affected execution :attr:`RecordHooks.unavailable`: the dispatcher fails the
batch from there on, and it is retried.

Each execution's :class:`~stepflow.hooks.ExecutionInfo` comes from the plain
attributes of the batch's last readable head image (name, state machine, map
run; the redrive count from the state document only when it is inline: never
an S3 read), else from one ``GetItem`` of its head per batch (an unreadable
head: only what the ARN says): :mod:`stepflow.aws.stream_info`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.log_pending import EV_SK, FLUSHED
from stepflow.aws.log_pending import pending_item as head_events
from stepflow.aws.log_table import HEAD, LogUnavailableError
from stepflow.aws.stream_info import EXPRESS_MARK as EXPRESS_MARK
from stepflow.aws.stream_info import image_text, info_of, info_of_image
from stepflow.hooks import ExecutionInfo, HookEvent, hook_events

LOG = logging.getLogger(__name__)

CHILD_MARK = "#"
"""In an execution ARN (past ``EX#``): an internal child (a Parallel branch's or Map
iteration's own partition, ``<parent ARN>#<child id>``); its events are not the
execution's history (GetExecutionHistory shows the parent's), so hooks never see them."""

_ENDS = {
    "SUCCEEDED": "ExecutionSucceeded",
    "FAILED": "ExecutionFailed",
    "TIMED_OUT": "ExecutionTimedOut",
    "ABORTED": "ExecutionAborted",
}


OUTAGES: tuple[type[BaseException], ...] = (
    LogUnavailableError,
    ClientError,
    BotoCoreError,
    ConnectionError,
    TimeoutError,
)
"""What a read of the log raises when it may succeed later (retry, never skip)."""


class MalformedRecordError(ValueError):
    """A stream record that is not a record of the log's table."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One parsed stream record of an execution's partition."""

    sequence_number: str
    event_name: str
    execution_arn: str
    sk: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None


@dataclass(slots=True)
class RecordHooks:
    """The hook events one stream record adds (empty: none), by its sequence number."""

    sequence_number: str
    events: list[HookEvent] = field(default_factory=list)
    unavailable: bool = False
    """The log could not be read for this record's execution (an outage): fail from here on."""


def sequence_number(record: Mapping[str, Any]) -> str:
    """The record's ``dynamodb.SequenceNumber`` (its ``batchItemFailures`` identifier)."""
    dynamodb = record.get("dynamodb") if isinstance(record, Mapping) else None
    number = dynamodb.get("SequenceNumber") if isinstance(dynamodb, Mapping) else None
    if not isinstance(number, str) or not number:
        raise MalformedRecordError("a stream record without dynamodb.SequenceNumber")
    return number


def parse_record(record: Mapping[str, Any]) -> LogRecord | None:
    """The record of an execution's item, or None for another item (state machines, ...).

    Raises :class:`MalformedRecordError` when the record has no usable shape.
    """
    if not isinstance(record, Mapping):
        raise MalformedRecordError(f"a stream record must be an object, not {type(record)}")
    number = sequence_number(record)
    dynamodb = record["dynamodb"]
    event_name = record.get("eventName")
    if event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise MalformedRecordError(f"record {number}: eventName {event_name!r}")
    keys = dynamodb.get("Keys")
    pk = image_text(keys, "pk") if isinstance(keys, Mapping) else None
    sk = image_text(keys, "sk") if isinstance(keys, Mapping) else None
    if pk is None or sk is None:
        raise MalformedRecordError(f"record {number}: no pk/sk string keys")
    if not pk.startswith("EX#") or CHILD_MARK in pk[3:]:
        return None
    return LogRecord(
        number,
        event_name,
        pk[3:],
        sk,
        _image(dynamodb.get("NewImage"), number),
        _image(dynamodb.get("OldImage"), number),
    )


class StreamDecoder:
    """Turns a batch of the table's stream records into hook events, per record."""

    def __init__(self, log: DynamoDBLog) -> None:
        self.log = log
        self.head_reads = 0
        """How many heads were read (``GetItem``): at most one per execution per batch."""

    def decode(self, records: Sequence[Mapping[str, Any]]) -> list[RecordHooks]:
        """Every record's hook events, in the batch's order (malformed records: none).

        A record whose sequence number cannot be read is left out (nothing can
        identify it). Never raises: an execution the log cannot be read for now has
        its first record marked :attr:`RecordHooks.unavailable`; an unreadable
        record is skipped.
        """
        out: list[RecordHooks] = []
        parsed: list[tuple[int, LogRecord]] = []
        for raw in records:
            try:
                number = sequence_number(raw)
            except MalformedRecordError as exc:
                LOG.warning("skipped a stream record: %s", exc)
                continue
            out.append(RecordHooks(number))
            try:
                found = parse_record(raw)
            except Exception as exc:  # MalformedRecordError, or a shape nobody foresaw
                LOG.warning("skipped stream record %s: %r", number, exc)
                continue
            # an event item adds events only when a transaction inserted it; a copy, or a
            # group's lease record kept in it (aws/log_claims.py), would only cost a head read
            if found is not None and (found.sk == HEAD or event_item(found) is not None):
                parsed.append((len(out) - 1, found))
        by_execution: dict[str, list[tuple[int, LogRecord]]] = {}
        for index, found in parsed:
            by_execution.setdefault(found.execution_arn, []).append((index, found))
        for arn, runs in by_execution.items():
            try:
                info = self._info(arn, [found for _, found in runs])
                decoded = self._events(info, runs)
            except OUTAGES as exc:  # may succeed later: retried from this execution's first
                LOG.warning("execution %s: the log cannot be read now: %s", arn, exc)
                out[runs[0][0]].unavailable = True
                continue
            except Exception:  # never readable: skipped, never blocking the stream
                LOG.exception("execution %s: %d record(s) skipped", arn, len(runs))
                continue
            for index, event in decoded:
                out[index].events.append(event)
        return out

    # -- helpers ---------------------------------------------------------------

    def _info(self, arn: str, runs: Iterable[LogRecord]) -> ExecutionInfo:
        """From the batch's last readable head image, else one read of the head."""
        image: dict[str, Any] | None = None
        for found in runs:
            candidate = found.new or found.old
            if found.sk == HEAD and candidate is not None and _readable_head(candidate):
                image = candidate
        if image is not None:
            return info_of_image(arn, image)
        self.head_reads += 1
        try:
            record = self.log.get(arn)
        except OUTAGES:
            raise
        except Exception as exc:  # a head that cannot be read still names its execution
            LOG.warning("execution %s: an unreadable head: %s", arn, exc)
            record = None
        return info_of(arn, record)

    def _events(
        self, info: ExecutionInfo, runs: list[tuple[int, LogRecord]]
    ) -> list[tuple[int, HookEvent]]:
        """(record index, hook event) of one execution, in commit order."""
        history: list[tuple[int, dict[str, Any]]] = []
        for index, found in runs:
            try:
                if info.execution_type == "EXPRESS":
                    if found.sk == HEAD:
                        history.extend((index, e) for e in express_events(found))
                elif (item := event_item(found)) is not None:
                    history.extend((index, e) for e in self._item_events(found, item))
            except OUTAGES:
                raise
            except Exception:  # a poison record: skipped, its execution's others still read
                LOG.exception("record %s: skipped", found.sequence_number)
        history.sort(key=lambda pair: _id(pair[1]))
        owner = {_id(event): index for index, event in history}
        return [
            (owner[event.id], event)
            for event in hook_events(info, (event for _, event in history))
            if event.id in owner
        ]

    def _item_events(self, found: LogRecord, item: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of event item ``item`` (from ``found``'s image), [] when unreadable."""
        try:
            events = self.log.item_events(item)
        except OUTAGES:
            raise  # may succeed later: the batch is retried from this execution on
        except Exception as exc:
            # Corrupt or dangling (zlib.error, LogIntegrityError, whatever the decoder
            # raises): never readable, so skipped rather than retried forever.
            LOG.warning("record %s: unreadable events: %s", found.sequence_number, exc)
            return []
        if not isinstance(events, list):
            LOG.warning("record %s: events are not a list", found.sequence_number)
            return []
        return [e for e in events if isinstance(e, dict) and isinstance(e.get("id"), int)]


def event_item(found: LogRecord) -> dict[str, Any] | None:
    """The event item whose events a STANDARD execution's record adds (None: none)."""
    if found.sk == HEAD:
        return pending_item(found)
    new = found.new
    if found.sk.startswith("EV#") and found.event_name == "INSERT" and new and not _flushed(new):
        return new
    return None


def pending_item(found: LogRecord) -> dict[str, Any] | None:
    """The ``EV#`` item a head record's pending events will be, if the record wrote them.

    None when its new image has no ``ev_sk``, or its old image the same one (the
    events of an earlier record); the log decodes the item as the one the next
    commit copies them to (:func:`stepflow.aws.log_pending.pending_item`).
    """
    sk = image_text(found.new, EV_SK)
    if found.new is None or sk is None or image_text(found.old, EV_SK) == sk:
        return None
    return head_events({**found.new, "pk": {"S": f"EX#{found.execution_arn}"}})


def express_events(found: LogRecord) -> list[dict[str, Any]]:
    """The execution events an EXPRESS head's change implies (AWS's history shape).

    Ids are the head's ``seq`` (``seq * 2`` for a start, ``seq * 2 + 1`` for an
    end), so each delivery of the same change has the same dedup key.
    """
    new, old = found.new, found.old
    if new is None:
        return []
    status, before = image_text(new, "status"), image_text(old, "status") if old else None
    if status is None or status == before:
        return []
    seq = _number(new, "seq") or 0
    if status == "RUNNING":
        when = _number(new, "start_date")
        return [{"id": int(seq) * 2, "type": "ExecutionStarted", "timestamp": when}]
    kind = _ENDS.get(status)
    if kind is None:
        return []
    when = _number(new, "stop_date")
    return [{"id": int(seq) * 2 + 1, "type": kind, "timestamp": when}]


def _readable_head(image: Mapping[str, Any]) -> bool:
    return bool(image_text(image, "name")) and bool(image_text(image, "state_machine_arn"))


def _flushed(image: Mapping[str, Any]) -> bool:
    value = image.get(FLUSHED)
    return isinstance(value, Mapping) and value.get("BOOL") is True


def _id(event: dict[str, Any]) -> int:
    value = event.get("id")
    return value if isinstance(value, int) else 0


def _number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    text = value.get("N") if isinstance(value, Mapping) else None
    try:
        return float(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _image(image: Any, number: str) -> dict[str, Any] | None:
    """An image in the client's item form: Lambda's base64 binaries decoded to bytes."""
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise MalformedRecordError(f"record {number}: an image must be an object")
    item: dict[str, Any] = {}
    for name, value in image.items():
        if isinstance(value, Mapping) and "B" in value and isinstance(value["B"], str):
            try:
                value = {"B": base64.b64decode(value["B"], validate=True)}
            except (binascii.Error, ValueError):
                raise MalformedRecordError(f"record {number}: {name} is not base64") from None
        item[str(name)] = value
    return item
