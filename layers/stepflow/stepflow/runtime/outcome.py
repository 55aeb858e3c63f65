"""The outcome of running a task: its output, or its error and cause."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What an invoker reports for one task attempt.

    ``ok`` with ``output``, or not ``ok`` with ``error`` and ``cause`` (either
    may be None, as in SendTaskFailure).
    """

    ok: bool
    output: Any = None
    error: str | None = None
    cause: str | None = None
    submitted: bool = False
    """The job was started (or, for a poll, is still running); its outcome comes later.
    ``output`` is then the start's response, ``handle`` what identifies the job and
    ``poll_after`` (seconds) when to poll it (None: its end arrives as an event)."""
    handle: dict[str, Any] | None = None
    poll_after: float | None = None
    effects: tuple[dict[str, Any], ...] = ()
    """A cell's effects as this attempt saw them (performed or replayed), for the history
    and metrics: :class:`stepflow.cells.context.EffectTrace` as dicts."""
    final: bool = False
    """The task's result itself, even for a ``.waitForTaskToken`` resource (whose outcome is
    otherwise the request's response, the result coming with SendTaskSuccess): a mocked
    callback task (:mod:`stepflow.testing.mocks`) answers at once, as Step Functions Local does."""

    @classmethod
    def succeeded(cls, output: Any) -> TaskOutcome:
        """A successful attempt with ``output``."""
        return cls(True, output)

    @classmethod
    def started(
        cls, output: Any, handle: dict[str, Any] | None, poll_after: float | None = None
    ) -> TaskOutcome:
        """A ``.sync`` job was started (or a poll found it running): its outcome comes later."""
        return cls(True, output, submitted=True, handle=handle, poll_after=poll_after)

    @classmethod
    def failed(cls, error: str | None, cause: str | None = None) -> TaskOutcome:
        """A failed attempt."""
        return cls(False, None, error, cause)


class TaskDeferredError(Exception):
    """The task was not run now and must be run again in ``seconds`` under the same attempt.

    Nothing was performed (e.g. a cell's effect whose circuit breaker is open): the runtime
    sends the task's message again, delayed, instead of failing it or counting a failed
    delivery (which would take it to the dead-letter queue after a few tries).
    """

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


TaskInvoker = Callable[[dict[str, Any]], TaskOutcome]
"""Runs the task described by an inline task message body and reports its outcome."""
