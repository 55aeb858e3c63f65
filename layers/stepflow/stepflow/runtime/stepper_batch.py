"""The stepper's batch loop: a batch of deliveries sorted, grouped and applied.

:func:`run_batch` is :meth:`stepflow.runtime.stepper.Stepper.handle_batch`: each
message goes to its place (a delayed one back to the bus, a map run's deliveries to
the run's coordinator, a map run's child to :func:`_start_child`, a task to the task
path (:mod:`stepflow.runtime.runner_commit`: the runner commits its results), an
execution's events to one group per execution), then each map run and each
execution is applied once (:func:`stepflow.runtime.stepper_commit.apply_events`).
On the runner (``Stepper.task_runner``) a batch's events are retries' timers
(:func:`stepflow.runtime.repair.rides_tasks`): applied inside its in-place rounds when
the batch holds no task, so that the new attempts run in this invocation, else before
the tasks (their attempts sent); one that fails goes to the transition queue at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from stepflow.engine import Event, ExecutionState, Redrive, Start, Stop
from stepflow.engine.codec import decode_state
from stepflow.runtime.child_start import first_commit
from stepflow.runtime.map_run_access import refused_starts
from stepflow.runtime.map_run_state import is_run_key
from stepflow.runtime.messages import Message, decode_event
from stepflow.runtime.outbox import build_outbox, create_child, store_state
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.ports import (
    ConflictError,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    UnstorableDataError,
)
from stepflow.runtime.runner_commit import run_tasks
from stepflow.runtime.stepper_commit import _decide, apply_events

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper

LOG = logging.getLogger(__name__)


def run_batch(
    stepper: Stepper,
    messages: Sequence[Message],
    has_time: Callable[[], bool] | None = None,
    remaining: Callable[[], float] | None = None,
) -> list[tuple[Message, Exception]]:
    """The body of :meth:`Stepper.handle_batch` (see it for the rules)."""
    now = stepper.clock()
    failures: list[tuple[Message, Exception]] = []
    groups: dict[str, list[tuple[Message, Event]]] = {}
    runs: dict[str, list[Message]] = {}  # map runs' deliveries, by run (map_runs.py)
    later: list[Message] = []
    run_heads: dict[str, ExecutionRecord | None] = {}  # read once per batch (child_event)
    tasks: list[Message] = []  # queued tasks: run after the loop, side by side (run_tasks)
    created: list[_Created] = []  # new children of map runs: first states after the loop
    progressed = False  # whether a routed message did work (see the groups' loop below)
    for message in messages:
        if has_time is not None and not has_time():
            later.append(message)
            continue
        try:
            if message.not_before > now:
                stepper.bus.send(message, _delay(message.not_before - now))
                progressed = True
            elif is_run_key(message.execution_arn):
                runs.setdefault(message.execution_arn, []).append(message)
            elif message.kind == "child" and "map_run" in message.body:
                started = _start_child(stepper, message, run_heads, created)
                if started is not None:  # None: started here, or it never starts
                    groups.setdefault(message.execution_arn, []).append((message, started))
            elif message.kind == "task":
                tasks.append(message)
            elif message.kind == "repair":
                progressed = True
                apply_events(stepper, message.execution_arn, [])
            elif message.kind == "child":
                create_child(stepper.log, message, stepper.clock())
                groups.setdefault(message.execution_arn, []).append((message, Start()))
            else:
                event = decode_event(message.body)
                groups.setdefault(message.execution_arn, []).append((message, event))
        except Exception as exc:  # reported per message; the batch goes on
            failures.append((message, exc))
    _run_first_states(stepper, created, failures)
    if groups and tasks and stepper.task_runner:
        # A runner's timers beside tasks: applied first (their attempts are sent, not held),
        # never behind the batch's slowest task (review 36)
        fired: list[tuple[Message, Exception]] = []
        _apply_groups(stepper, groups, has_time, progressed, fired, later)
        failures.extend(_to_stepper(stepper, fired))
        groups = {}
    if tasks:
        failures.extend(run_tasks(stepper, tasks, has_time, remaining))
        run_heads.clear()  # time passed: a run read before may have ended
    for key, deliveries in runs.items():
        try:
            kept, fails = list(deliveries), list[Message]()
            if stepper.map_run_check is not None:  # may the role start the run's children?
                kept, fails = refused_starts(stepper.map_run_check, stepper.log, key, deliveries)
            for fail in fails:
                stepper.bus.send(fail)
            stepper.map_runs().handle(key, kept)
        except Exception as exc:
            failures.extend((message, exc) for message in deliveries)
    # The first message of an invocation goes ahead (has_time's first answer is yes): its
    # execution's events are applied even if time is short by now, or an invocation that
    # starts short of time would send every event back for ever (as a new message: its
    # receive count never reaches the dead-letter queue).
    progressed = progressed or bool(created or tasks or runs)
    if groups and stepper.task_runner:
        # The runner's batch of timers (a retry's): the attempts their commits schedule
        # are held and run in this invocation (in_place.py), not sent to the tasks queue.
        def fire() -> list[tuple[Message, Exception]]:
            fired: list[tuple[Message, Exception]] = []
            _apply_groups(stepper, groups, has_time, progressed, fired, later)
            return _to_stepper(stepper, fired)

        failures.extend(run_tasks(stepper, [], has_time, remaining, first=fire))
    else:
        _apply_groups(stepper, groups, has_time, progressed, failures, later)
    for message in later:
        try:
            if message.kind == "task":  # the runner's own queue, never a stepper's (review 37)
                stepper._tasks().requeue(message)
            else:
                stepper.bus.send(message)
        except Exception as exc:  # not re-sent: redelivered after its visibility timeout
            failures.append((message, exc))
    return failures


def _to_stepper(
    stepper: Stepper, fired: list[tuple[Message, Exception]]
) -> list[tuple[Message, Exception]]:
    """Timers that failed on the runner, sent at once to the transition queue; those not sent.

    The transition queue redelivers sooner than the tasks queue (visibility 3 minutes
    against 16, :mod:`stepflow.aws.topology`); sent before the runner's rounds, not after
    them (review 36).
    """
    unsent = []
    for message, exc in fired:
        LOG.warning("%s: a timer failed on the runner, sent to the stepper: %r", message.id, exc)
        try:
            stepper.bus.send(message)
        except Exception:  # redelivered by the tasks queue after its visibility timeout
            unsent.append((message, exc))
    return unsent


def _apply_groups(
    stepper: Stepper,
    groups: dict[str, list[tuple[Message, Event]]],
    has_time: Callable[[], bool] | None,
    progressed: bool,
    failures: list[tuple[Message, Exception]],
    later: list[Message],
) -> None:
    """Apply each execution's events of the batch (one decision each); see :func:`run_batch`."""
    for arn, group in groups.items():
        if has_time is not None and progressed and not has_time():
            later.extend(message for message, _ in group)
            continue
        progressed = True
        try:
            apply_events(stepper, arn, [event for _, event in group])
        except Exception as exc:
            failures.extend((message, exc) for message, _ in group)


