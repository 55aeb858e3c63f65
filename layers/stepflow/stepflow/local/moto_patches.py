"""What the local stack changes in moto before it serves StepFlow.

Five patches, all process-wide and idempotent, installed by
:meth:`stepflow.local.LocalStack.start` on its embedded moto server:

* :func:`serialize_dynamodb`: one DynamoDB request at a time, so two
  conditional writes cannot both pass (moto checks and applies without a lock).
* :func:`install_item_snapshots`: a ``TransactWriteItems`` snapshots the items
  it touches, not its tables. moto (5.x) deep-copies a table to roll it back,
  once per item of the transaction, so each commit costs O(table) and a map run
  of N durable children O(N^2) in moto alone (1,000 children did not finish in
  7 minutes). With the patch a commit costs O(items touched); the outcome is
  moto's own: all or nothing, ``TransactionCanceledException`` with one reason
  per item when a condition fails, a key named twice refused as before.
* :func:`install_cheap_queue_reads`: an SQS send or receive no longer counts
  the queue's messages. moto builds every attribute of the queue (three
  approximate counts, each a pass over all its messages) to read one setting
  on each SendMessage and on each message received, so with the thousand
  messages a map run's children queue each request cost O(queue): 84% of the
  busy time of a 1,000-child run. The settings read are the same. And the
  walk over a queue's messages that each receive makes reads the clock once,
  not twice per message; a long poll wakes when a delayed message becomes
  ready (moto's woke on sends only: a timer fired up to a second late).
* :func:`install_dispatch_cache`: the server finds the service behind a host
  name once (moto scanned its modules and URL patterns on every request).
* :func:`install_keyed_queries`: a Query reads its partition's items (an index
  query: all items, unsorted), not the whole table sorted: O(n log n) each.

moto is reached through importlib: it is a development dependency, and only
the local stack (never the deployed code) loads this module's patches.
"""

from __future__ import annotations

import copy
import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.RLock()
"""One DynamoDB request at a time in moto's server (see :func:`serialize_dynamodb`)."""

_IN_TRANSACTION = threading.local()
"""Set on the thread running a patched ``transact_write_items``: its tables are not copied."""

_MARK = "_stepflow_item_snapshots"


_CHEAP_QUEUE = threading.local()
"""Set on the thread in a patched SQS send or retention check: no message counts."""

_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def install() -> None:
    """Install every patch (idempotent): what the local stack's moto server runs with."""
    serialize_dynamodb()
    install_item_snapshots()
    install_cheap_queue_reads()
    install_dispatch_cache()
    install_keyed_queries()


