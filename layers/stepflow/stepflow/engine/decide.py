"""The pure transition function: ``decide(definition, state, event, now) -> Decision``.

A decision applies one event to a copy of the execution state, then runs every
frame that is ready until each one blocks (on a task, a timer or children) or
finishes, or until the transition budget is spent. It records history events
and returns the commands the driver must carry out. It performs no I/O, reads
no clock and never sleeps.
"""

from __future__ import annotations

import hashlib
from typing import Any

from stepflow.asl.machine import StateMachine
from stepflow.asl.states.base import State
from stepflow.asl.states.choice import ChoiceState
from stepflow.asl.states.map import MapState
from stepflow.asl.states.parallel import ParallelState
from stepflow.asl.states.simple import FailState, PassState, SucceedState
from stepflow.asl.states.task import TaskState
from stepflow.asl.states.wait import WaitState
from stepflow.data.serialize import dumps
from stepflow.engine import children, dataflow, fanout, simple, tasks, waits
from stepflow.engine.context import context_object, iso
from stepflow.engine.failures import matches
from stepflow.engine.model import (
    CancelChild,
    CancelTask,
    ChildFinished,
    Command,
    Complete,
    Continue,
    ContinueLater,
    Decision,
    Event,
    ExecutionState,
    Frame,
    NotifyParent,
    Redrive,
    Start,
    StartTimer,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskStarted,
    TaskSucceeded,
    TimerFired,
)
from stepflow.errors import StatesError, StatesErrorName

DEFAULT_BUDGET = 10_000
"""States entered per decision before the engine yields with ``ContinueLater``."""

_RUNTIME_ERRORS = frozenset(
    {
        StatesErrorName.RUNTIME,
        StatesErrorName.QUERY_EVALUATION_ERROR,
        StatesErrorName.INTRINSIC_FAILURE,
        StatesErrorName.PARAMETER_PATH_FAILURE,
        StatesErrorName.RESULT_PATH_MATCH_FAILURE,
    }
)


def decide(
    definition: StateMachine,
    state: ExecutionState,
    event: Event,
    now: float,
    *,
    budget: int = DEFAULT_BUDGET,
    consume: bool = False,
) -> Decision:
    """Apply ``event`` at time ``now`` (epoch seconds) and run until every frame blocks.

    ``state`` is not modified; the next state is in the returned Decision.
    With ``consume=True`` the caller hands ``state`` over instead: it becomes the
    next state, changed in place, which saves copying every frame per event
    (for a driver that keeps no other reference to it).
    """
    decider = Decider(definition, state if consume else state.copy(), now, budget)
    try:
        decider.apply(event)
        decider.run()
    except StatesError as exc:  # a safety net: every state handler reports its own errors
        decider.end_execution("FAILED", "ExecutionFailed", exc.error, exc.cause)
    return Decision(decider.events, decider.state, decider.commands)


