"""The head item of an execution: what a write stores and what a read gives back.

:class:`HeadItems` turns an :class:`~stepflow.runtime.ports.ExecutionRecord` (and the
events of its decision) into the items of one write, within DynamoDB's limits
(the head with its key attributes, the running index's and the TTL's, its JSON
documents without what the head already says: :mod:`stepflow.aws.head_docs`; the
event items: :mod:`stepflow.aws.log_history`), and a head item back into the record.
:class:`~stepflow.aws.dynamodb_log.DynamoDBLog` writes and reads them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stepflow.aws.head_docs import (
    HEAD_PRIMERS,
    read_outbox,
    read_state,
    write_outbox,
    write_state,
)
from stepflow.aws.log_history import HistoryItems, last_id
from stepflow.aws.log_items import (
    Draft,
    ItemPacker,
    PayloadTooLargeError,
    decimal_text,
    doc_names,
    loads,
)
from stepflow.aws.log_pending import EV_COMPRESSED, EV_PLAIN, EV_SK, PENDING_ATTRIBUTES
from stepflow.aws.log_table import HEAD, key
from stepflow.aws.topology import (
    COMMITTED_AT,
    LISTED,
    RUNNING_INDEX_PK,
    RUNNING_INDEX_SK,
    TTL_ATTRIBUTE,
    running_shard,
)
from stepflow.data.serialize import dumps, storable_problem
from stepflow.runtime.held_mark import CLOCK_SKEW, HELD_UNTIL, held_until
from stepflow.runtime.ports import ExecutionRecord, UnstorableDataError
from stepflow.runtime.registry import listing_key

DOCS = ("input", "state", "outbox", "attributes")
"""The head's JSON documents (each plain, compressed ``<name>_z`` or offloaded ``<name>_ref``)."""