class _Created(NamedTuple):
    """A map run's child stored with its first decision, its first state not run yet."""

    message: Message
    record: ExecutionRecord
    after: ExecutionState
    now: float


def _start_child(
    stepper: Stepper,
    message: Message,
    run_heads: dict[str, ExecutionRecord | None],
    created: list[_Created],
) -> Start | Redrive | None:
    """Store a map run's new child with its first decision (added to ``created``).

    Returns the event to apply instead (the child exists already, it is redriven,
    or its first decision made data no log can hold), or None (created, or its run
    ended first: it never starts). See :mod:`stepflow.runtime.child_start`.
    """
    runs = stepper.map_runs()
    prepared = runs.prepare_child(message, run_heads)
    if prepared is None:
        return None
    record, event = prepared
    if isinstance(event, Start):
        root = str(record.state["parent"]["root_arn"])  # an inline Map's: its parent
        state = decode_state(record.state)
        state.input = record.input if root == record.execution_arn else stepper._root_input(root)
        now = stepper.clock()
        definition = stepper.definitions(record.state_machine_arn)
        after, events, commands = _decide(stepper, definition, state, [Start()], now)
        new = first_commit(record, after, commands, now)
        try:
            if new.outbox:
                stepper._send_repair(new.execution_arn)
            stepper.log.create(new, events)
        except ExecutionAlreadyExistsError:
            if _aborted_copy(stepper, message, now):
                return None
        except UnstorableDataError:
            pass  # to fail on the two-write path (see _commit)
        else:
            created.append(_Created(message, new, after, now))
            return None
    with contextlib.suppress(ExecutionAlreadyExistsError):
        stepper.log.create(record, [])
    return event


