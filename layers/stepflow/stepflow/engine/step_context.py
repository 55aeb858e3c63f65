"""What a state module may ask of the decision it runs in: the narrow step context.

The state modules (``simple``, ``tasks``, ``waits``, ``fanout``, ``children``,
``dataflow``) take one of these protocols instead of the Decider itself, so
none of them imports ``decide``. :class:`~stepflow.engine.transitions.Transitions`
(and so the Decider) implements both.
"""

from __future__ import annotations

from typing import Any, Protocol

from stepflow.asl.states.base import State
from stepflow.data.budget import Budget
from stepflow.engine.model import Command, ExecutionState, Frame, UnreportedIterations
from stepflow.engine.resources import ParameterCheck
from stepflow.errors import StatesError


class EvalContext(Protocol):
    """Enough to evaluate a state's fields: the execution and its context object."""

    @property
    def state(self) -> ExecutionState:
        """The execution state the decision is changing."""
        ...

    def context(self, frame: Frame, **extra: Any) -> dict[str, Any]:
        """The context object (``$$`` / ``$states.context``) of ``frame``'s current state."""
        ...

    @property
    def time_budget(self) -> Budget:
        """The decision's time budget; evaluation checks it (see :mod:`stepflow.data.budget`)."""
        ...


class StepContext(EvalContext, Protocol):
    """The decision as a state sees it: history, ids, timers, commands and moving on."""

    @property
    def now(self) -> float:
        """The time of the decision (epoch seconds)."""
        ...

    @property
    def commands(self) -> list[Command]:
        """The commands for the driver, in order; a state appends to them."""
        ...

    @property
    def unreported(self) -> dict[str, UnreportedIterations]:
        """What the inline map runs abandoned by this decision have not reported (by run id)."""
        ...

    @property
    def check_parameters(self) -> ParameterCheck | None:
        """Why a Task's effective parameters cannot start it (None: no check is injected)."""
        ...

    def emit(
        self, frame: Frame | None, type_: str, key: str | None = None, details: Any = None
    ) -> int:
        """Append a history event on ``frame``'s thread and return its id."""
        ...

    def emit_effect(self, frame: Frame, type_: str, key: str, details: Any) -> None:
        """Append one of a cell's effect events (not counted by the event cap)."""
        ...

    def effect_room(self) -> int | None:
        """How many effect events the history still has room for under its cap (None: no cap)."""
        ...

    def new_id(self, prefix: str) -> str:
        """A fresh id, unique within the execution."""
        ...

    def node(self, frame: Frame) -> State:
        """The state node ``frame`` is at."""
        ...

    def encode(self, value: Any) -> str:
        """JSON text as Step Functions records it."""
        ...

    def start_timer(
        self, frame: Frame, kind: str, fire_at: float, timer_id: str | None = None
    ) -> str:
        """Arm a timer that delivers ``TimerFired`` for ``frame``; returns its id."""
        ...

    def drop_timers(self, *, frame_id: str | None = None, task_id: str | None = None) -> None:
        """Forget the timers of a finished task attempt or of an aborted frame."""
        ...

    def push(self, frame: Frame) -> None:
        """Make ``frame`` runnable."""
        ...

    def cancel_task(self, task_id: str) -> None:
        """Ask the runtime to stop task ``task_id`` (and the job it submitted, if any)."""
        ...

    def exit_state(
        self,
        frame: Frame,
        node: State,
        output: Any,
        *,
        assigned: dict[str, Any] | None = None,
        next_state: str | None = None,
    ) -> None:
        """Commit the state's assignments, record its exit and move ``frame`` on."""
        ...

    def fail_state(
        self,
        frame: Frame,
        node: State,
        error: str | None,
        cause: str | None,
        *,
        error_output: dict[str, Any] | None = None,
    ) -> None:
        """The state failed: retry it, catch the error, or fail the frame.

        ``error_output`` replaces the ``{"Error", "Cause"}`` object a Catch sees.
        """
        ...

    def over_payload_limit(self, text: str, what: str) -> str | None:
        """The ``States.DataLimitExceeded`` cause if the JSON ``text`` is too large, else None."""
        ...

    def state_error(self, frame: Frame, node: State, exc: StatesError) -> None:
        """A state's own evaluation raised ``exc``: say where, then fail the state."""
        ...

    def frame_failed(
        self, frame: Frame, error: str | None, cause: str | None, *, fatal: bool = False
    ) -> None:
        """A thread of control failed; ``fatal`` errors fail the whole execution."""
        ...
