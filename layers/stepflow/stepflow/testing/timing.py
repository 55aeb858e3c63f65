"""Handlers that take virtual time, or never answer: ``Delay`` and ``NO_ANSWER``.

In a :class:`~stepflow.testing.WorkflowEnvironment` (and so in ``execute``) a handler
may return ``Delay(300, result)``: the task then ends 300 virtual seconds later with
``result`` (an exception instance fails it), so a ``TimeoutSeconds`` of 60 fires first.
A callback (``.waitForTaskToken``) or activity handler may return ``NO_ANSWER``: the
request was received and nobody ever answers, so ``HeartbeatSeconds`` or
``TimeoutSeconds`` fires on the virtual clock. The handler itself is called once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from stepflow.runtime.outcome import TaskDeferredError, TaskInvoker, TaskOutcome

__all__ = ["NO_ANSWER", "Delay", "HandlerDelayedError", "VirtualTimeTasks"]


@dataclass(frozen=True, slots=True)
class Delay:
    """A handler's answer that takes ``seconds`` of virtual time.

    ``result`` is the task's output then, or an exception instance to fail it with.
    """

    seconds: float
    result: Any = None


class _NoAnswer:
    """The type of :data:`NO_ANSWER`."""

    def __repr__(self) -> str:
        return "NO_ANSWER"


NO_ANSWER: Final = _NoAnswer()
"""Returned by a callback or activity handler: the task is never answered."""


class HandlerDelayedError(TaskDeferredError):
    """A handler answered with :class:`Delay` (``outcome`` due ``seconds`` later).

    ``outcome`` None: :data:`NO_ANSWER`, never answered (``seconds`` is infinite).
    """

    def __init__(self, seconds: float, outcome: TaskOutcome | None) -> None:
        super().__init__(f"the handler answers in {seconds} virtual seconds", seconds)
        self.outcome = outcome


class VirtualTimeTasks:
    """The environment's outermost task invoker: holds a delayed handler's outcome.

    A task whose handler answered with :class:`Delay` is sent back to the queue
    (:class:`~stepflow.runtime.outcome.TaskDeferredError`) and, delivered again once
    its time has come, answered with the outcome kept here, without calling the
    handler again. A task timed out meanwhile is never run again (its attempt is closed):
    the environment :meth:`free`-s its outcome once idle.
    """

    def __init__(self, inner: TaskInvoker, clock: Callable[[], float]) -> None:
        self.inner, self.clock = inner, clock
        self.pending: dict[tuple[str, str], tuple[float, TaskOutcome]] = {}
        self._lock = threading.Lock()

    def free(self, is_open: Callable[[str, str], bool]) -> None:
        """Forget the outcomes of attempts no longer open (``is_open(execution, task_id)``)."""
        with self._lock:
            held = list(self.pending)
        closed = [key for key in held if not is_open(*key)]
        with self._lock:
            for key in closed:
                self.pending.pop(key, None)

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task, or give the outcome its delayed handler left for now."""
        key = (str(body.get("execution_arn", "")), str(body.get("task_id", "")))
        with self._lock:
            held = self.pending.get(key)
        if held is not None and body.get("op") is None:
            due, outcome = held
            if due > self.clock():
                raise TaskDeferredError("the handler has not answered yet", due - self.clock())
            with self._lock:
                self.pending.pop(key, None)
            return outcome
        try:
            return self.inner(body)
        except HandlerDelayedError as delayed:
            if delayed.outcome is None:  # NO_ANSWER on a task that is not a callback
                return TaskOutcome.failed(
                    "States.Runtime",
                    "NO_ANSWER is for callback (.waitForTaskToken) and activity handlers; "
                    "return Delay(seconds, result) to make a task take time.",
                )
            with self._lock:
                self.pending[key] = (self.clock() + delayed.seconds, delayed.outcome)
            raise TaskDeferredError(str(delayed), delayed.seconds) from None


def delayed_result(result: Any) -> tuple[float, Any] | None:
    """``(seconds, result)`` of a :class:`Delay` or :data:`NO_ANSWER`; None otherwise.

    Raises ValueError for a delay that is negative, not a number or not finite.
    """
    if result is NO_ANSWER:
        return math.inf, None
    if not isinstance(result, Delay):
        return None
    seconds = result.seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"Delay seconds must be a number, not {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"Delay seconds must be finite and at least 0, not {seconds!r}")
    return float(seconds), result.result
