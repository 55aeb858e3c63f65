"""Execution state, the events that drive it and the commands it produces.

Everything here is plain data (JSON values, strings, numbers) so the durable
runtime can serialise it into the coordination log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stepflow.engine.history_events import HistoryEvent

Phase = Literal["ready", "task", "wait", "retry", "children", "done", "failed", "aborted"]
ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]


@dataclass(slots=True)
class Fanout:
    """The children of a Parallel or Map state in progress.

    ``results`` holds one slot per branch/item (``None`` until it succeeds,
    see ``done``); ``next_index`` is the next Map item to start. ``children``
    maps a running item to its frame id. (A Map past ``child_limit`` has no
    Fanout: its iterations run in a map run, see ``Frame.map_run``.)
    """

    kind: Literal["parallel", "map"]
    total: int
    items: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    children: dict[int, str] = field(default_factory=dict)
    next_index: int = 0
    max_concurrency: int = 0
    failures: int = 0
    tolerated_count: int | None = None
    tolerated_percentage: float | None = None
    effective_input: Any = None
    failed: list[int] = field(default_factory=list)
    """The Map items that failed (tolerated or not): a redrive runs them again."""
    state: str = ""
    """The Map state whose items these are (a redrive keeps the succeeded ones of it only)."""


@dataclass(slots=True)
class Frame:
    """One thread of control: the execution itself, a Parallel branch or a Map iteration.

    ``input`` is the raw input of the current state, ``effective`` its input
    after ``InputPath`` and ``Parameters``; ``entered_id`` is the id of the
    event that entered the current state; ``prev_id`` the last event id on
    this thread (the next event's ``previousEventId``). A ``silent`` frame
    (an item of a DISTRIBUTED Map, a child execution in Step Functions)
    records no events in the parent's history. ``variables`` holds the
    workflow variables assigned in this frame; a child frame also sees its
    ancestors' variables, read-only. ``pending_assign`` holds a Wait state's
    assignments, evaluated on entry and committed when the state exits.
    """

    id: str
    machine: str
    state: str
    input: Any
    phase: Phase = "ready"
    parent: str | None = None
    index: int = 0
    entered_id: int = 0
    prev_id: int = 0
    effective: Any = None
    retries: tuple[int, ...] = ()
    retry_count: int = 0
    entered_time: str = ""
    task_id: str | None = None
    timer_id: str | None = None
    fanout: Fanout | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    started: bool = False
    submitted: bool = False
    rerun: bool = False
    silent: bool = False
    heartbeat_at: float = 0.0
    variables: dict[str, Any] = field(default_factory=dict)
    pending_assign: dict[str, Any] | None = None
    handle: dict[str, Any] | None = None
    """What identifies the job a ``.sync``/``.waitForTaskToken`` task started (e.g. the child
    execution's ARN, a Glue job run id): from ``TaskSubmitted``, used to poll and to cancel it."""
    poll_round: int = 0
    """How many polls of the submitted job were asked for (``PollTask``), this attempt."""
    map_run: str | None = None
    """The id of the map run a distributed Map state waits for (``StartMapRun``)."""
    early: dict[str, Any] | None = None
    """An external result (``TaskSucceeded``/``TaskFailed`` with ``external``) that came
    before the task's ``TaskSubmitted``: ``{"output"}`` or ``{"error", "cause"}``, applied
    right after it."""
    map_reports: list[int] | None = None
    """An inline Map's run: the progress reports (``MapIterations.seq``) applied, as
    ``[n, *later]``: 1..n and the later ones that came early (duplicates are ignored);
    replaced, never changed in place."""


@dataclass(slots=True)
class ExecutionState:
    """Everything the engine knows about one execution between decisions.

    ``child_limit``: an inline Map with more items than this runs them as the
    child executions of a map run (``StartMapRun`` with ``"inline": true``); None
    keeps every iteration in this state. ``children`` is no longer filled. A child execution has
    ``parent`` (``{"arn", "child_id"}``), runs sub-machine ``machine`` on
    ``root_input`` and reads its parent's ``outer_variables``; its ``input``
    and ``start_time`` are the parent's (for ``$$.Execution``). ``token_key`` is
    the secret (at least 128 random bits from the runtime) that signs task tokens.
    """

    execution_arn: str
    name: str
    state_machine_arn: str
    state_machine_name: str
    role_arn: str
    start_time: str
    input: Any
    status: ExecutionStatus = "RUNNING"
    frames: dict[str, Frame] = field(default_factory=dict)
    ready: list[str] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)
    timers: dict[str, tuple[str, str]] = field(default_factory=dict)
    next_event_id: int = 1
    effect_events: int = 0
    """How many of the history's events are a cell's effect events (``StepFlowEffect*``,
    see :mod:`stepflow.engine.effects`): the event cap counts only the others."""
    counter: int = 0
    output: Any = None
    error: str | None = None
    cause: str | None = None
    seed: int = 0
    token_key: str = ""
    child_limit: int | None = None
    children: dict[str, str] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    machine: str | None = None
    outer_variables: dict[str, Any] = field(default_factory=dict)
    root_input: Any = None
    redrive_count: int = 0
    redrive_date: float | None = None
    """When it was last redriven (epoch seconds); None if never."""
    caller: dict[str, Any] | None = None
    """The task that started this execution and waits for its end (``states:startExecution``
    ``.sync``/``.sync:2``): ``{"arn": caller execution ARN, "task_id": ..., "pattern": ...}``;
    its end is reported with ``NotifyCaller``. None for an execution nobody waits for."""

    def copy(self) -> ExecutionState:
        """A copy that a decision may change without touching this one.

        JSON payloads are shared: nothing in StepFlow mutates them in place.
        """
        frames = {}
        for key, frame in self.frames.items():
            clone = Frame(**{name: getattr(frame, name) for name in Frame.__slots__})
            clone.variables = dict(frame.variables)
            if frame.fanout is not None:
                fan = frame.fanout
                clone.fanout = Fanout(
                    **{name: getattr(fan, name) for name in Fanout.__slots__},
                )
                clone.fanout.results = list(fan.results)
                clone.fanout.done = list(fan.done)
                clone.fanout.children = dict(fan.children)
                clone.fanout.failed = list(fan.failed)
            frames[key] = clone
        copy = ExecutionState(
            **{name: getattr(self, name) for name in ExecutionState.__slots__},
        )
        copy.frames = frames
        copy.ready = list(self.ready)
        copy.tasks = dict(self.tasks)
        copy.timers = dict(self.timers)
        copy.children = dict(self.children)
        return copy


# --- events: what happens to an execution ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """The execution starts (its input is in the state)."""


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """A worker took the task (optional: results imply it)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class TaskSubmitted:
    """The request of a ``.waitForTaskToken`` or ``.sync`` task was sent.

    ``output`` is the service's response (history: TaskStarted if not yet, then TaskSubmitted).
    ``handle`` identifies the started job (kept in the frame to poll and cancel it);
    ``poll_after`` (seconds), when set, asks for a ``PollTask`` that much later: a ``.sync``
    task over a polled service. None: the outcome arrives as an event (a callback, or a
    child execution's ``NotifyCaller``). ``resource``: the Task's resource when a job was
    started, so that the runtime can stop a job whose attempt closed before this arrived.
    """

    task_id: str
    output: Any = None
    handle: dict[str, Any] | None = None
    poll_after: float | None = None
    resource: str = ""


@dataclass(frozen=True, slots=True)
class TaskPending:
    """A poll (``PollTask``) found the submitted job still running.

    Poll again ``poll_after`` seconds later (``handle``, when given, replaces the frame's).
    """

    task_id: str
    poll_after: float
    handle: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TaskHeartbeat:
    """The worker of attempt ``task_id`` is alive (SendTaskHeartbeat)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class TaskSucceeded:
    """The task of attempt ``task_id`` returned ``output``.

    ``external``: reported by a callback (SendTaskSuccess) or by the child execution a
    ``.sync`` task waits for, not by the task's runner: it follows the task's
    ``TaskSubmitted``, and is held until that arrives (the two travel apart and may
    arrive in either order).
    """

    task_id: str
    output: Any
    external: bool = False
    effects: tuple[dict[str, Any], ...] = ()
    """A cell's effects in this attempt (:func:`stepflow.engine.effects.effect_reports`):
    recorded in the history just before the result (see :mod:`stepflow.engine.effects`)."""


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """The task of attempt ``task_id`` failed with ``error``/``cause``.

    ``external``: as for :class:`TaskSucceeded` (SendTaskFailure, a ``.sync`` child's end).
    """

    task_id: str
    error: str | None
    cause: str | None
    external: bool = False
    effects: tuple[dict[str, Any], ...] = ()
    """As for :class:`TaskSucceeded`: the effects the failed attempt requested."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer started by a ``StartTimer`` command is due."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class Stop:
    """StopExecution: abort with an optional error and cause.

    ``redrive``, when set, is the execution's redrive count the stop is aimed at (a map
    run stopping a child it started or ran again): a stop aimed at an earlier run of a
    since-redriven execution is stale and changes nothing.
    """

    error: str | None = None
    cause: str | None = None
    redrive: int | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """The driver fails the execution (e.g. its next state could not be stored)."""

    error: str
    cause: str


@dataclass(frozen=True, slots=True)
class Continue:
    """Resume work left over when a decision hit its transition budget."""


@dataclass(frozen=True, slots=True)
class Redrive:
    """RedriveExecution: run a FAILED, TIMED_OUT or ABORTED execution again where it stopped."""


@dataclass(frozen=True, slots=True)
class MapRunFinished:
    """The map run ``run_id`` of a distributed Map ended (see ``StartMapRun``).

    ``output`` is the Map's result before ResultSelector/ResultPath: the results array,
    or ``{"MapRunArn", "ResultWriterDetails"}`` with a ResultWriter.
    """

    run_id: str
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None
    report: list[Any] | None = None
    """An inline Map's run: its last progress report ``[seq, events]`` (see
    :class:`MapIterations`), carried here so that it cannot arrive after the end."""
    parent_redrive: int | None = None
    """The parent's redrive count the run ended for (None: not said). A redrive of the
    parent runs the same run again: the end of an earlier attempt, delivered late, is
    stale then (its count is below the parent's)."""


@dataclass(frozen=True, slots=True)
class MapIterations:
    """Progress of the map run ``run_id`` of an INLINE Map: its iterations' events, in order.

    ``events`` holds ``[outcome, index]`` pairs (outcome ``Started``, ``Succeeded``,
    ``Failed`` or ``Aborted``); the parent records ``MapIteration<outcome>`` for each.
    One report per commit of the run, so the parent's head is written once per batch;
    ``seq`` numbers the reports from 1 (a redelivered or early report is recognised).
    """

    run_id: str
    seq: int
    events: list[list[Any]]


@dataclass(frozen=True, slots=True)
class UnreportedIterations:
    """What an inline Map's map run has not reported yet, read when the parent abandons it.

    ``pending``: the ``[outcome, index]`` events the run holds back for its next report;
    ``running``: the iterations it runs. Given to the decision that cancels the run
    (``decide(..., unreported=...)``), so that the parent's history shows what it would
    show with the iterations in the parent: every event up to the abandon, then
    ``MapIterationAborted`` for each running one (not when the execution ends).
    """

    pending: tuple[tuple[str, int], ...] = ()
    running: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ChildFinished:
    """The child execution ``child_id`` (a remote Map iteration) ended with ``status``."""

    child_id: str
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


Event = (
    Start
    | TaskStarted
    | TaskSubmitted
    | TaskHeartbeat
    | TaskSucceeded
    | TaskFailed
    | TimerFired
    | Stop
    | Fail
    | Continue
    | ChildFinished
    | Redrive
    | TaskPending
    | MapRunFinished
    | MapIterations
)


# --- commands: what the driver must do after committing a decision ------------------------


@dataclass(frozen=True, slots=True)
class RunTask:
    """Run a Task's resource on ``input`` and report back under ``task_id``.

    ``role_arn`` is the role the call runs with: the state's ``Credentials.RoleArn``
    or else the execution's role (the edge assumes it; the engine only names it).
    ``execution_role`` is the execution's role: a different ``role_arn`` is
    assumed through it (role chaining, as on AWS), never directly.
    """

    task_id: str
    resource: str
    input: Any
    state_name: str
    timeout_seconds: int | None = None
    heartbeat_seconds: int | None = None
    task_token: str | None = None
    role_arn: str = ""
    execution_role: str = ""
    frame: str = ""
    """The id of the frame the task runs in: the path of its Parallel branches and Map
    iterations ("" at top level), which scopes a saga's compensations."""


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Deliver ``TimerFired(timer_id)`` at ``fire_at`` (epoch seconds)."""

    timer_id: str
    fire_at: float


@dataclass(frozen=True, slots=True)
class CancelTask:
    """The task is no longer wanted (its branch was aborted or it timed out).

    ``resource`` and ``handle`` (the frame's, from ``TaskSubmitted``) say what to stop:
    a ``.sync`` child execution or job is cancelled by the runtime; None: nothing started.
    """

    task_id: str
    resource: str = ""
    handle: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PollTask:
    """Ask whether the job ``handle`` of task ``task_id`` has ended.

    The integration of ``resource`` answers; the runtime reports ``TaskSucceeded``,
    ``TaskFailed`` or ``TaskPending``.
    ``poll_round`` numbers the polls of one attempt (the runtime's idempotency key).
    """

    task_id: str
    resource: str
    handle: dict[str, Any]
    poll_round: int
    state_name: str = ""
    role_arn: str = ""
    execution_role: str = ""


@dataclass(frozen=True, slots=True)
class NotifyCaller:
    """The execution ended and ``caller`` (``ExecutionState.caller``) waits for it.

    The runtime reports the end to the caller's task (``TaskSucceeded``/``TaskFailed``
    in the shape of AWS's ``.sync`` or ``.sync:2`` output).
    """

    caller: dict[str, Any]
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class StartMapRun:
    """Start the map run ``run_id`` of a distributed Map; it reports ``MapRunFinished``.

    ``spec`` (JSON) says everything the run needs (items or their reader, selector,
    batcher, processor, limits, writer).
    """

    run_id: str
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CancelMapRun:
    """The map run ``run_id`` is no longer wanted (its Map failed or was aborted): stop it."""

    run_id: str


@dataclass(frozen=True, slots=True)
class ContinueLater:
    """Deliver ``Continue()`` again: the decision stopped at its transition budget."""


@dataclass(frozen=True, slots=True)
class Complete:
    """The execution reached a terminal status."""

    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class StartChild:
    """Start a child execution running sub-machine ``machine`` on ``input``.

    It sees ``variables`` (the parent's, read-only) and must report back with
    ``ChildFinished(child_id, ...)``: see ``NotifyParent``.
    """

    child_id: str
    machine: str
    input: Any
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CancelChild:
    """The child execution ``child_id`` is no longer wanted: stop it."""

    child_id: str


@dataclass(frozen=True, slots=True)
class NotifyParent:
    """A child execution ended: deliver ``ChildFinished`` to ``parent_arn``."""

    parent_arn: str
    event: ChildFinished


Command = (
    RunTask
    | StartTimer
    | CancelTask
    | ContinueLater
    | Complete
    | StartChild
    | CancelChild
    | NotifyParent
    | PollTask
    | NotifyCaller
    | StartMapRun
    | CancelMapRun
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of :func:`stepflow.engine.decide`: new history, next state, commands.

    ``events`` are dicts, and compact tuples where the decision was asked for them.
    """

    events: list[HistoryEvent]
    state: ExecutionState
    commands: list[Command]
