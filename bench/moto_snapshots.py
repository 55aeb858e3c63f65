"""Make moto's DynamoDB transactions cost O(items touched) instead of O(table).

moto (5.x) deep-copies every table a ``TransactWriteItems`` names before
applying it, to roll back if the transaction is cancelled. With a table of N
executions that is O(N) per commit and a Map run on moto becomes O(N^2) in
moto alone (1,000 items did not finish in 10 minutes). This replaces the
table copy with a copy of only the items the transaction touches, restored
the same way on cancellation: the same all-or-nothing outcome, so the
bench's figures are StepFlow's, not moto's snapshot.

Used by bench/map_scale.py (``--moto-snapshots items``, the default);
``--moto-snapshots table`` keeps moto as it is.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _TablesKept:
    """Stands in for the ``copy`` module inside moto's DynamoDB models: tables are not copied."""

    def __init__(self, table_type: type) -> None:
        self.table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self.table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


@contextmanager
def item_snapshots() -> Iterator[None]:
    """Within the block, moto's transactions snapshot the items they touch, not their tables."""
    models = importlib.import_module("moto.dynamodb.models")
    table_type = importlib.import_module("moto.dynamodb.models.table").Table
    dynamo_type = importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType
    backend = models.DynamoDBBackend
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            attrs = op.get("Key") or op.get("Item")
            if table is None or not attrs:
                continue
            hash_key = dynamo_type(attrs[table.hash_key_attr])
            range_key = dynamo_type(attrs[table.range_key_attr]) if table.range_key_attr else None
            existing = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(existing)))
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                _restore(table, hash_key, range_key, item)
            raise

    models.copy = _TablesKept(table_type)
    backend.transact_write_items = transact_write_items
    try:
        yield
    finally:
        backend.transact_write_items = original
        models.copy = copy


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items[hash_key].pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item
