"""The hook protocol, and the dispatcher that feeds hooks from the change stream."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from stepflow.hooks.events import HookEvent, HookKind

LOG = logging.getLogger(__name__)


class Hook(Protocol):
    """Something told about executions after their events are committed.

    ``kinds`` are the hook kinds it wants (None: all). ``handle`` gets them in
    commit order per execution; it raises to have the batch delivered again (the
    stream delivers at least once: a hook drops repeats by :attr:`HookEvent.dedup_key`).
    """

    name: str
    kinds: frozenset[HookKind] | None

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Act on ``events`` (idempotently)."""
        ...


class HookFailedError(Exception):
    """One or more hooks failed on a batch; ``failed`` names them."""

    def __init__(self, failed: list[str]) -> None:
        super().__init__(f"hooks failed: {', '.join(failed)}")
        self.failed = failed


@dataclass(slots=True)
class Dispatcher:
    """Hands each hook the events it wants; every hook is tried even when one fails."""

    hooks: list[Hook] = field(default_factory=list)

    def dispatch(self, events: Sequence[HookEvent]) -> None:
        """Give ``events`` to every hook. Raises :class:`HookFailedError` if any failed."""
        failed: list[str] = []
        for hook in self.hooks:
            wanted = [e for e in events if hook.kinds is None or e.kind in hook.kinds]
            if not wanted:
                continue
            try:
                hook.handle(wanted)
            except Exception:  # isolated: the other hooks still get the batch
                LOG.exception("hook %s failed on %d event(s)", hook.name, len(wanted))
                failed.append(hook.name)
        if failed:
            raise HookFailedError(failed)

    def end_batch(self, remaining: Callable[[], float] | None = None) -> None:
        """Call ``end_batch(remaining)`` on the hooks that have it; never raises.

        Such hooks batch their work per invocation; ``remaining()``: its seconds left.
        """
        for hook in self.hooks:
            finish = getattr(hook, "end_batch", None)
            if not callable(finish):
                continue
            try:
                finish(remaining)
            except Exception:  # the records are dispatched: a batching hook resumes later
                LOG.exception("hook %s failed at the end of a batch", hook.name)
