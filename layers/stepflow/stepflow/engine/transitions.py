"""A decision's working memory and how a frame moves on (the Decider's base class).

:class:`Transitions` records history, hands out ids, arms timers, and moves a
frame on when its state exits, fails (retry, catch or give up) or ends the
execution. It implements :class:`~stepflow.engine.step_context.StepContext`,
which is all the state modules see of a decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from orjson import dumps as json_bytes

from stepflow.asl.machine import StateMachine
from stepflow.asl.states.base import State
from stepflow.data.budget import UNLIMITED, Budget
from stepflow.data.serialize import dumps, utf8_size
from stepflow.engine import dataflow, distributed, fanout, map_inline
from stepflow.engine.context import context_object, iso
from stepflow.engine.failures import matches
from stepflow.engine.history_events import EXITED, HistoryEvent
from stepflow.engine.model import (
    CancelChild,
    CancelTask,
    ChildFinished,
    Command,
    Complete,
    ExecutionState,
    Frame,
    NotifyCaller,
    NotifyParent,
    StartTimer,
    UnreportedIterations,
)
from stepflow.engine.resources import ParameterCheck
from stepflow.errors import StatesError, StatesErrorName
from stepflow.limits import Limits

_RUNTIME_ERRORS = frozenset(
    {
        StatesErrorName.RUNTIME,
        StatesErrorName.QUERY_EVALUATION_ERROR,
        StatesErrorName.INTRINSIC_FAILURE,
        StatesErrorName.PARAMETER_PATH_FAILURE,
        StatesErrorName.RESULT_PATH_MATCH_FAILURE,
    }
)


_ENDINGS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
)
"""The events that end an execution: one of them may take the last slot under the cap."""


_NOTHING: Any = object()
"""No value encoded yet (:meth:`Transitions.text`)."""


class EventLimitReachedError(Exception):
    """The history would pass the execution's event cap (``Limits.max_events_per_execution``).

    Raised by :meth:`Transitions.emit` before the event that would leave no room for
    ``ExecutionFailed``; :func:`stepflow.engine.decide.decide` then fails the execution
    with ``States.Runtime``. It is not a :class:`StatesError`: no Retry or Catch sees it.
    """

    def __init__(self, max_events: int) -> None:
        super().__init__(max_events)
        self.max_events = max_events

    @property
    def cause(self) -> str:
        """The ``cause`` the execution fails with (names the limit)."""
        return (
            f"The execution's history reached {self.max_events} events, the limit "
            f"max_events_per_execution (STEPFLOW_MAX_EVENTS_PER_EXECUTION); a runaway loop?"
        )


class Transitions:
    """The working memory of one decision and the ways a frame moves on (engine-internal)."""

    def __init__(
        self,
        definition: StateMachine,
        state: ExecutionState,
        now: float,
        budget: int,
        time_budget: Budget = UNLIMITED,
        limits: Limits | None = None,
        check_parameters: ParameterCheck | None = None,
        unreported: Mapping[str, UnreportedIterations] | None = None,
        compact: bool = False,
    ) -> None:
        self.definition = definition
        self.unreported = dict(unreported or {})
        """What the inline map runs this decision abandons have not reported (by run id)."""
        self.time_budget = time_budget
        self.check_parameters = check_parameters
        """Why a Task's parameters cannot start it (None: no check); see :mod:`.tasks`."""
        self.max_events = None if limits is None else limits.max_events_per_execution
        """The history's cap (None: none); see :class:`EventLimitReachedError`."""
        self.max_payload = None if limits is None else limits.max_payload_bytes
        """The largest state output or task result, in UTF-8 bytes (None: no limit)."""
        self.max_error = None if limits is None else limits.max_error_length
        self.max_cause = None if limits is None else limits.max_cause_length
        self.capped = False
        self.state = state
        self.now = now
        self.now_iso = iso(now)
        self.budget = budget
        self.transitions = 0
        self.events: list[HistoryEvent] = []
        self.compact = compact
        """Record states' entered and exited events as compact tuples (see :meth:`emit_state`)."""
        self.commands: list[Command] = []
        self._text_of: Any = _NOTHING  # the last value encoded by text() (by identity) ...
        self._text = ""  # ... and its text

    # --- bookkeeping ----------------------------------------------------------------------

    def emit(
        self, frame: Frame | None, type_: str, key: str | None = None, details: Any = None
    ) -> int:
        """Append a history event on ``frame``'s thread and return its id."""
        if frame is not None and frame.silent:
            return frame.prev_id
        event_id, previous = self._claim(frame, type_)
        event: dict[str, Any] = {
            "id": event_id,
            "previousEventId": previous,
            "timestamp": self.now,
            "type": type_,
        }
        if key is not None:
            event[key] = details
        self.events.append(event)
        return event_id

    def emit_state(
        self, frame: Frame, type_: str, key: str, name: str, field: str, text: str
    ) -> int:
        """:meth:`emit` of a state's entered or exited event: its name and one JSON text.

        ``field`` is ``input`` or ``output``. With ``compact``, the event is recorded as
        a :data:`~stepflow.engine.history_events.CompactEvent` (the same event).
        """
        if frame.silent:
            return frame.prev_id
        s = self.state
        event_id = s.next_event_id
        if self.max_events is None or event_id - s.effect_events < self.max_events:
            s.next_event_id = event_id + 1  # under the cap: _claim's own path, inline (hot)
            previous, frame.prev_id = frame.prev_id, event_id
        else:
            event_id, previous = self._claim(frame, type_)
        if self.compact:
            self.events.append((event_id, previous, self.now, type_, key, name, field, text))
        else:
            details = {"name": name, field: text, f"{field}Details": {"truncated": False}}
            self.events.append(
                {
                    "id": event_id,
                    "previousEventId": previous,
                    "timestamp": self.now,
                    "type": type_,
                    key: details,
                }
            )
        return event_id

    def _claim(self, frame: Frame | None, type_: str) -> tuple[int, int]:
        """The next event's id and previous id (``frame``'s thread moves on to it).

        Raises :class:`EventLimitReachedError` if the event would pass the cap.
        """
        s = self.state
        event_id = s.next_event_id
        counted = event_id - s.effect_events  # effect events do not count (emit_effect)
        if (
            self.max_events is not None
            and counted >= self.max_events
            and not self.capped
            and (counted > self.max_events or type_ not in _ENDINGS)
        ):  # the cap's own slot is kept for the event that ends the execution
            raise EventLimitReachedError(self.max_events)
        s.next_event_id += 1
        if frame is None:
            return event_id, event_id - 1
        previous, frame.prev_id = frame.prev_id, event_id
        return event_id, previous

    def emit_effect(self, frame: Frame, type_: str, key: str, details: Any) -> None:
        """Append one of a cell's effect events; the event cap does not count it.

        The effect events of an attempt are recorded before its result, after its
        effects were performed: they must never be what fails the execution. They are
        bounded by :meth:`effect_room` instead (see :func:`~.effects.emit_effects`).
        """
        if frame.silent:
            return
        self.state.effect_events += 1  # first: the cap check below counts it out
        self.emit(frame, type_, key, details)

    def effect_room(self) -> int | None:
        """How many effect events the whole history still has room for under its cap."""
        if self.max_events is None:
            return None
        return max(0, self.max_events - self.state.next_event_id)

    def new_id(self, prefix: str) -> str:
        """A fresh id, unique within the execution."""
        self.state.counter += 1
        return f"{prefix}{self.state.counter}"

    def node(self, frame: Frame) -> State:
        """The state node ``frame`` is at."""
        return self.definition.machines[frame.machine].states[frame.state]

    def context(self, frame: Frame, **extra: Any) -> dict[str, Any]:
        """The context object (``$$`` / ``$states.context``) of ``frame``'s current state."""
        return context_object(self.state, frame, **extra)

    @staticmethod
    def encode(value: Any) -> str:
        """JSON text as Step Functions records it."""
        return dumps(value)

    def text(self, value: Any) -> str:
        """:meth:`encode`, remembering the last value: a state's output is the next one's input.

        By identity: JSON values are never changed in place, and no outside code runs
        during a decision.
        """
        if self._text_of is value:
            return self._text
        try:  # serialize.dumps, its usual case inline
            text = json_bytes(value).decode()
        except TypeError:
            text = dumps(value)
        self._text_of, self._text = value, text
        return text

    def start_timer(
        self, frame: Frame, kind: str, fire_at: float, timer_id: str | None = None
    ) -> str:
        """Arm a timer that delivers ``TimerFired`` for ``frame``."""
        timer_id = timer_id or self.new_id("w")
        self.state.timers[timer_id] = (frame.id, kind)
        self.commands.append(StartTimer(timer_id, fire_at))
        return timer_id

    def drop_timers(self, *, frame_id: str | None = None, task_id: str | None = None) -> None:
        """Forget timers that can no longer matter (their delivery is then ignored).

        ``task_id``: the timeout/heartbeat checks of a finished attempt;
        ``frame_id``: every timer of an aborted frame.
        """
        suffix = f":{task_id}" if task_id is not None else None
        timers = self.state.timers
        for timer_id, (owner, kind) in list(timers.items()):
            if owner == frame_id or (suffix is not None and kind.endswith(suffix)):
                del timers[timer_id]

    def push(self, frame: Frame) -> None:
        """Make ``frame`` runnable."""
        frame.phase = "ready"
        self.state.ready.append(frame.id)

    # --- failing and leaving states -------------------------------------------------------

    def state_error(self, frame: Frame, node: State, exc: StatesError) -> None:
        """A state's own evaluation failed: say where, then fail the state."""
        cause = exc.cause
        if exc.error in _RUNTIME_ERRORS:
            cause = (
                f"An error occurred while executing the state '{node.name}' "
                f"(entered at the event id #{frame.entered_id}). {exc.cause or ''}"
            ).rstrip()
        if exc.error == StatesErrorName.QUERY_EVALUATION_ERROR:
            self.emit(
                frame,
                "EvaluationFailed",
                "evaluationFailedEventDetails",
                {"error": exc.error, "cause": cause, "state": node.name},
            )
        self.fail_state(frame, node, exc.error, cause)

    def exit_state(
        self,
        frame: Frame,
        node: State,
        output: Any,
        *,
        assigned: dict[str, Any] | None = None,
        next_state: str | None = None,
        caught: bool = False,
    ) -> None:
        """Commit the state's variable assignments, record its exit and move ``frame`` on.

        An output larger than ``max_payload_bytes`` fails the state with
        ``States.DataLimitExceeded`` instead (``caught``: the output is a catcher's,
        so the frame fails without looking for another catcher).
        """
        if self._text_of is output:  # self.text, inline (the hot path)
            text = self._text
        else:
            try:  # serialize.dumps, its usual case inline (the hot path)
                text = json_bytes(output).decode()
            except TypeError:
                text = dumps(output)
            self._text_of, self._text = output, text
        limit = self.max_payload
        if limit is not None and len(text) * 3 > limit:  # see over_payload_limit
            too_large = self.over_payload_limit(text, "state's output")
            if too_large is not None:
                if caught:
                    self.frame_failed(frame, StatesErrorName.DATA_LIMIT_EXCEEDED.value, too_large)
                else:
                    error = StatesErrorName.DATA_LIMIT_EXCEEDED.value
                    self.fail_state(frame, node, error, too_large)
                return
        if assigned:
            details: dict[str, Any] = {
                "name": node.name,
                "output": text,
                "outputDetails": {"truncated": False},
            }
            frame.variables.update(assigned)
            details["assignedVariables"] = {k: dumps(v) for k, v in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
            self.emit(frame, EXITED[node.type], "stateExitedEventDetails", details)
        else:
            s = self.state
            event_id = s.next_event_id
            if (
                self.compact
                and not frame.silent
                and (self.max_events is None or event_id - s.effect_events < self.max_events)
            ):  # emit_state's compact event under the cap, inline (the hot path)
                s.next_event_id = event_id + 1
                self.events.append(
                    (
                        event_id,
                        frame.prev_id,
                        self.now,
                        EXITED[node.type],
                        "stateExitedEventDetails",
                        node.name,
                        "output",
                        text,
                    )
                )
                frame.prev_id = event_id
            else:
                self.emit_state(
                    frame,
                    EXITED[node.type],
                    "stateExitedEventDetails",
                    node.name,
                    "output",
                    text,
                )
        target = next_state or node.next
        if target is None:
            self.frame_done(frame, output)
            return
        frame.state = target
        frame.input = output
        frame.effective = None
        frame.map_run = frame.map_reports = None  # a redrive never runs a run left behind
        frame.fanout = None  # nor keeps the iterations of a Map left behind (fanout.run_map)
        frame.phase = "ready"  # self.push, inline (hot)
        self.state.ready.append(frame.id)

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
        if error == StatesErrorName.RUNTIME:
            self.frame_failed(frame, error, cause, fatal=True)
            return
        retriers = getattr(node, "retry", ())
        for i, retrier in enumerate(retriers):
            if matches(retrier.error_equals, error):
                if frame.retries[i] < retrier.max_attempts:
                    jitter = self.jitter(frame) if retrier.jitter_strategy == "FULL" else None
                    delay = retrier.delay(frame.retries[i], jitter)
                    frame.retries = (
                        *frame.retries[:i],
                        frame.retries[i] + 1,
                        *frame.retries[i + 1 :],
                    )
                    frame.retry_count += 1
                    frame.phase = "retry"
                    frame.timer_id = self.start_timer(frame, "retry", self.now + delay)
                    return
                break
        for catcher in getattr(node, "catch", ()):
            if matches(catcher.error_equals, error):
                fanout.state_failed_event(self, frame, node)
                if error_output is None:
                    error_output = dataflow.error_output(error, cause)
                try:
                    output, assigned = dataflow.catch_output(
                        self, frame, node, catcher, error_output
                    )
                except StatesError as exc:
                    self.frame_failed(frame, exc.error, exc.cause)
                    return
                self.exit_state(
                    frame, node, output, assigned=assigned, next_state=catcher.next, caught=True
                )
                return
        fanout.state_failed_event(self, frame, node)
        self.frame_failed(frame, error, cause)

    def over_payload_limit(self, text: str, what: str) -> str | None:
        """The ``States.DataLimitExceeded`` cause if the JSON ``text`` is too large, else None."""
        limit = self.max_payload
        if limit is None or len(text) * 3 <= limit:  # UTF-8: at most 3 bytes a UTF-16 unit
            return None
        size = utf8_size(text)
        if size <= limit:
            return None
        return (
            f"The {what} is {size} bytes, more than the {limit} bytes of max_payload_bytes "
            "(STEPFLOW_MAX_PAYLOAD_BYTES)."
        )

    def jitter(self, frame: Frame) -> float:
        """A deterministic number in [0, 1) for FULL jitter (seeded by the execution)."""
        material = f"{self.state.seed}:{frame.id}:{frame.retry_count}".encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2**64

    def frame_done(self, frame: Frame, output: Any) -> None:
        """A thread of control finished successfully."""
        frame.phase = "done"
        frame.output = output
        if frame.parent is None:
            s = self.state
            s.status, s.output = "SUCCEEDED", output
            self.emit(
                frame,
                "ExecutionSucceeded",
                "executionSucceededEventDetails",
                {"output": self.text(output), "outputDetails": {"truncated": False}},
            )
            self.finish()
            self.completed(Complete("SUCCEEDED", output=output))
        else:
            fanout.child_done(self, frame)

    def frame_failed(
        self, frame: Frame, error: str | None, cause: str | None, *, fatal: bool = False
    ) -> None:
        """A thread of control failed; ``fatal`` errors fail the whole execution at once."""
        frame.phase = "failed"
        # a Fail state's ErrorPath/CausePath or JSONata, or a task's failure, may be any size
        if error is not None and self.max_error is not None:
            error = error[: self.max_error]
        if cause is not None and self.max_cause is not None:
            cause = cause[: self.max_cause]
        frame.error, frame.cause = error, cause
        if frame.parent is None or fatal:
            self.end_execution("FAILED", "ExecutionFailed", error, cause)
        else:
            fanout.child_failed(self, frame)

    def end_execution(
        self, status: Any, event_type: str, error: str | None, cause: str | None
    ) -> None:
        """Finish the execution with a status other than SUCCEEDED."""
        s = self.state
        details: dict[str, Any] = {}
        if error is not None:
            details["error"] = error
        if cause is not None:
            details["cause"] = cause
        key = event_type[0].lower() + event_type[1:] + "EventDetails"
        root = s.frames.get("")
        if self.unreported and not self.capped:
            for frame in list(s.frames.values()):  # what happened before the end comes first
                map_inline.abandon(self, frame, aborted=False)
        self.emit(root, event_type, key, details)
        s.status, s.error, s.cause = status, error, cause
        for task_id in s.tasks:
            self.cancel_task(task_id)
        self.commands.extend(CancelChild(child_id) for child_id in s.children)
        distributed.cancel_all(self)
        self.finish()
        self.completed(Complete(status, error=error, cause=cause))

    def end_execution_over_cap(self, exc: EventLimitReachedError) -> None:
        """Fail the execution because its history reached the cap (its last event)."""
        self.capped = True
        self.state.status = "RUNNING"  # e.g. reached while recording another ending
        self.end_execution("FAILED", "ExecutionFailed", StatesErrorName.RUNTIME.value, exc.cause)

    def cancel_task(self, task_id: str) -> None:
        """Ask the runtime to stop task ``task_id`` (and the job it submitted, if any)."""
        frame_id = self.state.tasks.get(task_id)
        # not ``tasks.get(task_id, "")``: "" is the root frame's id
        frame = None if frame_id is None else self.state.frames.get(frame_id)
        if frame is None:
            self.commands.append(CancelTask(task_id))
            return
        node = self.node(frame)
        resource = str(getattr(node, "resource", ""))
        self.commands.append(CancelTask(task_id, resource, frame.handle))

    def completed(self, complete: Complete) -> None:
        """Report the end of the execution (to its parent or its caller, if any)."""
        self.commands.append(complete)
        if self.state.caller is not None:
            self.commands.append(
                NotifyCaller(
                    dict(self.state.caller),
                    complete.status,
                    complete.output,
                    complete.error,
                    complete.cause,
                )
            )
        parent = self.state.parent
        if parent is not None:
            done = ChildFinished(
                str(parent["child_id"]),
                complete.status,
                complete.output,
                complete.error,
                complete.cause,
            )
            self.commands.append(NotifyParent(str(parent["arn"]), done))

    def finish(self) -> None:
        """Drop all open tasks, timers and ready frames of a finished execution."""
        s = self.state
        s.tasks.clear()
        s.timers.clear()
        s.ready.clear()
        s.children.clear()
