"""A commit's events carried by the head until the next commit moves them to their item.

A commit used to be a ``TransactWriteItems`` of the head and an ``EV#`` item, and a
transaction bills every item twice. Now, when the decision's events fit one event item
held inline, the commit is one conditional ``UpdateItem`` of the head that also carries
them (DESIGN.md invariant 1, "one conditional write"): the attributes

- ``ev_sk``: the event item's sort key (``EV#<first event id>``),
- ``ev_seq``: the seq of the commit that wrote them,
- ``ev`` or ``ev_z``: the event item's ``events`` or ``events_z``, byte for byte.

The next commit that writes events replaces them, so it first copies them into their own
item (:func:`flush_update`: an update conditioned on the item being absent or already this
commit's, marked ``flushed`` so stream consumers do not see the events twice). Until
then they are the only copy, and every history read merges them (:func:`pending_item`):
an execution's history is its ``EV#`` items plus the head's pending events, the same item
counted once (the head's copy wins). A commit without events leaves them alone, unless
with its head they would pass the item budget (then it copies them out and removes them);
one whose events go the transaction way (several items, offloaded, larger than carrying
them pays: :func:`worth_carrying`) removes them after the copy.

Invariant: every event of a commit before the head's ``seq`` is in an ``EV#`` item, except
the head's own pending ones. The head update that replaces or removes them is conditioned
on them being exactly the ones copied (key and content), or gone (another writer copied
them out at this seq), so events nobody copied are never dropped, whatever a writer
believed. A writer that dies between the copy and its head update leaves an item equal to
the pending events (readers count it once); one that loses the race has copied what the
winner copies too. What a commit copies comes from what its log instance saw of the head
(:class:`PendingCache`, by seq and start date), else a read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from stepflow.aws.log_items import item_size
from stepflow.aws.log_table import HEAD, LogIntegrityError, Rejected, TableCall
from stepflow.aws.log_table import key as _key
from stepflow.runtime.ports import ConflictError

EV_SK, EV_SEQ, EV_PLAIN, EV_COMPRESSED = "ev_sk", "ev_seq", "ev", "ev_z"
PENDING_ATTRIBUTES = (EV_SK, EV_SEQ, EV_PLAIN, EV_COMPRESSED)
"""The head's attributes that hold its commit's events (all absent when it holds none)."""
FLUSHED = "flushed"
"""On an event item copied out of a head: its events were in a head image already."""

_FORMS = ((EV_PLAIN, "events"), (EV_COMPRESSED, "events_z"))
_CACHE_SIZE = 4096


def carried(chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The head attributes that carry a decision's event items, or None if they cannot.

    Only one item whose events are inline (a reference to the payload store would
    make the head hold what the event item should own).
    """
    if len(chunks) != 1:
        return None
    chunk = chunks[0]
    attributes = {EV_SK: chunk["sk"], EV_SEQ: chunk["seq"]}
    for head_name, item_name in _FORMS:
        if item_name in chunk:
            attributes[head_name] = chunk[item_name]
    if len(attributes) != 3 or len(chunk) != 2 + 1 + 1:  # pk, sk, seq and one events form
        return None
    return attributes


def worth_carrying(
    head: dict[str, Any], chunk: dict[str, Any], carrying: dict[str, Any], budget: int
) -> bool:
    """Whether the head should carry the events of ``chunk`` (as ``carrying``) or not.

    In write units (whole KB): carried, the commit bills the head with its events, the
    next write of the head (often its outbox's clear) bills them again, and the copy
    bills them once more; a transaction bills the head and the event item twice each,
    and the clear the head alone. Small events win (the order workload's: 4 units
    against 4 or more, and nothing for the clear that a held outbox skips); events
    larger than the head lose, and go the transaction way.
    """
    both = item_size({**head, **carrying})
    if both > budget:
        return False
    return 2 * _units(both) <= 3 * _units(item_size(head)) + _units(item_size(chunk))


