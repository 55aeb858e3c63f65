"""A commit's first task group is claimed on its events' item: the claim carries their copy.

The runner claims the tasks one commit sends it as a group, under the lease record
``tasks#<commit seq>#<first index>`` (:mod:`stepflow.runtime.task_groups`). On DynamoDB
that record was an item of its own (``TK#tasks#...``, a write unit), and the runner's
commit then copied the events the head carried to their ``EV#`` item (another unit,
:mod:`.log_pending`). Both items are small, and written a moment apart by the same
runner. So the record of a commit's FIRST group (``tasks#<seq>#0``) lives in that
commit's event item when the commit carried its events and they are small
(:data:`CLAIM_EVENTS_BYTES`), and the claim that creates it writes the events' copy too:
one write where there were two; the runner's commit then skips its copy.

Where the record lives is a fact of the table, the same for every claimer (two claimers
that disagreed would both run the group): the first event item of commit ``<seq>``, iff
that commit's events were carried (one item, a ``flushed`` copy or still pending in the
head) and its events document is at most :data:`CLAIM_EVENTS_BYTES`; else ``TK#`` as
before. A claimer finds it from what its log saw of the head (the runner reads the head before it
claims): the pending events of that seq, at that seq or after commits without events (a
heartbeat's, review 33). Otherwise (a later commit copied them, or they were copied out
at the same seq) it reads the event items back from the newest to that seq's first (a
consistent ``Query``, the rare path: it reads what was written since, bounded by the
history's event cap); a place found is cached (it never changes for one execution).

Writes to a record in an event item are ``UpdateItem`` s of the lease's own attributes, and
the copy of the events (:func:`stepflow.aws.log_pending.flush_update`) one of the events'
own, so neither erases the other. The stream (hooks) ignores the item: it is a ``flushed``
copy from its first write, and only an event item's unflushed INSERT is a commit's events.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from stepflow.aws.log_pending import FLUSHED, PendingEvents, Seen, read_pending
from stepflow.aws.log_table import LogIntegrityError, TableCall
from stepflow.aws.log_table import key as _key

CLAIM_EVENTS_BYTES = 768
"""A commit's events document (compressed or plain) at most this big shares its item with
the claim of the commit's first group: with the lease's attributes (about 230 bytes) the
item stays within one write unit."""

_FIRST_GROUP = re.compile(r"tasks#([0-9]{1,18})#0")
_EVENT_FORMS = ("events", "events_z")
_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ClaimPlace:
    """A lease record kept in an event item: its key, its commit's seq, and what to copy.

    ``carry``: the event item's attributes (``seq`` and its events) that the claim writes
    with the record, when the events are still pending in the head; None when the item
    holds them already. ``head``: the head the events were seen pending at.
    """

    key: dict[str, Any]
    seq: int
    carry: dict[str, Any] | None
    head: Seen | None


def first_group_seq(task_id: str) -> int | None:
    """The commit seq of a commit's first group lease (``tasks#<seq>#0``); None for others."""
    found = _FIRST_GROUP.fullmatch(task_id)
    return int(found.group(1)) if found else None


def events_bytes(item: dict[str, Any]) -> int | None:
    """The size of an event item's inline events document; None if it has none inline."""
    for name in _EVENT_FORMS:
        if name in item:
            value = item[name]
            return len(value["B"]) if "B" in value else len(value["S"].encode())
    return None


