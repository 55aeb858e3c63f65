"""JSON documents placed into DynamoDB items within DynamoDB's size limits.

A document (an execution's input, state, outbox, attributes; a decision's
events; a task lease's result) is stored in one of three forms, by attribute name:

- ``<name>`` (S): the JSON text, when it is short;
- ``<name>_z`` (B): the JSON zlib-compressed, above ``compress_above`` bytes (when
  that is shorter), with :mod:`stepflow.aws.log_zdict`'s preset dictionary,
  primed by the draft's ``primers`` (other documents of the item it repeats);
- ``<name>_ref`` (S): the key of the compressed JSON in a
  :class:`~stepflow.runtime.payloads.PayloadStore`, when the item would
  otherwise exceed the item budget or the transaction its budget.

:meth:`ItemPacker.seal` offloads the largest documents first, and writes them
to the store before returning, i.e. before the caller's transaction: a crash in
between leaves an unreferenced object, never a dangling reference.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from stepflow.aws.log_zdict import deflate, inflate
from stepflow.data.serialize import dumps as _dumps
from stepflow.runtime.leases import TaskLease
from stepflow.runtime.payloads import content_key

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item size limit (attribute names plus values)."""

MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's limit on the items of one ``TransactWriteItems``."""

MAX_TRANSACTION_BYTES = 4_000_000
"""DynamoDB's 4 MB limit on the items of one transaction (read conservatively)."""

ITEM_BUDGET = 350 * 1024
"""Default size above which an item's documents are offloaded (room left for keys)."""

TRANSACTION_BUDGET = 3_000_000
"""Default size above which a transaction's documents are offloaded."""

CACHE_BYTES = 32 * 1024 * 1024
"""How many bytes of recently read or written payloads a packer keeps."""


class PayloadTooLargeError(ValueError):
    """An item would exceed DynamoDB's 400 KB limit even compressed (and no store is set)."""


@dataclass(slots=True)
class Draft:
    """An item to write: its plain attributes and its documents as UTF-8 JSON.

    ``primers`` names, per document, the other documents of the item whose text
    primes its compression (read back with the same mapping, see :meth:`ItemPacker.texts`).
    """

    attributes: dict[str, Any]
    docs: dict[str, bytes] = field(default_factory=dict)
    primers: Mapping[str, Sequence[str]] = field(default_factory=dict)


def attribute_size(name: str, value: dict[str, Any]) -> int:
    """The bytes DynamoDB bills for one attribute (numbers counted as their text)."""
    (raw,) = value.values()
    return len(name.encode()) + (len(raw.encode()) if isinstance(raw, str) else len(raw))


def item_size(item: dict[str, Any]) -> int:
    """The size of an item, as counted against DynamoDB's item limit."""
    return sum(attribute_size(name, value) for name, value in item.items())


def doc_names(name: str) -> tuple[str, str, str]:
    """The three attribute names a document ``name`` may be stored under."""
    return name, f"{name}_z", f"{name}_ref"


