"""The stepper's commit path: decide events on the latest record, commit, run inline tasks.

:func:`apply_events` commits a group of events of one execution and then runs the
inline tasks the commit scheduled, committing their results in turn; each commit is
made by :func:`_commit` on top of the record it was decided from (conditional write
on ``seq``: a loser reloads and decides again), with the messages it must send in its
outbox. See :mod:`stepflow.runtime.stepper` for why this is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stepflow.asl import StateMachine
from stepflow.engine import (
    Command,
    Event,
    ExecutionState,
    Fail,
    Redrive,
    UnreportedIterations,
    decide,
)
from stepflow.engine.history_events import HistoryEvent, takes_compact_events
from stepflow.runtime.held_mark import HELD_UNTIL, carry_held, held, mark, mark_value
from stepflow.runtime.in_place import carry
from stepflow.runtime.leases import LeaseConflictError, LeaseFence
from stepflow.runtime.map_inline import unreported as inline_unreported
from stepflow.runtime.map_run_state import is_run_key
from stepflow.runtime.messages import Message, decode_event
from stepflow.runtime.nested import may_orphan, orphan_stops
from stepflow.runtime.outbox import build_outbox
from stepflow.runtime.outbox import store_state as _store_state
from stepflow.runtime.polled_jobs import orphan_job_cancels
from stepflow.runtime.ports import ConflictError, ExecutionRecord, UnstorableDataError
from stepflow.runtime.starts import unstorable

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper

TaskGuard = Callable[[ExecutionRecord | None], LeaseFence | None]
"""Checks a record before a worker's report is applied: raises to refuse it (nothing is
written), or returns the lease fence the commit is conditioned on (None: none)."""

_LEGACY_LEASE_ATTRIBUTES = ("lease_owner", "lease_until", "task_leases")
"""Head attributes of the lease mechanisms that :mod:`stepflow.runtime.leases` replaced."""


def apply_events(
    stepper: Stepper,
    execution_arn: str,
    events: list[Event],
    guard: TaskGuard | None = None,
    *,
    attributes: Mapping[str, Any] | None = None,
    started: list[Message] | None = None,
) -> None:
    """Commit ``events``; then run the inline tasks they scheduled and commit their results.

    Running a task right here saves two queue hops: the commit of its result
    replaces the outbox that held it. The inline tasks of one commit are
    claimed first, together, through one lease record (its task id is
    ``outbox#<seq>``, see :func:`stepflow.runtime.leases.claim`): one
    conditional write for a Map's ten tasks. Tasks taken over from an older
    outbox (a crashed or stale stepper's) are claimed one by one as well,
    so a task that ran meanwhile from the queue is not run again.
    ``started``: the inline tasks of a commit made already (a new child's first).
    """
    handled: set[str] = set()
    tasks: list[tuple[Message, bool]] = []
    for _ in range(stepper.max_inline_rounds):
        if started is not None:
            tasks, started = [(m, False) for m in started], None
        else:
            tasks = _commit(stepper, execution_arn, events, handled, guard, attributes)
        guard, attributes = None, None
        if not tasks:
            return
        handled.update(message.id for message, _ in tasks)
        runs = stepper._tasks()
        held, claimed = runs.claim_inline(tasks)
        try:
            results = [runs.run_inline(m, takeover) for m, takeover in held]
        except Exception:
            runs.release(claimed)  # a redelivery may take them over at once
            raise
        events = [decode_event(result) for result in results if result is not None]
        if not events:
            return
    for message, _ in tasks:  # a long chain of quick tasks: hand the rest to the queue
        stepper.bus.send(message)


def _commit(
    stepper: Stepper,
    execution_arn: str,
    events: list[Event],
    handled: set[str],
    guard: TaskGuard | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> list[tuple[Message, bool]]:
    """Decide ``events`` on the latest record and commit them as one write.

    ``attributes`` are added to the head's if the events change anything.

    Returns the task messages to run inline, each with whether it is taken
    over from an earlier commit's outbox (those come first).
    ``handled`` are tasks this stepper already ran, not to be repaired again.
    On a conflict, reload and decide again: the engine ignores any event the
    winning writer already applied.
    """
    repair_sent = False
    for _ in range(stepper.max_conflicts):
        record = stepper.log.get(execution_arn)
        fence = guard(record) if guard is not None else None
        if record is None:
            return []
        # A runner holds this outbox's tasks in place (its mark is ahead): nothing of it is
        # re-sent here; the commit below carries it (held_mark.carry_held).
        on_hold = held(record, stepper.clock())
        pending = () if on_hold else tuple(m for m in record.outbox if m.id not in handled)
        # A delivery with no event of its own (a repair message) that finds a run's child
        # at its first commit, outbox unsent: its creator may have died before the run
        # check. Not a stepper that ran tasks of that outbox (it checked), nor a Start
        # (its copy checked in stepper_batch._aborted_copy).
        first = pending and not events and not handled and record.seq == 1
        if first and _unstarted_child_aborted(stepper, record):
            continue  # its first state never runs: read the aborted record again
        # Tasks this stepper ran but whose results are not committed yet stay in the
        # outbox: clearing it here would lose them if the commit below fails.
        partial = len(pending) < len(record.outbox)
        repaired = (
            [(m, True) for m in stepper._flush(replace(record, outbox=pending), clear=not partial)]
            if pending
            else []
        )
        ended = record.status != "RUNNING" and not any(isinstance(e, Redrive) for e in events)
        if may_orphan(events):  # a .sync child or job whose attempt closed first: stop it
            loaded = stepper._load_state(record)
            open_tasks = None if ended else loaded.tasks
            orphans = orphan_stops(events, open_tasks)
            orphans += orphan_job_cancels(execution_arn, events, open_tasks, loaded)
            for stop in orphans:
                stepper.bus.send(stop)
        if ended:
            return repaired
        now = stepper.clock()
        definition = stepper.definitions(record.state_machine_arn)
        before = stepper._load_state(record)
        state, history, commands = _decide(stepper, definition, before, events, now)
        unreported = inline_unreported(stepper.log, execution_arn, commands)
        if unreported:  # it abandons an inline Map's run: decide again, knowing its events
            state, history, commands = _decide(stepper, definition, before, events, now, unreported)
        if not history and not commands and state == before:
            if fence is None or fence.new is None:
                return repaired  # duplicates or stale messages only
            try:  # only the lease changes (a heartbeat, a release): no commit needed
                stepper.log.put_lease(fence.new)
            except LeaseConflictError:
                continue
            return repaired
        seq = record.seq + 1
        arn, machine = record.execution_arn, record.state_machine_arn
        own = build_outbox(arn, seq, commands, state, machine, now)
        carried: tuple[Message, ...] = ()  # kept under the mark: their durable copy
        running = state.status == "RUNNING"
        if on_hold:  # an ending commit sends what it keeps (no held task is left to run)
            kept_back = carry_held(record, state.tasks if running else ())
            carried = kept_back if running else ()
            outbox = own + kept_back
        else:
            outbox = own + _in_flight(stepper, record, state, handled)
        kept = {k: v for k, v in record.attributes.items() if k not in _LEGACY_LEASE_ATTRIBUTES}
        kept.update(attributes or {})
        kept.pop(HELD_UNTIL, None)
        until = mark(record, now, _queued_tasks(stepper, own), carried)
        if until is not None:  # the same write: no other delivery re-sends it before then
            kept[HELD_UNTIL] = mark_value(seq, until)
        new = replace(
            record,
            seq=seq,
            status=state.status,
            state=_store_state(state),
            outbox=outbox,
            stop_date=None if state.status == "RUNNING" else now,
            attributes=kept,
        )
        if outbox and not repair_sent:  # only a commit with messages to send can lose them
            repair_sent = stepper._send_repair(execution_arn, ending=new.status != "RUNNING")
        try:
            stepper.log.commit(new, record.seq, history, fence=fence)
        except ConflictError:
            continue
        except UnstorableDataError as exc:
            if any(isinstance(e, Fail) for e in events):
                raise
            # Poison data (e.g. a lone surrogate from States.StringToJson): retrying
            # cannot help, so the execution fails instead, on the record it was at.
            events = [unstorable(exc)]
            continue
        skip = frozenset(m.id for m in carried)
        return repaired + [(m, False) for m in stepper._flush(new, skip=skip)]
    raise ConflictError(execution_arn, -1)


def _decide(
    stepper: Stepper,
    definition: StateMachine,
    before: ExecutionState,
    events: list[Event],
    now: float,
    unreported: Mapping[str, UnreportedIterations] | None = None,
) -> tuple[ExecutionState, list[HistoryEvent], list[Command]]:
    """Decide ``events`` in turn from ``before`` (left unchanged): state, history, commands."""
    state = before
    history: list[HistoryEvent] = []
    commands: list[Command] = []
    compact = takes_compact_events(stepper.log)  # the in-memory log keeps them as they are
    for event in events:
        # The first decision copies the loaded state (kept as ``before``);
        # the following ones may change their predecessor's in place.
        decision = decide(
            definition,
            state,
            event,
            now,
            consume=state is not before,
            time_budget=stepper._budget(),
            limits=stepper.limits,
            check_parameters=stepper.check_parameters,
            unreported=unreported,
            compact=compact,
        )
        state = decision.state
        history.extend(decision.events)
        commands.extend(decision.commands)
    return state, history, commands


def _queued_tasks(stepper: Stepper, outbox: tuple[Message, ...]) -> list[Message]:
    """The task messages of ``outbox`` for the tasks queue (none if one is an activity's)."""
    tasks = [m for m in outbox if m.kind == "task"]
    if stepper.router is not None and any(stepper.router.deferred(m) for m in tasks):
        return []
    return tasks


def _unstarted_child_aborted(stepper: Stepper, record: ExecutionRecord) -> bool:
    """Whether a map run's child, its first commit's outbox never sent, was aborted here.

    The stepper that creates a run's child checks the run before it sends that outbox
    (:func:`stepflow.runtime.stepper_batch._run_first_states`); one that crashed in
    between leaves it to the next delivery (the repair message, the repair job's). That
    delivery checks the run the same way: a run that ended since never sees the child
    run its first state. One read of the run, only for such a child.
    """
    parent = record.state.get("parent") if record.status == "RUNNING" else None
    if not isinstance(parent, dict) or not is_run_key(str(parent.get("arn") or "")):
        return False
    from stepflow.runtime.stepper_batch import abort_if_run_ended  # it imports this module

    return abort_if_run_ended(stepper, record, str(parent["arn"]))


def _in_flight(
    stepper: Stepper, record: ExecutionRecord, state: ExecutionState, handled: set[str]
) -> tuple[Message, ...]:
    """Inline tasks of the record's outbox that another stepper runs (or ran and died).

    They stay in the new outbox while their attempt is open: replacing the outbox
    would otherwise forget a task whose runner crashes before committing its result.

    Only a stepper that runs tasks inline carries them (and a runner the groups it
    runs in place, whole: :func:`stepflow.runtime.in_place.carry`). Any other sent every task of
    the old outbox to the queue (this commit's :func:`_commit` re-sent a pending one
    first, grouped as committed), where it stays until a runner settles it. Carried
    over, the members still running of a group left in an outbox whose clear did not
    land were sent again as a smaller group: another lease key, claimed and run twice.
    """
    if not stepper.inline_tasks:
        # a runner's tasks held in place, whole groups (same lease keys), while open
        return carry(record, state.tasks)
    return tuple(
        m
        for m in record.outbox
        if m.kind == "task"
        and m.id not in handled
        and str(m.body.get("task_id")) in state.tasks
        and (stepper.router is None or not stepper.router.deferred(m))
    )
