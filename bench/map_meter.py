"""Write units per DynamoDB key, as DynamoDB bills them, for bench/map_scale.py.

:class:`KeyMeter` extends bench/cost.py's :class:`~bench.cost.Meter` (same item
sizing, same read units) with what a Map at scale needs: the write request
units of every item key, the most writes on one key and the highest rate on
one key over 1 s windows. Billing follows DynamoDB's rules: 1 KB per unit,
twice inside a transaction (a ``ConditionCheck`` included), and a ``PutItem``
or ``UpdateItem`` on an existing item is billed on the larger of the item
before and after the write (the meter remembers each item's attribute sizes).
The table's two global secondary indexes are billed too (:func:`_index_writes`):
every write of a listed head rewrites its copy in the listing index.

Two ways in, both through :meth:`KeyMeter.charge`:

- the DynamoDB log on moto: :meth:`~bench.cost.Meter.attach` to its boto3 client;
- the in-memory log: :class:`MeteredLog` wraps it and replays every write
  through a :class:`~stepflow.aws.DynamoDBLog` over a :class:`RecordingClient`
  that only meters: the items are the ones the DynamoDB log would write (same
  compression, same 400 KB item limit: an unstorable write raises as it would
  on DynamoDB, before the in-memory log takes it).

Keys and timestamps are buffered and folded in by :meth:`KeyMeter.fold`, which
the bench calls between stepper batches, so the meter's own bookkeeping is not
counted in a batch's peak memory.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from stepflow.aws import DynamoDBLog
from stepflow.aws.log_pending import PENDING_ATTRIBUTES
from stepflow.aws.topology import LIST_INDEX, LIST_INDEX_PK, RUNNING_INDEX, RUNNING_INDEX_PK
from stepflow.runtime.leases import LeaseFence, TaskLease
from stepflow.runtime.messages import Message
from stepflow.runtime.payloads import content_key
from stepflow.runtime.ports import CoordinationLog, ExecutionRecord

from bench.cost import Meter, _size, item_size

Key = tuple[str, str]
_SET = re.compile(r"(#?\w+)\s*=\s*(:\w+)")


def _key_of(attrs: dict[str, Any]) -> Key:
    return (str(attrs["pk"]["S"]), str(attrs["sk"]["S"]))


def _units(size: int, per: int) -> int:
    return max(1, math.ceil(size / per))


class KeyMeter(Meter):
    """Write request units per key, the busiest key and its peak rate; reads as cost.py."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.per_key: Counter[Key] = Counter()
        """Writes (requests, not units) per key."""
        self.wru_per_key: Counter[Key] = Counter()
        self.peak_rate = 0
        """The most writes on one key within one 1 s window."""
        self.peak_rate_key: Key | None = None
        self._attrs: dict[Key, dict[str, int]] = {}
        self.index_wru: Counter[str] = Counter()
        """Write units of the table's secondary indexes (see :func:`_index_writes`)."""
        self._pending: list[tuple[Key, int, float]] = []
        self._second = -1
        self._in_second: Counter[Key] = Counter()
        self._t0 = clock()

    # -- botocore hook (moto) and the recording client (memory) ----------------------

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.enabled:
            self.calls[f"dynamodb:{model.name}"] += 1
            self.charge(model.name, params)

    def charge(self, op: str, params: dict[str, Any]) -> None:
        """Meter one write request (``op`` as in the API: ``TransactWriteItems``...)."""
        if not self.enabled:
            return
        if op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                self._one(kind, body, 2)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            self._one(op[: -len("Item")], params, 1)
        elif op == "BatchWriteItem":  # billed per item, as the single writes
            for requests in params["RequestItems"].values():
                for request in requests:
                    ((kind, body),) = request.items()
                    self._one(kind[: -len("Request")], body, 1)

    def _after(self, model: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        super()._after(model, parsed, **kwargs)
        if self.enabled and model.name == "BatchGetItem":  # billed per item, as GetItem
            for items in parsed.get("Responses", {}).values():
                self.rru += sum(max(1, math.ceil(item_size(i) / 4096)) for i in items)

    def _one(self, kind: str, body: dict[str, Any], factor: int) -> None:
        if kind == "Put":
            key = _key_of(body["Item"])
            after = {name: len(name.encode()) + _size(v) for name, v in body["Item"].items()}
        else:
            key = _key_of(body["Key"])
            before = self._attrs.get(key) or {
                name: len(name.encode()) + _size(v) for name, v in body["Key"].items()
            }
            after = dict(before)
            if kind == "Update":
                after.update(_updated(body))
                for name in _removed(body):
                    after.pop(name, None)
            elif kind == "Delete":
                after = {}
        old = sum(self._attrs.get(key, {}).values())
        size = max(old, sum(after.values()))
        units = factor * _units(size, 1024)
        self.wru += units
        if kind != "ConditionCheck":
            for index, index_units in _index_writes(self._attrs.get(key, {}), after).items():
                self.wru += index_units
                self.index_wru[index] += index_units
        if kind in ("Put", "Update"):
            self._attrs[key] = after
        elif kind == "Delete":
            self._attrs.pop(key, None)
        if kind != "ConditionCheck":
            self._pending.append((key, units, self.clock()))
        else:
            self._pending.append((key, units, -1.0))  # billed, but not a write of the item

    def read_head(self, key: Key) -> None:
        """A strongly consistent read of a known item (the in-memory log's ``get``)."""
        if not self.enabled:
            return
        self.rru += _units(sum(self._attrs.get(key, {}).values()), 4096)

    # -- between batches --------------------------------------------------------------

    def fold(self) -> None:
        """Fold the buffered writes into the per-key totals and the 1 s windows."""
        for key, units, at in self._pending:
            self.wru_per_key[key] += units
            if at < 0:
                continue
            self.per_key[key] += 1
            second = int(at - self._t0)
            if second != self._second:
                self._second = second
                self._in_second.clear()
            self._in_second[key] += 1
            if self._in_second[key] > self.peak_rate:
                self.peak_rate = self._in_second[key]
                self.peak_rate_key = key
        self._pending.clear()

    def by_kind(self, parent: str) -> dict[str, float]:
        """Write units by item kind: the parent's HEAD/events, other executions', leases."""
        kinds: Counter[str] = Counter()
        for (pk, sk), units in self.wru_per_key.items():
            owner = "parent" if pk == f"EX#{parent}" else "other"
            kinds[f"{owner} {sk.split('#', 1)[0]}"] += units
        for index, units in self.index_wru.items():
            kinds[f"index {index}"] += units
        return dict(kinds)

    def known_size(self, key: Key) -> int:
        """The last size (bytes) the meter saw written to ``key``."""
        return sum(self._attrs.get(key, {}).values())


def _index_writes(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Write units the table's indexes bill for one item write (see aws/topology.py).

    ``gsi1`` (the listing index, projection ALL) rewrites its copy of a listed item
    on every write of it, billed on the item's new size, and deletes it (1 unit) when
    the item leaves the index; ``gsi2`` (the running index, KEYS_ONLY) is written
    only when an item enters or leaves it (1 unit each). An index write is never
    doubled by a transaction.
    """
    units: dict[str, int] = {}
    if LIST_INDEX_PK in after:
        units[LIST_INDEX] = _units(sum(after.values()), 1024)
    elif LIST_INDEX_PK in before:
        units[LIST_INDEX] = 1
    if (RUNNING_INDEX_PK in before) != (RUNNING_INDEX_PK in after):
        units[RUNNING_INDEX] = 1
    return units


def _set_values(body: dict[str, Any]) -> dict[str, Any]:
    """The attributes an ``UpdateItem``'s ``SET name = :value`` clauses write, by name."""
    names = body.get("ExpressionAttributeNames", {})
    values = body.get("ExpressionAttributeValues", {})
    sets = str(body.get("UpdateExpression", "")).split(" REMOVE ")[0]
    written: dict[str, Any] = {}
    for placeholder, value in _SET.findall(sets.removeprefix("SET ")):
        if value in values:
            written[names.get(placeholder, placeholder)] = values[value]
    return written


def _updated(body: dict[str, Any]) -> dict[str, int]:
    """Attribute sizes an ``UpdateItem``'s ``SET name = :value`` clauses write."""
    return {name: len(name.encode()) + _size(v) for name, v in _set_values(body).items()}


def _removed(body: dict[str, Any]) -> list[str]:
    names = body.get("ExpressionAttributeNames", {})
    expression = str(body.get("UpdateExpression", ""))
    if " REMOVE " not in f" {expression}":
        return []
    tail = f" {expression}".split(" REMOVE ", 1)[1]
    return [names.get(p.strip(), p.strip()) for p in tail.split(",")]


class RecordingClient:
    """A DynamoDB client stand-in that meters write requests and answers them empty.

    It keeps what the DynamoDB log reads back before a commit that replaces a head's
    pending events (stepflow.aws.log_pending): each head's ``seq`` and those events,
    as the writes it saw left them; a ``GetItem`` of a head answers with that.
    """

    def __init__(self, meter: KeyMeter) -> None:
        self.meter = meter
        self.heads: dict[tuple[str, str], dict[str, Any]] = {}

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        op = "".join(part.title() for part in operation.split("_"))

        def call(**params: Any) -> dict[str, Any]:
            self.meter.calls[f"dynamodb:{op}"] += 1
            self.meter.charge(op, params)
            self._mirror(op, params)
            if op == "GetItem":
                head = self.heads.get(_key_of(params["Key"]))
                return {"Item": dict(head)} if head is not None else {}
            if op == "Query" and self.meter.enabled:  # a create's look for leftovers
                self.meter.rru += 1  # as cost.py's Meter bills a query: at least 1 unit
            return {}

        return call

    def _mirror(self, op: str, params: dict[str, Any]) -> None:
        if op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                self._apply(kind, body)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            self._apply(op[: -len("Item")], params)
        elif op == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    ((kind, body),) = request.items()
                    self._apply(kind[: -len("Request")], body)

    def _apply(self, kind: str, body: dict[str, Any]) -> None:
        item = body.get("Item") or body.get("Key") or {}
        key = _key_of(item)
        if key[1] != "HEAD":
            return
        if kind == "Put":
            self.heads[key] = {k: v for k, v in item.items() if k in _MIRRORED}
        elif kind == "Delete":
            self.heads.pop(key, None)
        elif kind == "Update":
            head = self.heads.setdefault(key, dict(body["Key"]))
            head.update((k, v) for k, v in _set_values(body).items() if k in _MIRRORED)
            for name in _removed(body):
                head.pop(name, None)

    def restore(self, key: tuple[str, str], head: dict[str, Any] | None) -> None:
        """Put back a head as it was before a write the log it meters did not take."""
        if head is None:
            self.heads.pop(key, None)
        else:
            self.heads[key] = head


_MIRRORED = frozenset({"pk", "sk", "seq", *PENDING_ATTRIBUTES})


class CountingStore:
    """A payload store that keeps nothing and counts the S3 requests it would make."""

    def __init__(self, calls: Counter[str]) -> None:
        self.calls = calls

    def put(self, data: bytes) -> str:
        self.calls["PutObject"] += 1
        return content_key(data)

    def get(self, key: str) -> bytes:  # the sizer never reads
        raise NotImplementedError(key)


class MeteredLog:
    """A coordination log (the in-memory one) billed as the DynamoDB log would be billed."""

    def __init__(
        self,
        inner: CoordinationLog,
        meter: KeyMeter,
        *,
        compress_above: int,
        s3_calls: Counter[str] | None = None,
    ) -> None:
        self.inner = inner
        self.meter = meter
        self.client = RecordingClient(meter)
        self.sizer = DynamoDBLog(
            "stepflow-bench",
            client=self.client,
            compress_above=compress_above,
            payloads=CountingStore(s3_calls) if s3_calls is not None else None,
        )
        self.unmetered: Counter[str] = Counter()
        """Calls of log methods this wrapper does not know how to bill (new port methods)."""
        self.spent = 0.0
        """Seconds spent sizing writes (the bench subtracts them from its times)."""
        self.spent_cpu = 0.0
        """CPU seconds of the same."""

    def _size(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            write(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - started
            self.spent_cpu += time.process_time() - cpu

    def create(self, record: ExecutionRecord, events: Sequence[dict[str, Any]]) -> None:
        key = (f"EX#{record.execution_arn}", "HEAD")
        before = self.client.heads.get(key)
        self._size(self.sizer.create, record, events)
        try:
            self.inner.create(record, events)
        except Exception:  # the ARN was taken: the sizer's head is the one that was there
            self.client.restore(key, None if before is None else dict(before))
            raise

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Sequence[dict[str, Any]],
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        key = (f"EX#{record.execution_arn}", "HEAD")
        before = self.client.heads.get(key)
        self._size(self.sizer.commit, record, expected_seq, events, fence=fence)
        try:
            self.inner.commit(record, expected_seq, events, fence=fence)
        except Exception:  # not taken (a fence's conflict): the sizer's head did not move
            self.client.restore(key, None if before is None else dict(before))
            raise

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        self.meter.read_head((f"EX#{execution_arn}", "HEAD"))
        return self.inner.get(execution_arn)

    def get_many(self, execution_arns: Sequence[str]) -> list[ExecutionRecord | None]:
        for arn in execution_arns:
            self.meter.read_head((f"EX#{arn}", "HEAD"))
        return self.inner.get_many(execution_arns)

    def put_many(self, records: Sequence[ExecutionRecord]) -> None:
        self._size(self.sizer.put_many, records)
        self.inner.put_many(records)

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        # Billed even when its condition fails (the outbox was empty or the head moved on).
        self._size(self.sizer.clear_outbox, execution_arn, seq)
        self.inner.clear_outbox(execution_arn, seq)

    def keep_outbox(self, record: ExecutionRecord, messages: Sequence[Message]) -> None:
        self._size(self.sizer.keep_outbox, record, messages)
        self.inner.keep_outbox(record, messages)

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        self.meter.rru += 1 if self.meter.enabled else 0
        return self.inner.lease(execution_arn, task_id)

    def put_lease(self, lease: TaskLease) -> None:
        self._size(self.sizer.put_lease, lease)
        self.inner.put_lease(lease)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if callable(value) and name not in ("history", "list_executions"):
            self.unmetered[name] += 1  # a method (not e.g. the log's table name) it cannot bill
        return value
