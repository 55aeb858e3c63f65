"""The state machine registry: state machines, their versions and aliases, as documents.

A state machine ``name`` owns a partition of documents keyed by ``sk``: its
head (``HEAD``), its published versions (``V#<n:08>``) and its aliases
(``A#<alias>``). Every document carries an integer ``rev``; a write names the
``rev`` it replaces (None: the document must not exist), so two concurrent
updates cannot both win.

Definitions that executions run are stored apart, immutably, under the exact
(qualified) state machine ARN an execution records (:meth:`put_definition`):
updating a state machine never changes what a running execution executes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

import orjson

from stepflow.asl import StateMachine, parse

HEAD = "HEAD"
"""The sort key of a state machine's head document."""


class RegistryConflictError(Exception):
    """A conditional write failed: the document exists, is gone, or moved on."""

    def __init__(self, name: str, sk: str) -> None:
        super().__init__(f"state machine {name!r}: {sk} changed concurrently or exists")
        self.name, self.sk = name, sk


class StateMachineRegistry(Protocol):
    """Documents of state machines; every write is conditional."""

    def get(self, name: str, sk: str) -> dict[str, Any] | None:
        """The document ``sk`` of state machine ``name``, or None."""

    def put(self, name: str, sk: str, doc: dict[str, Any], *, expected_rev: int | None) -> None:
        """Write ``doc`` (its ``rev`` included) iff the stored rev is ``expected_rev``.

        ``expected_rev=None``: only if no such document exists. Otherwise
        raises :class:`RegistryConflictError` and writes nothing.
        """

    def delete(self, name: str, sk: str) -> None:
        """Remove one document (no error if it is absent)."""

    def query(
        self, name: str, prefix: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """Documents of ``name`` whose key starts with ``prefix``, in key order.

        Returns a page of ``(sk, doc)`` and the key to continue ``after`` (None at the end).
        """

    def heads(
        self, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The head documents of all state machines by name, a page at a time."""

    def put_definition(self, arn: str, definition: str) -> None:
        """Store the definition executions of ``arn`` run.

        Revision ARNs are unique; a version ARN is written again only when a
        deleted state machine is re-created and publishes that number anew.
        """

    def definition(self, arn: str) -> str | None:
        """The definition stored for exactly ``arn``, or None."""


class InMemoryRegistry:
    """A :class:`StateMachineRegistry` in dicts, guarded by a lock; documents are copied."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, dict[str, bytes]] = {}
        self._definitions: dict[str, str] = {}

    def get(self, name: str, sk: str) -> dict[str, Any] | None:
        """The document, or None."""
        with self._lock:
            raw = self._docs.get(name, {}).get(sk)
        return None if raw is None else _loads(raw)

    def put(self, name: str, sk: str, doc: dict[str, Any], *, expected_rev: int | None) -> None:
        """Conditional write (see the Protocol)."""
        with self._lock:
            docs = self._docs.setdefault(name, {})
            stored = docs.get(sk)
            stored_rev = None if stored is None else _loads(stored).get("rev")
            if stored_rev != expected_rev:
                raise RegistryConflictError(name, sk)
            docs[sk] = orjson.dumps(doc)

    def delete(self, name: str, sk: str) -> None:
        """Remove one document."""
        with self._lock:
            self._docs.get(name, {}).pop(sk, None)

    def query(
        self, name: str, prefix: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """A page of documents whose key starts with ``prefix``."""
        with self._lock:
            keys = sorted(k for k in self._docs.get(name, {}) if k.startswith(prefix))
            keys = [k for k in keys if after is None or k > after]
            page = [(k, _loads(self._docs[name][k])) for k in keys[:limit]]
        return page, (page[-1][0] if len(keys) > limit else None)

    def heads(
        self, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Head documents ordered by name."""
        with self._lock:
            names = sorted(n for n, docs in self._docs.items() if HEAD in docs)
            names = [n for n in names if after is None or n > after]
            page = [_loads(self._docs[n][HEAD]) for n in names[:limit]]
        return page, (names[limit - 1] if len(names) > limit else None)

    def put_definition(self, arn: str, definition: str) -> None:
        """Store (replacing a deleted state machine's version of the same number)."""
        with self._lock:
            self._definitions[arn] = definition

    def definition(self, arn: str) -> str | None:
        """The stored definition, or None."""
        with self._lock:
            return self._definitions.get(arn)


class DefinitionCache:
    """The stepper's definition lookup: parsed definitions by exact (qualified) ARN.

    The key is the revision or version ARN an execution recorded when it
    started (child executions record their parent's), and what is stored under
    such an ARN never changes, so an entry never goes stale; the cache only
    bounds its size (least recently used out). An ARN with no stored
    definition raises ``LookupError`` (the message is retried, then
    dead-lettered).
    """

    def __init__(self, registry: StateMachineRegistry, *, size: int = 256) -> None:
        self.registry = registry
        self.size = size
        self.loads = 0
        """How many definitions were read from the registry (the misses)."""
        self._lock = threading.Lock()
        self._machines: OrderedDict[str, StateMachine] = OrderedDict()

    def __call__(self, state_machine_arn: str) -> StateMachine:
        """The parsed definition stored for exactly ``state_machine_arn``."""
        with self._lock:
            machine = self._machines.get(state_machine_arn)
            if machine is not None:
                self._machines.move_to_end(state_machine_arn)
                return machine
        text = self.registry.definition(state_machine_arn)
        if text is None:
            raise LookupError(f"no definition stored for {state_machine_arn}")
        machine = parse(text)
        with self._lock:
            self.loads += 1
            self._machines[state_machine_arn] = machine
            while len(self._machines) > self.size:
                self._machines.popitem(last=False)
        return machine


def _loads(raw: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def unqualified(state_machine_arn: str) -> str:
    """A state machine ARN without its version, alias or revision qualifier."""
    parts = state_machine_arn.split(":")
    qualified = len(parts) > 7 and parts[5] == "stateMachine"
    return ":".join(parts[:7]) if qualified else state_machine_arn


def listing_key(
    execution_arn: str, state_machine_arn: str, attributes: dict[str, Any]
) -> str | None:
    """What ListExecutions lists a head under (None: not listed).

    A top-level execution: its unqualified state machine; a map run's child
    execution: its map run's ARN (``attributes["listed_under"]``, else
    ``attributes["map_run_arn"]``; ``listed_under`` is ``""`` for the run's own
    records, never listed); anything else keyed with ``#``: nothing.
    """
    listed = attributes.get("listed_under", attributes.get("map_run_arn"))
    if listed is not None:
        return str(listed) or None
    return None if "#" in execution_arn else unqualified(state_machine_arn)
