"""An execution keeps the cell version it started with: version pins in the coordination log.

A Task that names a cell without an exact version (``stepflow:cell:<name>``,
the latest, or ``stepflow:cell:<name>:<major>``, the latest of a major) is
resolved once per execution: the first call records the version it resolved
to as a pin, and every later call of that execution (a retry, a loop, a
Parallel branch or Map iteration, a redrive) runs the pinned version, even
after a deploy registered a newer one. An exact ``:x.y.z`` reference is never
remapped and writes nothing.

A pin is a lease record of the coordination log (as the effect journal's
are), task id ``cellver#<name>`` or ``cellver#<name>#<major>``, written once,
conditionally on its absence: two racing first calls agree on the record that
landed first. So an execution writes at most one pin per cell reference, in
memory and in DynamoDB alike, and the execution's retention removes it with
the rest. Pins never change once written, so a process keeps the ones it has
read in a small cache and later calls read nothing.

Why first use and not StartExecution: the API process that starts executions
does not load cells modules (only the processes that run tasks do), so it
cannot know which versions exist; the first call is the first moment a
process that knows them sees the execution (docs/cells-versions.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from stepflow.cells.registry import AnyCell, CellNotFoundError, CellRegistry, version_key
from stepflow.runtime.leases import LeaseConflictError, LeaseLog, TaskLease

PIN_PREFIX = "cellver#"
"""Version pins are lease records whose task id starts with this."""

CACHED_PINS = 4096
"""Pins a process remembers (pins never change, so a cached one is never stale)."""


def is_exact(version: str | None) -> bool:
    """True for a ``MAJOR.MINOR[.PATCH]`` reference, which is never remapped."""
    return version is not None and "." in version


def pinned_by(body: dict[str, Any]) -> str:
    """The execution whose pins the task ``body`` uses: the top execution of its Map or Parallel.

    A child the stepper starts (a Parallel's branch or an inline Map's iteration,
    ``<parent>#<child>``; a Map run's child, whose parent is ``<parent>#maprun/<id>``)
    has its parent in ``parent_arn``, and keeps the versions of the execution before
    the first ``#``: so one Map never runs two versions of a cell, even when a deploy
    lands half-way through it. An EXPRESS batch's tasks carry the parent's ARN already.
    An execution started by a ``states:startExecution`` task keeps its own.
    """
    arn = str(body.get("parent_arn") or body.get("execution_arn") or "")
    return arn.partition("#")[0]


def pin_id(name: str, major: str | None) -> str:
    """The lease-record id of the pin of ``stepflow:cell:<name>[:<major>]``."""
    return f"{PIN_PREFIX}{name}" if major is None else f"{PIN_PREFIX}{name}#{major}"


@dataclass(slots=True)
class VersionPins:
    """The cell versions each execution keeps, as lease records of ``log``."""

    log: LeaseLog
    cache_size: int = CACHED_PINS
    writes: int = 0
    """Pins this process wrote (a pin another process wrote first is not counted)."""
    _cache: OrderedDict[tuple[str, str], str] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pinned(self, execution_arn: str, task_id: str) -> str | None:
        """The version the execution keeps for the pin ``task_id``, or None."""
        key = (execution_arn, task_id)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        lease = self.log.lease(execution_arn, task_id)
        version = _version_of(lease)
        if version is not None:
            self._remember(key, version)
        return version

    def pin(self, execution_arn: str, task_id: str, version: str) -> str:
        """Pin ``version`` unless a pin exists; return the version the execution keeps."""
        lease = TaskLease(execution_arn, task_id, version=1, result={"version": version})
        try:
            self.log.put_lease(lease)
        except LeaseConflictError:
            kept = _version_of(self.log.lease(execution_arn, task_id))
            if kept is None:  # a record that is no pin: never written here
                raise
            version = kept
        else:
            with self._lock:
                self.writes += 1
        self._remember((execution_arn, task_id), version)
        return version

    def _remember(self, key: tuple[str, str], version: str) -> None:
        with self._lock:
            self._cache[key] = version
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def _version_of(lease: TaskLease | None) -> str | None:
    if lease is None or not isinstance(lease.result, dict):
        return None
    version = lease.result.get("version")
    return version if isinstance(version, str) else None


def resolve_for_execution(
    cells: CellRegistry,
    pins: VersionPins | None,
    execution_arn: str,
    name: str,
    version: str | None,
) -> AnyCell:
    """The cell an execution's Task ``stepflow:cell:<name>[:<version>]`` runs.

    An exact version resolves as named. Otherwise the execution's pin, if it has
    one, decides; else the latest (of the major) is resolved and pinned. Without
    ``pins`` or an execution ARN (a bare runtime call), nothing is pinned.

    Raises :class:`CellNotFoundError`, naming the kept version when the pinned
    one is no longer registered.
    """
    if pins is None or not execution_arn or is_exact(version):
        return cells.resolve(name, version)
    task_id = pin_id(name, version)
    kept = pins.pinned(execution_arn, task_id)
    if kept is None:
        kept = pins.pin(execution_arn, task_id, cells.resolve(name, version).version)
    for registered, cell in cells.cells.get(name, {}).items():
        if version_key(registered) == version_key(kept):
            return cell
    wanted = f"{name}:{version}" if version else name
    known = ", ".join(sorted(cells.keys())) or "none"
    raise CellNotFoundError(
        f"This execution keeps cell {name}@{kept} (the version its first "
        f"stepflow:cell:{wanted} task ran), which is no longer registered "
        f"(registered: {known}). Keep {name}@{kept} loaded until the executions that "
        "started with it have ended."
    )