def worth_carrying_at_create(
    head: dict[str, Any],
    chunk: dict[str, Any],
    carrying: dict[str, Any],
    budget: int,
    listing: dict[str, Any] | None,
) -> bool:
    """Whether a new execution's head should carry its first events, as :func:`worth_carrying`.

    Carried, the create is a put of the head with its events (and one of the listing
    entry), the outbox's clear bills them again, the copy once more, and the first commit
    may be billed on the head with them (an update is billed on the larger item); the
    transaction bills the head, the event item and the listing entry twice each, and the
    clear the head alone. A tie goes to the transaction (the carried create also reads
    the partition's last item, :mod:`stepflow.aws.log_lifecycle`). The order workload's
    create, index writes aside: 4 units carried (the head's put, the clear, the copy and
    the listing entry's put, 1 each) against 7 (a transaction of 6 and the clear).
    """
    both = item_size({**head, **carrying})
    if both > budget:
        return False
    listed = _units(item_size(listing)) if listing is not None else 0
    head_units, event_units = _units(item_size(head)), _units(item_size(chunk))
    carried_units = 3 * _units(both) - head_units + event_units + listed
    return carried_units < 3 * head_units + 2 * event_units + 2 * listed


def _units(size: int) -> int:
    return max(1, -(-size // 1024))


def pending_item(head: dict[str, Any]) -> dict[str, Any] | None:
    """The event item a head's pending events belong to, as stored (None: it has none)."""
    if EV_SK not in head:
        return None
    item = {"pk": head["pk"], "sk": head[EV_SK]}
    if EV_SEQ in head:  # always, but in a damaged stream image
        item["seq"] = head[EV_SEQ]
    for head_name, item_name in _FORMS:
        if head_name in head:
            item[item_name] = head[head_name]
    return item


def flush_update(table: str, item: dict[str, Any]) -> dict[str, Any]:
    """The ``UpdateItem`` request that copies pending events to their item.

    Conditioned on the item being absent or holding the same commit's events (a copy
    made before, by a writer that then died or lost its race, or by the claim of the
    commit's first task group, :mod:`.log_claims`): idempotent, and never over another
    commit's events. An update, not a put, so that a lease record the item holds is
    kept; the events' other forms are removed, as a put would.
    """
    values = {k: v for k, v in item.items() if k not in ("pk", "sk")}
    values[FLUSHED] = {"BOOL": True}
    expression, names, attribute_values = set_events(values)
    return {
        "TableName": table,
        "Key": {"pk": item["pk"], "sk": item["sk"]},
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_not_exists(sk) OR #seq = :seq",
        "ExpressionAttributeNames": {**names, "#seq": "seq"},
        "ExpressionAttributeValues": {**attribute_values, ":seq": item["seq"]},
    }


EVENT_DOCS = ("events", "events_z", "events_ref")
"""The attributes an event item's events may be stored under (one of them at a time)."""


def set_events(
    values: dict[str, Any], removed: tuple[str, ...] = ()
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """An update expression setting ``values``, removing ``removed``; its names and values.

    Writing events removes their other forms. Names are ``#aN`` and ``#rN``, values ``:aN``.
    """
    gone = list(removed)
    if any(name in values for name in EVENT_DOCS):  # the events written: not their other forms
        gone += [name for name in EVENT_DOCS if name not in values and name not in gone]
    names = {f"#a{i}": name for i, name in enumerate(values)}
    names.update({f"#r{i}": name for i, name in enumerate(gone)})
    expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
    if gone:
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(gone)))
    return expression, names, {f":a{i}": v for i, v in enumerate(values.values())}


def read_pending(call: TableCall, execution_arn: str) -> tuple[Seen, dict[str, Any] | None] | None:
    """What the stored head is (consistent read) and its pending event item; None: no head."""
    response = call(
        "get_item",
        Key=_key(execution_arn, HEAD),
        ConsistentRead=True,
        ProjectionExpression="pk, #seq, start_date, ev_sk, ev_seq, ev, ev_z",
        ExpressionAttributeNames={"#seq": "seq"},
    )
    head = response.get("Item")
    if head is None:
        return None
    return seen(head), pending_item(head)


Seen = tuple[int, float]
"""A head as a commit names it: its ``seq`` and its execution's ``start_date``.

The start date tells an execution from a later one under the same ARN (an expired name is
free again), whose heads go through the same seqs.
"""


def seen(head: dict[str, Any]) -> Seen:
    """The :data:`Seen` of a head item."""
    # A number, not its text: DynamoDB trims trailing zeros ("1000.0" is read back "1000").
    return int(head["seq"]["N"]), float(head.get("start_date", {}).get("N", "nan"))


class PendingCache:
    """The pending event item of heads this log instance read or wrote, by ARN.

    Each entry names the head it was seen at (:data:`Seen`): a commit from that head
    copies what it held; a commit from any other reads the head instead. An entry can
    only be stale by events copied out since (another writer's eventless commit at the
    same seq): the head update's condition allows that, and a refused write forgets the
    entry. An entry is marked copied once this log wrote the copy itself (a group claim
    that carried it, :mod:`.log_claims`): the commit from that head then skips its copy.
    Bounded; safe across threads.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[Seen, dict[str, Any] | None, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, execution_arn: str, head: Seen, item: dict[str, Any] | None) -> None:
        """The head ``head`` of ``execution_arn`` holds ``item`` (None: nothing pending)."""
        with self._lock:
            before = self._seen.get(execution_arn)
            # a re-read of the same head keeps what this log knows it copied
            copied = before is not None and before[0] == head and before[1] == item and before[2]
            self._seen[execution_arn] = (head, item, copied)
            self._seen.move_to_end(execution_arn)
            while len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)

    def remember_head(self, head: dict[str, Any]) -> None:
        """Remember what a head item read from the table holds."""
        self.remember(head["pk"]["S"][3:], seen(head), pending_item(head))

    def at(self, execution_arn: str, head: Seen) -> tuple[bool, dict[str, Any] | None]:
        """``(known, item)``: whether the head ``head`` was seen, and its pending item."""
        with self._lock:
            found = self._seen.get(execution_arn)
        if found is None or found[0] != head:
            return False, None
        return True, found[1]

    def latest(self, execution_arn: str) -> tuple[Seen, dict[str, Any] | None] | None:
        """The last head of ``execution_arn`` this log saw and its pending item, if any."""
        with self._lock:
            found = self._seen.get(execution_arn)
        return None if found is None else (found[0], found[1])

    def mark_copied(self, execution_arn: str, head: Seen) -> None:
        """The pending item of the head ``head`` is in its own item now, written by this log."""
        with self._lock:
            found = self._seen.get(execution_arn)
            if found is not None and found[0] == head and found[1] is not None:
                self._seen[execution_arn] = (found[0], found[1], True)

    def copied(self, execution_arn: str, head: Seen) -> bool:
        """Whether this log wrote the pending item of the head ``head`` to its own item."""
        with self._lock:
            found = self._seen.get(execution_arn)
        return found is not None and found[0] == head and found[2]

    def forget(self, execution_arn: str) -> None:
        """Drop what is known of ``execution_arn`` (after a write whose outcome is unknown)."""
        with self._lock:
            self._seen.pop(execution_arn, None)


class PendingEvents:
    """The pending events of the heads of one log table: what a commit copies first."""

    def __init__(self, table: str, call: TableCall) -> None:
        self.table = table
        self._call = call
        self.cache = PendingCache()

    def at(self, execution_arn: str, head: Seen) -> dict[str, Any] | None:
        """The pending event item of the head ``head`` (None: it has none).

        What this log saw of that head tells, else one read (the truth, whatever the
        start date); a head at another seq cannot take the commit: :class:`ConflictError`
        before anything is written.
        """
        known, item = self.cache.at(execution_arn, head)
        if known:
            return item
        stored = read_pending(self._call, execution_arn)
        if stored is None or stored[0][0] != head[0]:
            raise ConflictError(execution_arn, head[0])
        self.cache.remember(execution_arn, stored[0], stored[1])
        return stored[1]

    def flush(self, execution_arn: str, head: Seen) -> dict[str, Any] | None:
        """Copy the pending events of the head ``head`` to their own item; returns the item."""
        item = self.at(execution_arn, head)
        if item is None or self.cache.copied(execution_arn, head):
            return item
        try:
            self._call("update_item", **flush_update(self.table, item))
        except Rejected:
            raise LogIntegrityError(
                f"{execution_arn}: history item {item['sk']['S']} holds another commit's events"
            ) from None
        return item

    def committed(
        self,
        execution_arn: str,
        head: Seen,
        expected: Seen,
        replaced: bool,
        carrying: dict[str, Any] | None,
    ) -> None:
        """After a commit from the head ``expected`` to ``head``: what it now holds pending.

        ``replaced``: by ``carrying`` (the head attributes of :func:`carried`), or removed
        when None; else left as they were.
        """
        if replaced:
            key = _key(execution_arn, HEAD)
            item = None if carrying is None else pending_item({**key, **carrying})
            self.cache.remember(execution_arn, head, item)
            return
        known, item = self.cache.at(execution_arn, expected)
        if known:
            self.cache.remember(execution_arn, head, item)
        else:
            self.cache.forget(execution_arn)