class ClaimPlaces:
    """Where the lease records of one log table's first groups live (see the module)."""

    def __init__(self, call: TableCall, pending: PendingEvents, enabled: bool = True) -> None:
        self.enabled = enabled
        """False: every record in its own item, as before (the first deploy of an upgrade)."""
        self._call = call
        self._pending = pending
        self._places: OrderedDict[tuple[str, float, int], dict[str, Any] | None] = OrderedDict()
        self._lock = threading.Lock()

    def place(self, execution_arn: str, task_id: str) -> ClaimPlace | None:
        """The event item that holds ``task_id`` 's record; None: its own ``TK#`` item."""
        seq = first_group_seq(task_id) if self.enabled else None
        if seq is None:
            return None
        head, item = self._head(execution_arn, seq)
        if head is None:
            return None  # no execution: nothing to claim; the caller finds no record
        # commit <seq>'s events still pending: at its own head, or past commits without events
        if head[0] >= seq and item is not None and _seq(item) == seq:
            if _small_carried(item):
                carry = {k: v for k, v in item.items() if k not in ("pk", "sk")}
                return ClaimPlace(_key(execution_arn, item["sk"]["S"]), seq, carry, head)
            return None
        if head[0] < seq:
            return None  # a message of a later incarnation of the name: no such commit here
        cache_key = (execution_arn, head[1], seq)
        with self._lock:
            if cache_key in self._places:
                found = self._places[cache_key]
                return None if found is None else ClaimPlace(found, seq, None, None)
        found = self._look_up(execution_arn, seq)
        with self._lock:
            self._places[cache_key] = found
            while len(self._places) > _CACHE_SIZE:
                self._places.popitem(last=False)
        return None if found is None else ClaimPlace(found, seq, None, None)

    def _head(self, execution_arn: str, seq: int) -> tuple[Seen | None, dict[str, Any] | None]:
        """The head this log last saw at ``seq`` or later (else one read), and its pending item."""
        latest = self._pending.cache.latest(execution_arn)
        if latest is not None and latest[0][0] >= seq:
            return latest
        stored = read_pending(self._call, execution_arn)
        if stored is None:
            return None, None
        self._pending.cache.remember(execution_arn, stored[0], stored[1])
        return stored

    def _look_up(self, execution_arn: str, seq: int) -> dict[str, Any] | None:
        """The key of commit ``seq`` 's event item if it holds the record (see the module).

        Reads the event items from the newest back to that commit's (consistently: a
        copy made a moment ago counts). A carried commit's events are one flushed item.
        """
        pk = _key(execution_arn, "EV#")["pk"]
        request: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :ev)",
            "ExpressionAttributeValues": {":pk": pk, ":ev": {"S": "EV#"}},
            "ExpressionAttributeNames": {"#seq": "seq"},
            "ProjectionExpression": "pk, sk, #seq, flushed, events, events_z, events_ref",
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        theirs: list[dict[str, Any]] = []
        while True:
            page = self._call("query", **request)
            for item in page.get("Items", []):
                found = _seq(item)
                if found == seq:
                    theirs.append(item)
                elif found is not None and found < seq:
                    return _held_in(theirs)
            if "LastEvaluatedKey" not in page:
                return _held_in(theirs)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _held_in(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The key of a commit's event item that holds its first group's record, or None."""
    if len(items) != 1 or not _small_carried(items[0]) or not _is_flushed(items[0]):
        return None
    return {"pk": items[0]["pk"], "sk": items[0]["sk"]}


def _small_carried(item: dict[str, Any]) -> bool:
    size = events_bytes(item)
    return size is not None and size <= CLAIM_EVENTS_BYTES and "events_ref" not in item


def _is_flushed(item: dict[str, Any]) -> bool:
    value = item.get(FLUSHED)
    return bool(value and value.get("BOOL"))


def _seq(item: dict[str, Any]) -> int | None:
    value = item.get("seq")
    return int(value["N"]) if value and "N" in value else None


def check_holder(call: TableCall, place: ClaimPlace, carrying: bool) -> None:
    """After a refused write to ``place``: raise unless the refusal was the record's version.

    The item holding another commit's events, or gone when the write did not carry the
    events (a purge), is :class:`LogIntegrityError`: a retry would be refused forever.
    """
    item = call("get_item", Key=place.key, ConsistentRead=True).get("Item")
    if item is None and not carrying:
        raise LogIntegrityError(f"history item {place.key['sk']['S']} is gone")
    if item is not None and _seq(item) not in (None, place.seq):
        raise LogIntegrityError(
            f"history item {place.key['sk']['S']} holds commit {_seq(item)}'s events, "
            f"not the claimed commit {place.seq}'s"
        )