def _aborted_copy(stepper: Stepper, message: Message, now: float) -> bool:
    """Whether a concurrent copy's child, its first state not run, was aborted here.

    Two copies of a child's start, both on a read of the run from before it failed: one
    creates the child, the other finds it. Applying ``Start`` to it would send its first
    commit's outbox (its first state's tasks) before the creating copy checks the run.
    Its first commit still pending, the child is checked as the creating copy checks it
    (:func:`_run_first_states`); the conditional commit lets only one of them abort it.
    """
    existing = stepper.log.get(message.execution_arn)
    first = existing is not None and existing.seq == 1 and existing.status == "RUNNING"
    if existing is None or not first or not existing.outbox:
        return False
    return abort_if_run_ended(stepper, existing, str(message.body["map_run"]), now)


def abort_if_run_ended(
    stepper: Stepper, record: ExecutionRecord, run_key: str, now: float | None = None
) -> bool:
    """Abort ``record``, a run's child at its first commit, if the run ``run_key`` ended.

    Returns whether the run ended (the child was aborted here, or by a concurrent writer
    that won the commit: either way its first state's outbox is never sent).
    """
    if not stepper.map_runs().run_ended(run_key, {}):
        return False
    when = stepper.clock() if now is None else now
    _abort_unstarted(stepper, record, decode_state(record.state), when)
    return True


def _run_first_states(
    stepper: Stepper, created: list[_Created], failures: list[tuple[Message, Exception]]
) -> None:
    """Run the first state of each child created by this batch, unless its run ended.

    Each child was created on a read of its run from before the create: read after it
    (once per run, and again after a child's inline tasks ran: time passed), a run that
    ended (failed, was stopped) in between must not see the child run its
    first state. That child is aborted instead (:func:`_abort_unstarted`).
    """
    runs = stepper.map_runs()
    checked: dict[str, ExecutionRecord | None] = {}  # each run as read after the creates
    for message, record, after, now in created:
        try:
            if runs.ended_since(message, checked):
                _abort_unstarted(stepper, record, after, now)
                continue
            inline = stepper._flush(record)
            apply_events(stepper, record.execution_arn, [], started=inline)
            if inline:  # its tasks ran: the run may have ended meanwhile, read it again
                checked.pop(str(message.body["map_run"]), None)
        except Exception as exc:  # reported per message; the batch goes on
            failures.append((message, exc))


def _abort_unstarted(
    stepper: Stepper, new: ExecutionRecord, after: ExecutionState, now: float
) -> None:
    """Abort a child created after its run ended, before its first state runs.

    Its first commit's outbox (the first state's tasks, a nested start) is never sent:
    the abort replaces it with the Stop's messages (the run hears ABORTED and counts
    it). Should the commit lose a race, the Stop is applied as any event is. A child
    that its first decision ended (Pass, Choice, Fail only) is not aborted: its first
    commit's outbox holds its report, which the run counts.
    """
    if after.status != "RUNNING":
        stepper._flush(new)
        return
    definition = stepper.definitions(new.state_machine_arn)
    stop = Stop(redrive=int(after.redrive_count or 0))
    state, history, commands = _decide(stepper, definition, after, [stop], now)
    seq = new.seq + 1
    outbox = build_outbox(new.execution_arn, seq, commands, state, new.state_machine_arn, now)
    aborted = replace(
        new, seq=seq, status=state.status, state=store_state(state), outbox=outbox, stop_date=now
    )
    try:
        stepper.log.commit(aborted, new.seq, history)
    except ConflictError:
        apply_events(stepper, new.execution_arn, [stop])
        return
    stepper._flush(aborted)