class Decider:
    """The working memory of one decision (internal to the engine)."""

    def __init__(
        self, definition: StateMachine, state: ExecutionState, now: float, budget: int
    ) -> None:
        self.definition = definition
        self.state = state
        self.now = now
        self.now_iso = iso(now)
        self.budget = budget
        self.transitions = 0
        self.events: list[dict[str, Any]] = []
        self.commands: list[Command] = []

    # --- bookkeeping ----------------------------------------------------------------------

    def emit(
        self, frame: Frame | None, type_: str, key: str | None = None, details: Any = None
    ) -> int:
        """Append a history event on ``frame``'s thread and return its id."""
        if frame is not None and frame.silent:
            return frame.prev_id
        s = self.state
        event_id = s.next_event_id
        s.next_event_id += 1
        event: dict[str, Any] = {
            "id": event_id,
            "previousEventId": frame.prev_id if frame is not None else event_id - 1,
            "timestamp": self.now,
            "type": type_,
        }
        if key is not None:
            event[key] = details
        if frame is not None:
            frame.prev_id = event_id
        self.events.append(event)
        return event_id

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

    # --- events -----------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Apply one incoming event to the state."""
        s = self.state
        if s.status != "RUNNING":
            if isinstance(event, Redrive):
                self.redrive()
            return
        if isinstance(event, Start):
            self.start()
        elif isinstance(event, TaskSucceeded | TaskFailed | TaskStarted | TaskHeartbeat):
            frame_id = s.tasks.get(event.task_id)
            if frame_id is None:  # stale, duplicate or fenced-off result
                return
            frame = s.frames[frame_id]
            if isinstance(event, TaskStarted):
                tasks.task_started(self, frame)
            elif isinstance(event, TaskHeartbeat):
                tasks.task_heartbeat(self, frame)
            else:
                tasks.task_finished(self, frame, event)
        elif isinstance(event, TimerFired):
            ref = s.timers.pop(event.timer_id, None)
            if ref is not None:
                self.timer_fired(event.timer_id, *ref)
        elif isinstance(event, Stop):
            self.end_execution("ABORTED", "ExecutionAborted", event.error, event.cause)
        elif isinstance(event, ChildFinished):
            children.child_finished(self, event)
        elif isinstance(event, Continue):
            pass

    def start(self) -> None:
        """Record ``ExecutionStarted`` and make the root frame runnable."""
        s = self.state
        if s.frames:  # a duplicate Start
            return
        root = self.definition.machines[s.machine] if s.machine else self.definition.root
        start_input = s.root_input if s.machine else s.input
        self.emit(
            None,
            "ExecutionStarted",
            "executionStartedEventDetails",
            {
                "input": dumps(start_input),
                "inputDetails": {"truncated": False},
                "roleArn": s.role_arn,
            },
        )
        frame = Frame(id="", machine=root.id, state=root.start_at, input=start_input, prev_id=1)
        s.frames[""] = frame
        self.push(frame)
        if self.definition.timeout_seconds and s.parent is None:
            self.start_timer(frame, "execution", self.now + self.definition.timeout_seconds)

    def redrive(self) -> None:
        """Run a stopped execution again from the state its root thread stopped in.

        That state runs again from its start (a Parallel or Map with all its
        branches or items); its retry counts start over, ``$$.Execution.RedriveCount``
        goes up by one. A succeeded execution, or one never started, is left alone.
        """
        s = self.state
        root = s.frames.get("")
        if s.status not in ("FAILED", "TIMED_OUT", "ABORTED") or root is None:
            return
        s.status, s.error, s.cause, s.output = "RUNNING", None, None, None
        s.redrive_count += 1
        s.frames = {"": root}
        s.tasks.clear()
        s.timers.clear()
        s.ready.clear()
        s.children.clear()
        root.fanout = None
        root.task_id = root.timer_id = None
        root.error = root.cause = None
        root.pending_assign = None
        root.effective = None
        root.retries, root.retry_count, root.rerun = (), 0, False
        root.prev_id = self.emit(
            None,
            "ExecutionRedriven",
            "executionRedrivenEventDetails",
            {"redriveCount": s.redrive_count},
        )
        self.push(root)
        if self.definition.timeout_seconds and s.parent is None:
            self.start_timer(root, "execution", self.now + self.definition.timeout_seconds)

    def timer_fired(self, timer_id: str, frame_id: str, kind: str) -> None:
        """A timer is due: end a Wait, re-run a retried state, or time something out."""
        frame = self.state.frames.get(frame_id)
        if frame is None:
            return
        if kind == "execution":
            self.end_execution(
                "TIMED_OUT", "ExecutionTimedOut", StatesErrorName.TIMEOUT, "Execution timed out."
            )
        elif kind == "wait" and frame.phase == "wait" and frame.timer_id == timer_id:
            assigned, frame.pending_assign = frame.pending_assign, None
            self.exit_state(frame, self.node(frame), frame.effective, assigned=assigned)
        elif kind == "retry" and frame.phase == "retry" and frame.timer_id == timer_id:
            frame.rerun = True
            self.push(frame)
        elif kind.startswith("timeout:") and frame.phase == "task":
            tasks.task_timed_out(self, frame, kind.removeprefix("timeout:"))
        elif kind.startswith("heartbeat:") and frame.phase == "task":
            tasks.heartbeat_due(self, frame, kind.removeprefix("heartbeat:"))

    # --- the run loop -------------------------------------------------------------------

    def run(self) -> None:
        """Run ready frames until all block or the budget is spent."""
        s = self.state
        while s.ready and s.status == "RUNNING":
            if self.transitions >= self.budget:
                self.commands.append(ContinueLater())
                return
            frame = s.frames.get(s.ready.pop())
            if frame is not None and frame.phase == "ready":
                self.step(frame)

    def step(self, frame: Frame) -> None:
        """Enter (or, after a retry delay, re-run) the state ``frame`` is at."""
        node = self.node(frame)
        rerun, frame.rerun = frame.rerun, False
        if not rerun:
            self.transitions += 1
            frame.entered_time = self.now_iso
            frame.retries = (0,) * len(getattr(node, "retry", ()))
            frame.retry_count = 0
            frame.entered_id = self.emit(
                frame,
                f"{node.type}StateEntered",
                "stateEnteredEventDetails",
                {
                    "name": node.name,
                    "input": dumps(frame.input),
                    "inputDetails": {"truncated": False},
                },
            )
        try:
            if isinstance(node, PassState):
                simple.run_pass(self, frame, node)
            elif isinstance(node, ChoiceState):
                simple.run_choice(self, frame, node)
            elif isinstance(node, TaskState):
                tasks.run_task(self, frame, node)
            elif isinstance(node, WaitState):
                waits.run_wait(self, frame, node)
            elif isinstance(node, SucceedState):
                simple.run_succeed(self, frame, node)
            elif isinstance(node, FailState):
                simple.run_fail(self, frame, node)
            elif isinstance(node, ParallelState):
                fanout.run_parallel(self, frame, node)
            elif isinstance(node, MapState):
                fanout.run_map(self, frame, node)
            else:  # pragma: no cover - the parser admits only the eight types
                raise StatesError(StatesErrorName.RUNTIME, f"unknown state type {node.type}")
        except StatesError as exc:
            self.state_error(frame, node, exc)

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

    # --- leaving states -----------------------------------------------------------------

    def exit_state(
        self,
        frame: Frame,
        node: State,
        output: Any,
        *,
        assigned: dict[str, Any] | None = None,
        next_state: str | None = None,
    ) -> None:
        """Commit the state's variable assignments, record its exit and move ``frame`` on."""
        details: dict[str, Any] = {
            "name": node.name,
            "output": dumps(output),
            "outputDetails": {"truncated": False},
        }
        if assigned:
            frame.variables.update(assigned)
            details["assignedVariables"] = {k: dumps(v) for k, v in assigned.items()}
            details["assignedVariablesDetails"] = {"truncated": False}
        self.emit(frame, f"{node.type}StateExited", "stateExitedEventDetails", details)
        target = next_state or node.next
        if target is None:
            self.frame_done(frame, output)
            return
        frame.state = target
        frame.input = output
        frame.effective = None
        self.push(frame)

    def fail_state(self, frame: Frame, node: State, error: str | None, cause: str | None) -> None:
        """The state failed: retry it, catch the error, or fail the frame."""
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
                error_output = dataflow.error_output(error, cause)
                try:
                    output, assigned = dataflow.catch_output(
                        self, frame, node, catcher, error_output
                    )
                except StatesError as exc:
                    self.frame_failed(frame, exc.error, exc.cause)
                    return
                self.exit_state(frame, node, output, assigned=assigned, next_state=catcher.next)
                return
        fanout.state_failed_event(self, frame, node)
        self.frame_failed(frame, error, cause)

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
                {"output": dumps(output), "outputDetails": {"truncated": False}},
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
        self.emit(root, event_type, key, details)
        s.status, s.error, s.cause = status, error, cause
        for task_id in s.tasks:
            self.commands.append(CancelTask(task_id))
        self.commands.extend(CancelChild(child_id) for child_id in s.children)
        self.finish()
        self.completed(Complete(status, error=error, cause=cause))

    def completed(self, complete: Complete) -> None:
        """Report the end of the execution (to its parent too, for a child execution)."""
        self.commands.append(complete)
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