@dataclass(frozen=True, slots=True)
class HeadItems:
    """Packs records into head items (and their decision's event items), and reads them."""

    items: ItemPacker
    history: HistoryItems
    clock: Callable[[], float]
    """Stamps each head's commit time (the outbox repair job compares it with its own)."""
    retention_seconds: Callable[[], int]
    """How long a finished execution's items are kept (the TTL is its stop date plus this)."""

    def sealed(
        self, record: ExecutionRecord, events: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """:meth:`seal`; what cannot be encoded or stored raises :class:`UnstorableDataError`."""
        try:
            return self.seal(record, events)
        except PayloadTooLargeError as exc:  # too large even for the payload store
            raise UnstorablePayloadError(record.execution_arn, ascii_cause(str(exc))) from exc
        except (ValueError, TypeError, RecursionError) as exc:  # incl. UnicodeEncodeError
            docs = (record.input, record.state, [m.body for m in record.outbox], list(events))
            problem = next(filter(None, map(storable_problem, docs)), None)
            raise UnstorableDataError(
                record.execution_arn, problem or ascii_cause(str(exc))
            ) from exc

    def seal(
        self, record: ExecutionRecord, events: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The head item and the event items of one write, within DynamoDB's limits."""
        head = {
            **key(record.execution_arn, HEAD),
            "seq": {"N": str(record.seq)},
            "status": {"S": record.status},
            "name": {"S": record.name},
            "state_machine_arn": {"S": record.state_machine_arn},
            "start_date": {"N": decimal_text(record.start_date)},
            **last_id(events),
        }
        if record.stop_date is not None:
            head["stop_date"] = {"N": decimal_text(record.stop_date)}
            head[TTL_ATTRIBUTE] = {"N": str(int(record.stop_date) + self.retention_seconds())}
        # The outbox repair job's age test; a runner holding this commit's tasks in place
        # writes its mark there instead (runtime/held_mark.py HELD_UNTIL): skipped until then.
        until = held_until(record)
        if until is None:
            head[COMMITTED_AT] = {"N": decimal_text(self.clock())}
        else:  # whole seconds: fewer bytes
            head[COMMITTED_AT] = {"N": str(max(math.ceil(self.clock()), math.ceil(until)))}
        if record.status == "RUNNING":  # the sparse running index (see topology)
            head[RUNNING_INDEX_PK] = {"S": running_shard(record.execution_arn)}
            head[RUNNING_INDEX_SK] = {"S": record.execution_arn}
        listed = listing_key(record.execution_arn, record.state_machine_arn, record.attributes)
        if listed is not None and ":mapRun:" in listed:  # a map run's child (stream consumers)
            head[LISTED] = {"S": f"EXL#{listed}"}
        arn = record.execution_arn
        input_text = dumps(record.input)
        state = write_state(record.state, arn, record.name, record.state_machine_arn, input_text)
        docs = {
            "input": input_text,
            "state": dumps(state),
            "outbox": dumps(write_outbox(arn, record.outbox)),
        }
        attributes = dict(record.attributes)
        attributes.pop(HELD_UNTIL, None)  # in committed_at, never in the document
        if attributes:  # read back as {} when absent
            docs["attributes"] = dumps(attributes)
        drafts = [
            Draft(head, {name: text.encode() for name, text in docs.items()}, HEAD_PRIMERS),
            *self.history.event_drafts(record.execution_arn, record.seq, events),
        ]
        return self.items.seal(drafts, record.execution_arn)

    def record(self, item: dict[str, Any]) -> ExecutionRecord:
        """The record stored in a head item."""
        stop = item.get("stop_date")
        texts = self.items.texts(item, DOCS, HEAD_PRIMERS)

        def read(name: str, default: Any) -> Any:
            text = texts[name]
            return default if text is None else loads(text)

        arn, name = item["pk"]["S"][3:], item["name"]["S"]
        attributes = read("attributes", {})
        committed = float(item.get(COMMITTED_AT, {}).get("N", "0"))
        if committed - self.clock() > CLOCK_SKEW:  # ahead of any clock: a runner's mark
            attributes[HELD_UNTIL] = [int(item["seq"]["N"]), committed]
        machine_arn, value = item["state_machine_arn"]["S"], read("input", None)
        return ExecutionRecord(
            execution_arn=arn,
            state_machine_arn=machine_arn,
            name=name,
            input=value,
            status=item["status"]["S"],
            seq=int(item["seq"]["N"]),
            state=read_state(read("state", {}), arn, name, machine_arn, value),
            outbox=read_outbox(arn, read("outbox", [])),
            start_date=float(item["start_date"]["N"]),
            stop_date=float(stop["N"]) if stop else None,
            attributes=attributes,
        )


def head_update(
    table: str,
    head: dict[str, Any],
    expected_seq: int,
    pending: dict[str, Any] | None,
    *,
    replace_events: bool,
    flushed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The conditional ``UpdateItem`` request that makes the stored head ``head``.

    ``pending``: the attributes carrying the commit's events (:func:`carried`);
    ``replace_events``: whether the head's pending events are replaced (by ``pending``,
    or removed when None) or left as they are (a commit without events). Replaced, only
    if they are those of ``flushed``, the event item just copied out (None: none): what
    was copied is what goes, never events nobody copied.
    """
    attributes = {**head, **(pending or {})}
    names: dict[str, str] = {"#seq": "seq"}
    values: dict[str, Any] = {":expected": {"N": str(expected_seq)}}
    condition = "#seq = :expected"
    if replace_events:
        names["#evsk"] = EV_SK
        if flushed is None:
            condition += " AND attribute_not_exists(#evsk)"
        else:  # the same events, not only the same key (a later execution of the ARN)
            values[":evsk"] = flushed["sk"]
            same = "#evsk = :evsk"
            for head_name, item_name in ((EV_PLAIN, "events"), (EV_COMPRESSED, "events_z")):
                if item_name in flushed:
                    names["#evdoc"], values[":evdoc"] = head_name, flushed[item_name]
                    same += " AND #evdoc = :evdoc"
            # or none: another writer copied them out at this seq (a head grown too large)
            condition += f" AND (attribute_not_exists(#evsk) OR ({same}))"
    sets = []
    for i, (name, value) in enumerate(sorted(attributes.items())):
        if name not in ("pk", "sk"):
            names[f"#a{i}"] = name
            values[f":v{i}"] = value
            sets.append(f"#a{i} = :v{i}")
    optional = [
        *(attr for doc in DOCS for attr in doc_names(doc)),
        "stop_date",
        TTL_ATTRIBUTE,
        RUNNING_INDEX_PK,
        RUNNING_INDEX_SK,
        *(PENDING_ATTRIBUTES if replace_events else ()),
    ]
    removes = []
    for i, name in enumerate(optional):
        if name not in attributes:
            names[f"#r{i}"] = name
            removes.append(f"#r{i}")
    remove = f" REMOVE {', '.join(removes)}" if removes else ""
    return {
        "TableName": table,
        "Key": key(head["pk"]["S"][3:], HEAD),
        "UpdateExpression": f"SET {', '.join(sets)}{remove}",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


class UnstorablePayloadError(PayloadTooLargeError, UnstorableDataError):
    """An item too large even for the payload store.

    Both what the log raised before (:class:`PayloadTooLargeError`) and poison data
    to the stepper (:class:`UnstorableDataError`).
    """

    def __init__(self, execution_arn: str, problem: str) -> None:
        UnstorableDataError.__init__(self, execution_arn, problem)


def ascii_cause(text: str) -> str:
    """``text`` safe to record as a cause: ASCII, at most 500 characters."""
    return text.encode("ascii", "backslashreplace").decode()[:500]