def install_keyed_queries() -> None:
    """From now on moto's Query reads the items of its key, not the whole table sorted.

    moto's ``Table.query`` started from ``all_items()``: every item of the table,
    sorted by key (Python comparisons of ``DynamoType``), then filtered; so each
    Query cost O(n log n) in the table's size, and the outbox repair pass (16
    queries of the sparse running index) held moto's lock 11.6 s at 30,000 items,
    stalling the stack. Within a Query, ``all_items()`` now answers the items
    under the queried partition key (a table query) or every item unsorted (an
    index query); moto sorts its candidates by their full key afterwards either
    way, so the pages are the same.
    """
    table = importlib.import_module("moto.dynamodb.models.table").Table
    if getattr(table.query, _MARK, False):
        return
    query, all_items = table.query, table.all_items

    def keyed_query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index = args[6] if len(args) > 6 else kwargs.get("index_name")
        outer = getattr(_QUERY, "table", None), getattr(_QUERY, "candidates", None)
        _QUERY.table = self
        _QUERY.candidates = lambda: _candidates(self, None if index else hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _QUERY.table, _QUERY.candidates = outer

    def keyed_all_items(self: Any) -> Any:
        if getattr(_QUERY, "table", None) is self:
            return _QUERY.candidates()
        return all_items(self)

    setattr(keyed_query, _MARK, True)
    table.query, table.all_items = keyed_query, keyed_all_items


_QUERY = threading.local()
"""The table a patched Query runs on (this thread), and how to list its candidates."""


def _candidates(table: Any, hash_key: Any) -> list[Any]:
    """The items under ``hash_key`` (None: all of them), in no particular order."""
    if hash_key is not None:
        found = table.items.get(hash_key)
        if found is None:
            return []
        return list(found.values()) if table.range_key_attr else [found]
    if table.range_key_attr:
        return [item for group in table.items.values() for item in group.values()]
    return list(table.items.values())


def install_dispatch_cache() -> None:
    """From now on moto's server finds the service of a host name once, not per request.

    For each request moto's dispatcher listed its service modules (a directory
    scan) and tried every service's URL patterns on the request's host; the
    answer depends on the host name alone, so it is kept per host.
    """
    app = importlib.import_module("moto.moto_server.werkzeug_app").DomainDispatcherApplication
    if getattr(app.get_backend_for_host, _MARK, False):
        return
    lookup = app.get_backend_for_host
    found: dict[str, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host is None:
            return None
        if host not in found:
            backend = lookup(self, host)
            if backend is None:  # unknown: asked again next time, as moto does
                return None
            found[host] = backend
        return found[host]

    setattr(get_backend_for_host, _MARK, True)
    app.get_backend_for_host = get_backend_for_host


def install_cheap_queue_reads() -> None:
    """From now on moto's SendMessage and ReceiveMessage do not count the queue's messages.

    Within them moto reads one setting (``ContentBasedDeduplication``,
    ``MessageRetentionPeriod``) out of all the queue's attributes; while they
    run on a thread, the three approximate counts among those attributes answer
    0 there instead of walking every message. GetQueueAttributes still counts.
    """
    models = importlib.import_module("moto.sqs.models")
    backend, queue = models.SQSBackend, models.Queue
    if getattr(backend.send_message, _MARK, False):
        return
    for name in _COUNTS:
        setattr(queue, name, property(_uncounted(getattr(queue, name).fget)))
    for name in ("send_message", "is_message_valid_based_on_retention_period"):
        setattr(backend, name, _without_counts(getattr(backend, name)))
    queue.messages = property(_ready_messages(models))
    queue.wait_for_messages = _waking_wait(models)


def _waking_wait(models: Any) -> Callable[[Any, float], None]:
    """``Queue.wait_for_messages`` that also wakes when a hidden message becomes ready.

    A long poll waits on a condition notified by sends only: a delayed message (a
    timer, a retry's interval) that became ready during the wait was received at the
    end of the poller's window, up to a second late, depending on when that window
    began. (SQS answers a long poll as soon as a message becomes ready.)
    """

    def wait_for_messages(self: Any, timeout: float) -> None:
        now = models.unix_time_millis()
        ready_at = [
            max(m.visible_at, m.delayed_until)
            for m in self._messages
            if m.visible_at >= now or m.delayed_until > now
        ]
        if ready_at:
            timeout = min(timeout, max(0.001, (min(ready_at) - now) / 1000 + 0.002))
        with self._messages_lock:
            self._messages_lock.wait_for(lambda: self.messages, timeout=timeout)

    return wait_for_messages


def _ready_messages(models: Any) -> Callable[[Any], list[Any]]:
    """``Queue.messages`` (visible, not delayed) reading the clock once, not twice a message.

    Every receive, and every poller woken by a send, walks the whole queue through
    it; the delayed repair messages that preceded each API commit of an execution with
    work to send (before round 11; one a minute per execution) made that walk 80% of
    moto's SQS time.
    """

    def messages(self: Any) -> list[Any]:
        now = models.unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    return messages


def _uncounted(count: Callable[[Any], int]) -> Callable[[Any], int]:
    def counted(self: Any) -> int:
        return 0 if getattr(_CHEAP_QUEUE, "active", False) else count(self)

    return counted


def _without_counts(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = getattr(_CHEAP_QUEUE, "active", False)
        _CHEAP_QUEUE.active = True
        try:
            return method(self, *args, **kwargs)
        finally:
            _CHEAP_QUEUE.active = outer

    setattr(call, _MARK, True)
    return call


def serialize_dynamodb() -> None:
    """Make moto's server handle one DynamoDB request at a time (idempotent).

    moto checks a write's condition and applies it without a lock, so two
    concurrent conditional writes could both pass, which DynamoDB never lets
    happen; moto's own table copy (without :func:`install_item_snapshots`) also
    raised when a request changed the table during it. One lock around every
    request, from any client (the stack's own, a test, a script, the AWS CLI),
    restores both guarantees.
    """
    handler = importlib.import_module("moto.dynamodb.responses").DynamoHandler
    if getattr(handler.call_action, "_stepflow_serialized", False):
        return
    action = handler.call_action

    def call_action(self: Any) -> Any:
        with _LOCK:
            return action(self)

    call_action._stepflow_serialized = True  # type: ignore[attr-defined]
    handler.call_action = call_action


def item_snapshots_installed() -> bool:
    """Whether moto's transactions snapshot items (:func:`install_item_snapshots`)."""
    backend = importlib.import_module("moto.dynamodb.models").DynamoDBBackend
    return bool(getattr(backend.transact_write_items, _MARK, False))


def install_item_snapshots() -> None:
    """From now on moto's transactions copy the items they touch, not their tables."""
    models: Any = importlib.import_module("moto.dynamodb.models")
    backend = models.DynamoDBBackend
    if item_snapshots_installed():
        return
    table_type = importlib.import_module("moto.dynamodb.models.table").Table
    dynamo_type = importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType
    original: Callable[..., None] = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [
            snapshot
            for entry in transact_items
            if (snapshot := _snapshot(self.tables, entry, dynamo_type)) is not None
        ]
        streams = {id(t): (t, len(t.stream_shard.items)) for t, *_ in saved if t.stream_shard}
        _IN_TRANSACTION.active = True
        try:
            original(self, transact_items)
        except BaseException:
            for table, hash_key, range_key, item in reversed(saved):
                _restore(table, hash_key, range_key, item)
            for table, length in streams.values():
                del table.stream_shard.items[length:]  # the cancelled writes' stream records
            raise
        finally:
            _IN_TRANSACTION.active = False

    setattr(transact_write_items, _MARK, True)
    transact_write_items.original = original  # type: ignore[attr-defined]
    models.copy = _TablesKept(table_type)
    backend.transact_write_items = transact_write_items


def uninstall_item_snapshots() -> None:
    """Give moto back its own transactions (a table copy each); idempotent."""
    models: Any = importlib.import_module("moto.dynamodb.models")
    backend = models.DynamoDBBackend
    if not item_snapshots_installed():
        return
    backend.transact_write_items = backend.transact_write_items.original
    models.copy = copy


@contextmanager
def item_snapshots() -> Iterator[None]:
    """Within the block moto's transactions snapshot items; as before after it.

    Left installed at the end if it was installed before the block (e.g. by a
    local stack running in the same process).
    """
    already = item_snapshots_installed()
    install_item_snapshots()
    try:
        yield
    finally:
        if not already:
            uninstall_item_snapshots()


class _TablesKept:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend.

    A table is not copied while a patched transaction runs on this thread (its
    touched items are); everything else is copied as ``copy`` would.
    """

    def __init__(self, table_type: type) -> None:
        self.table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self.table_type) and getattr(_IN_TRANSACTION, "active", False):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _snapshot(
    tables: dict[str, Any], entry: dict[str, Any], dynamo_type: type
) -> tuple[Any, Any, Any, Any] | None:
    """(table, hash key, range key, a copy of the item or None) of one transaction entry.

    None when the entry names no known table or lacks its key: moto refuses
    such an entry without writing it, so there is nothing to restore.
    """
    if len(entry) != 1:
        return None
    op = next(iter(entry.values()))
    if not isinstance(op, dict):
        return None
    table = tables.get(op.get("TableName", ""))
    attrs = op.get("Key") or op.get("Item")
    if table is None or not isinstance(attrs, dict):
        return None
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if any(not isinstance(attrs.get(name), dict) for name in names):
        return None
    hash_key = dynamo_type(attrs[table.hash_key_attr])
    range_key = dynamo_type(attrs[table.range_key_attr]) if table.range_key_attr else None
    current = table.items.get(hash_key)
    if range_key is not None:
        current = current.get(range_key) if current is not None else None
    return table, hash_key, range_key, copy.deepcopy(current)


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    """Put back one item as it was before the transaction (absent: removed)."""
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    if item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item
