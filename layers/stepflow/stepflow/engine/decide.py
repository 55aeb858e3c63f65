"""The pure transition function: ``decide(definition, state, event, now) -> Decision``.

A decision applies one event to a copy of the execution state, then runs every
frame that is ready until each one blocks (on a task, a timer or children) or
finishes, or until the transition budget is spent. It records history events
and returns the commands the driver must carry out. It performs no I/O, reads
no clock and never sleeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orjson import dumps as json_bytes

from stepflow.asl.machine import StateMachine
from stepflow.data.budget import UNLIMITED, Budget, DecisionDeferred
from stepflow.data.serialize import dumps
from stepflow.engine import distributed, map_inline, tasks
from stepflow.engine.history_events import ENTERED, EXITED
from stepflow.engine.model import (
    ChildFinished,
    Continue,
    ContinueLater,
    Decision,
    Event,
    ExecutionState,
    Fail,
    Frame,
    MapIterations,
    MapRunFinished,
    Redrive,
    Start,
    Stop,
    TaskFailed,
    TaskHeartbeat,
    TaskPending,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    TimerFired,
    UnreportedIterations,
)
from stepflow.engine.plans import handler_of
from stepflow.engine.resources import ParameterCheck
from stepflow.engine.transitions import EventLimitReachedError, Transitions
from stepflow.errors import StatesError, StatesErrorName
from stepflow.limits import Limits

DEFAULT_BUDGET = 10_000
"""States entered per decision before the engine yields with ``ContinueLater``."""


def decide(
    definition: StateMachine,
    state: ExecutionState,
    event: Event,
    now: float,
    *,
    budget: int = DEFAULT_BUDGET,
    consume: bool = False,
    time_budget: Budget = UNLIMITED,
    limits: Limits | None = None,
    check_parameters: ParameterCheck | None = None,
    unreported: Mapping[str, UnreportedIterations] | None = None,
    compact: bool = False,
) -> Decision:
    """Apply ``event`` at time ``now`` (epoch seconds) and run until every frame blocks.

    ``state`` is not modified; the next state is in the returned Decision.
    With ``consume=True`` the caller hands ``state`` over instead: it becomes the
    next state, changed in place, which saves copying every frame per event
    (for a driver that keeps no other reference to it).

    ``time_budget`` bounds the time evaluation may take (see
    :mod:`stepflow.data.budget`): running out fails the execution (or the
    state, for a JSONata expression's own budget). When it raises
    :class:`~stepflow.data.budget.DecisionDeferred` instead, that propagates:
    the caller drops the decision.

    ``limits`` (None: none) bounds what the decision may produce:
    ``max_events_per_execution`` caps the history (the event that would leave no
    room for ``ExecutionFailed`` fails the execution with ``States.Runtime``
    instead, so a history is at most that long; a redrive of such an execution
    adds its ``ExecutionRedriven`` and fails again at once), and
    ``max_payload_bytes`` a state's output and a task's result
    (``States.DataLimitExceeded``).

    ``check_parameters(resource, parameters)`` (None: none) says why a Task's
    effective parameters cannot start it: the state then fails with
    ``States.Runtime`` before its task is scheduled, as on AWS. The edge injects
    the integration registry's check, so the engine never imports an integration.

    ``unreported`` (by run id) is what an inline Map's map run that this decision
    cancels had not reported yet: the decision records it as the Map's iteration
    events (the driver reads it from the run when a first decision cancels one).

    ``compact`` records states' entered and exited events as compact tuples (see
    :mod:`stepflow.engine.history_events`), for a log that stores them as they are.
    """
    decider = Decider(
        definition,
        state if consume else state.copy(),
        now,
        budget,
        time_budget,
        limits,
        check_parameters,
        unreported,
        compact,
    )
    try:
        decider.apply(event)
        decider.run()
    except StatesError as exc:  # a safety net: every state handler reports its own errors
        decider.end_execution("FAILED", "ExecutionFailed", exc.error, exc.cause)
    except EventLimitReachedError as exc:
        decider.end_execution_over_cap(exc)
    except DecisionDeferred:
        raise
    except Exception as exc:
        # A value no evaluator foresaw (or a defect): the engine is pure, so the same
        # message would fail the same way on every delivery until the dead-letter queue,
        # leaving the execution RUNNING. It fails instead; the cause names only the type.
        decider.end_execution(
            "FAILED",
            "ExecutionFailed",
            StatesErrorName.RUNTIME.value,
            f"StepFlow could not evaluate this execution: unexpected {type(exc).__name__}.",
        )
    return Decision(decider.events, decider.state, decider.commands)


class Decider(Transitions):
    """One decision: apply an event, then run ready frames (internal to the engine)."""

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
        elif isinstance(
            event,
            TaskSucceeded | TaskFailed | TaskStarted | TaskSubmitted | TaskHeartbeat | TaskPending,
        ):
            frame_id = s.tasks.get(event.task_id)
            if frame_id is None:  # stale, duplicate or fenced-off result
                return
            frame = s.frames[frame_id]
            if isinstance(event, TaskStarted):
                tasks.task_started(self, frame)
            elif isinstance(event, TaskSubmitted):
                tasks.task_submitted(self, frame, event.output, event.handle, event.poll_after)
            elif isinstance(event, TaskPending):
                tasks.task_pending(self, frame, event)
            elif isinstance(event, TaskHeartbeat):
                tasks.task_heartbeat(self, frame)
            elif not tasks.held_back(self, frame, event):
                tasks.task_finished(self, frame, event)
        elif isinstance(event, TimerFired):
            ref = s.timers.pop(event.timer_id, None)
            if ref is not None:
                self.timer_fired(event.timer_id, *ref)
        elif isinstance(event, Stop):
            if event.redrive is not None and event.redrive < s.redrive_count:
                return  # aimed at the run before a redrive: stale
            self.end_execution("ABORTED", "ExecutionAborted", event.error, event.cause)
        elif isinstance(event, Fail):
            if not s.frames:  # failed before its first decision could be stored
                self.start()
            self.end_execution("FAILED", "ExecutionFailed", event.error, event.cause)
        elif isinstance(event, MapRunFinished):
            if event.parent_redrive is not None and event.parent_redrive < s.redrive_count:
                return  # the end of the run's attempt before a redrive: stale
            map_inline.final_report(self, event)
            if not map_inline.run_failed(self, event):
                distributed.map_run_finished(self, event)
        elif isinstance(event, MapIterations):
            map_inline.map_iterations(self, event)
        elif isinstance(event, Continue | ChildFinished):
            pass  # ChildFinished goes to a map run's head, never to an execution

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
                "input": self.text(start_input),
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

        That state runs again from its start (a Parallel or an inline Map with only
        its failed, aborted and never-started branches or iterations, as AWS does: see
        ``fanout._redriven``); its retry counts start over, ``$$.Execution.RedriveCount``
        goes up by one. A succeeded execution, or one never started, is left alone.
        """
        s = self.state
        root = s.frames.get("")
        if s.status not in ("FAILED", "TIMED_OUT", "ABORTED") or root is None:
            return
        s.status, s.error, s.cause, s.output = "RUNNING", None, None, None
        s.redrive_count += 1
        s.redrive_date = self.now
        s.frames = {"": root}
        s.tasks.clear()
        s.timers.clear()
        s.ready.clear()
        s.children.clear()
        # root.fanout stays: a Map or Parallel keeps what succeeded (see fanout._redriven)
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
        elif kind.startswith("poll:") and frame.phase == "task":
            tasks.poll_due(self, frame, kind.removeprefix("poll:"))

    # --- the run loop -------------------------------------------------------------------

    def run(self) -> None:
        """Run ready frames until all block or the budget is spent.

        Each ready frame enters (or, after a retry delay, re-runs) the state it is at;
        the entering is done here, in the loop, without a call per state.
        """
        s = self.state
        budget = self.time_budget
        # start_expression then check: in one call where the budget has it (ClockBudget)
        start_state = getattr(budget, "start_state", None)
        frames, ready = s.frames, s.ready
        machines = self.definition.machines
        compact, max_events, append = self.compact, self.max_events, self.events.append
        limit = self.max_payload
        now, now_iso = self.now, self.now_iso  # fixed for a decision
        entered, most = self.transitions, self.budget  # self.transitions, kept here (hot)
        # a frame that a plan's exit moved on: ready, and run next without a trip through
        # `ready` (pushed last and popped first there); pushed there if the loop stops first
        carried: Frame | None = None
        states: Mapping[str, Any] = {}  # the states of the machine of the frame run last
        try:
            while (carried is not None or ready) and s.status == "RUNNING":
                if entered >= most:
                    self.commands.append(ContinueLater())
                    return
                if start_state is not None:  # each state's own work starts a new expression
                    start_state()
                else:
                    budget.start_expression()
                    budget.check()
                if carried is None:
                    frame = frames.get(ready.pop())
                    if frame is None or frame.phase != "ready":
                        continue
                    states = machines[frame.machine].states
                else:
                    frame, carried = carried, None
                node = states[frame.state]  # self.node, inline
                if frame.rerun:
                    frame.rerun = False
                else:
                    entered += 1
                    frame.entered_time = now_iso
                    retry = getattr(node, "retry", None)  # only states that can fail have one
                    frame.retries = (0,) * len(retry) if retry else ()
                    frame.retry_count = 0
                    value = frame.input
                    text = self._text if self._text_of is value else self.text(value)
                    event_id = s.next_event_id
                    if (
                        compact
                        and not frame.silent
                        and (max_events is None or event_id - s.effect_events < max_events)
                    ):  # emit_state's compact event under the cap, inline (the hot path)
                        s.next_event_id = event_id + 1
                        append(
                            (
                                event_id,
                                frame.prev_id,
                                now,
                                ENTERED[node.type],
                                "stateEnteredEventDetails",
                                node.name,
                                "input",
                                text,
                            )
                        )
                        frame.prev_id = frame.entered_id = event_id
                    else:
                        frame.entered_id = self.emit_state(
                            frame,
                            ENTERED[node.type],
                            "stateEnteredEventDetails",
                            node.name,
                            "input",
                            text,
                        )
                try:
                    done = (node.runner or handler_of(node))(self, frame, node)
                except StatesError as exc:
                    self.state_error(frame, node, exc)
                    continue
                if done is None:  # the handler left the state itself
                    continue
                # a plan's exit: exit_state's usual case inline (the hot path), else exit_state
                output, target = done
                if self._text_of is output:
                    text = self._text
                else:
                    try:  # serialize.dumps, its usual case inline
                        text = json_bytes(output).decode()
                    except TypeError:
                        text = dumps(output)
                    self._text_of, self._text = output, text
                event_id = s.next_event_id
                if (
                    compact
                    and (limit is None or len(text) * 3 <= limit)  # see over_payload_limit
                    and not frame.silent
                    and (max_events is None or event_id - s.effect_events < max_events)
                ):
                    s.next_event_id = event_id + 1
                    append(
                        (
                            event_id,
                            frame.prev_id,
                            now,
                            EXITED[node.type],
                            "stateExitedEventDetails",
                            node.name,
                            "output",
                            text,
                        )
                    )
                    frame.prev_id = event_id
                    if target is None:
                        try:  # as in exit_state, under the handler's error (review 35)
                            self.frame_done(frame, output)
                        except StatesError as exc:
                            self.state_error(frame, node, exc)
                        continue
                    frame.state = target
                    frame.input = output
                    frame.effective = None
                    frame.map_run = frame.map_reports = None
                    frame.fanout = None
                    frame.phase = "ready"  # self.push, but carried to the loop's next round
                    carried = frame
                else:
                    try:
                        self.exit_state(frame, node, output, next_state=target)
                    except StatesError as exc:
                        self.state_error(frame, node, exc)
        finally:
            if carried is not None:
                ready.append(carried.id)
            self.transitions = entered