def chunk_ranges(sizes: Sequence[int], limit: int, max_chunks: int) -> list[tuple[int, int]]:
    """Split parts of ``sizes`` bytes into contiguous ``[start, end)`` runs.

    A run holds about ``limit`` bytes (one oversized part makes a run of its
    own), raised as needed so that there are at most ``max_chunks`` runs.
    """
    if not sizes:
        return []
    limit = max(1, limit, -(-sum(sizes) // max_chunks) + max(sizes))
    ranges, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            ranges.append((start, i))
            start, total = i, 0
        total += size
    ranges.append((start, len(sizes)))
    return ranges


class ItemPacker:
    """Encodes, offloads and decodes documents for the log's items.

    ``offload`` writes compressed JSON to the payload store and returns its
    key (None: no store, oversized items are refused); ``fetch`` reads it back.
    Payloads are immutable, so recently seen ones are cached (by key): a
    reload does not refetch them, and a rewrite of an unchanged one is skipped.
    """

    def __init__(
        self,
        *,
        compress_above: int,
        item_budget: int,
        transaction_budget: int,
        offload: Callable[[bytes], str] | None,
        fetch: Callable[[str], bytes],
    ) -> None:
        self.compress_above = compress_above
        self.item_budget = item_budget
        self.transaction_budget = transaction_budget
        self._offload, self._fetch = offload, fetch
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def seal(self, drafts: Sequence[Draft], what: str) -> list[dict[str, Any]]:
        """The items of one write, each within its budget; ``what`` names them in errors."""
        items = [self._inline(draft) for draft in drafts]
        for draft, item in zip(drafts, items, strict=True):
            while item_size(item) > self.item_budget and self._spill(draft, item):
                pass
            if item_size(item) > MAX_ITEM_BYTES:
                raise PayloadTooLargeError(
                    f"{what}: a log item of ~{item_size(item)} bytes exceeds DynamoDB's 400 KB "
                    "item limit even compressed; configure a PayloadStore (PAYLOAD_BUCKET) "
                    "to store large payloads in S3"
                )
        while sum(map(item_size, items)) > self.transaction_budget:
            pairs = [(d, i) for d, i in zip(drafts, items, strict=True) if _inline_docs(d, i)]
            if not pairs:
                break
            draft, item = max(pairs, key=lambda pair: max(_inline_docs(*pair)))
            if not self._spill(draft, item):
                break
        total = sum(map(item_size, items))
        if total > MAX_TRANSACTION_BYTES or len(items) > MAX_TRANSACTION_ITEMS:
            raise PayloadTooLargeError(
                f"{what}: a transaction of {len(items)} items, ~{total} bytes, exceeds "
                "DynamoDB's limits (100 items, 4 MB); configure a PayloadStore (PAYLOAD_BUCKET)"
            )
        return items

    def read(self, item: dict[str, Any], name: str, default: Any) -> Any:
        """The document ``name`` of a stored item, whichever form it is in."""
        text = self.texts(item, (name,)).get(name)
        return default if text is None else loads(text)

    def texts(
        self,
        item: dict[str, Any],
        names: Sequence[str],
        primers: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, bytes | None]:
        """The JSON text of documents ``names`` (None: absent), primed as written."""
        found: dict[str, bytes | None] = {}

        def text(name: str) -> bytes | None:
            if name not in found:
                plain, compressed, ref = doc_names(name)
                if ref in item:  # offloaded documents are never primed
                    found[name] = inflate(self._get(item[ref]["S"]))
                elif compressed in item:
                    inline = [p for p in (primers or {}).get(name, ()) if _is_inline(item, p)]
                    known = [t for t in map(text, inline) if t is not None]
                    found[name] = inflate(item[compressed]["B"], (known, ()))
                else:
                    found[name] = item[plain]["S"].encode() if plain in item else None
            return found[name]

        for name in names:
            text(name)
        return found

    # -- helpers ---------------------------------------------------------------

    def _inline(self, draft: Draft) -> dict[str, Any]:
        item = dict(draft.attributes)
        for name in draft.docs:
            self._pack(draft, item, name)
        return item

    def _pack(self, draft: Draft, item: dict[str, Any], name: str) -> None:
        """Store document ``name`` inline in ``item``, primed by its inline primers only."""
        text = draft.docs[name]
        item.pop(name, None)
        item.pop(f"{name}_z", None)
        packed = text
        if len(text) > self.compress_above:
            inline = [p for p in draft.primers.get(name, ()) if f"{p}_ref" not in item]
            packed = deflate(text, [draft.docs[p] for p in inline if p in draft.docs])
        if len(packed) < len(text):
            item[f"{name}_z"] = {"B": packed}
        else:
            item[name] = {"S": text.decode()}

    def _spill(self, draft: Draft, item: dict[str, Any]) -> bool:
        """Offload the largest document still inline in ``item``; False if there is none."""
        inline = _inline_docs(draft, item)
        if not inline or self._offload is None:
            return False
        _, name, attr = max(inline)
        data = zlib.compress(draft.docs[name], 6)
        key = content_key(data)
        with self._lock:
            known = key in self._cache
        if not known:
            key = self._offload(data)
            self._remember(key, data)
        del item[attr]
        item[f"{name}_ref"] = {"S": key}
        for other, primers in draft.primers.items():  # an inline document never needs S3
            if name in primers and f"{other}_z" in item:
                self._pack(draft, item, other)
        return True

    def _get(self, key: str) -> bytes:
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                return data
        data = self._fetch(key)
        self._remember(key, data)
        return data

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > CACHE_BYTES // 4:
            return
        with self._lock:
            if key not in self._cache:
                self._cache[key] = data
                self._cached_bytes += len(data)
            while self._cached_bytes > CACHE_BYTES:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)


def _inline_docs(draft: Draft, item: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(size, document name, attribute name) of the draft's documents still inline in ``item``."""
    return [
        (attribute_size(attr, item[attr]), name, attr)
        for name in draft.docs
        for attr in doc_names(name)[:2]
        if attr in item
    ]


def _is_inline(item: dict[str, Any], name: str) -> bool:
    plain, compressed, _ = doc_names(name)
    return plain in item or compressed in item


def loads(text: bytes | str) -> Any:
    """A stored document's JSON (orjson; what only the standard library wrote too)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what only the standard library wrote (big integers)
        return json.loads(text)


def lease_draft(key: dict[str, Any], lease: TaskLease) -> Draft:
    """The item of a task lease record (``sk = TK#<task id>``); its result is a document."""
    item: dict[str, Any] = {
        **key,
        "version": {"N": str(lease.version)},
        "delivery": {"N": str(lease.delivery)},
        "lease_until": {"N": decimal_text(lease.until)},
        "released": {"N": "1" if lease.released else "0"},
        "expired": {"N": str(lease.expired)},
        "lease_seconds": {"N": decimal_text(lease.lease_seconds)},
    }
    for name in ("owner", "queue", "receipt"):
        value = getattr(lease, name)
        if value is not None:
            item[name] = {"S": value}
    docs = {"result": _dumps(lease.result).encode()} if lease.result is not None else {}
    return Draft(item, docs)


LEASE_OPTIONAL = ("owner", "queue", "receipt", *doc_names("result"))
"""A lease record's attributes that are absent when empty (an update removes them)."""


def read_lease(
    packer: ItemPacker, execution_arn: str, item: dict[str, Any], task_id: str | None = None
) -> TaskLease:
    """The lease record stored in ``item`` (an item written before versions counts as 1).

    ``task_id``: the record's, when its item is not ``TK#<task id>`` (an event item's).
    """

    def text(name: str) -> str | None:
        return str(item[name]["S"]) if name in item else None

    def number(name: str) -> float:
        return float(item[name]["N"]) if name in item else 0.0

    return TaskLease(
        execution_arn=execution_arn,
        task_id=task_id if task_id is not None else item["sk"]["S"][3:],
        version=int(item["version"]["N"]) if "version" in item else 1,
        delivery=int(number("delivery")),
        owner=text("owner"),
        until=number("lease_until"),
        released=number("released") == 1,
        expired=int(number("expired")),
        queue=text("queue"),
        receipt=text("receipt"),
        lease_seconds=number("lease_seconds"),
        result=packer.read(item, "result", None),
    )


def lease_condition(version: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The condition that the stored lease is at ``version`` (0: none written yet).

    Returns the expression, its names and its values.
    """
    if version == 0:
        return "attribute_not_exists(pk)", {}, {}
    if version == 1:  # a record from before versions had no attribute
        expression = "(#lv = :lv OR (attribute_exists(pk) AND attribute_not_exists(#lv)))"
        return expression, {"#lv": "version"}, {":lv": {"N": "1"}}
    return "#lv = :lv", {"#lv": "version"}, {":lv": {"N": str(version)}}


def decimal_text(value: float) -> str:
    """A number as DynamoDB stores it: exact decimal text, never exponent notation."""
    return format(Decimal(repr(float(value))), "f")
