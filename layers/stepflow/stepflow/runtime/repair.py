"""Sending a committed outbox, and the repair messages that re-send one left unsent.

A decision's messages are committed with it (the outbox); :meth:`OutboxSender.flush`
sends them and clears the outbox once everything in it went out. A sender that
crashes right after the commit leaves the outbox pending: the next delivery for
the execution re-sends it (see :func:`stepflow.runtime.stepper_commit.apply_events`),
and a stepper with a ``repair_delay`` makes sure there is such a delivery by
sending a delayed ``repair`` message before every commit. A stepper with a
``failed_send_repair`` (the API's, since issue 18's round 11, in place of the message
before every commit) sends one only when a send of its outbox failed; a process that
dies in between is left to the outbox repair job (:mod:`stepflow.aws.outbox_repair`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from stepflow.runtime.held_mark import held_until, unmarked
from stepflow.runtime.in_place import current as current_in_place
from stepflow.runtime.map_run_state import is_run_key
from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.outbox import send_all
from stepflow.runtime.ports import CoordinationLog, ExecutionRecord, MessageBus
from stepflow.runtime.task_groups import group_tasks
from stepflow.runtime.task_queue import TaskRouter

LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxSender:
    """The sending side of one stepper, over the collaborators it holds right now."""

    log: CoordinationLog
    bus: MessageBus
    clock: Callable[[], float]
    inline_tasks: bool
    router: TaskRouter | None
    tasks_bus: MessageBus | None
    repair_delay: int
    failed_send_repair: int = 0
    """Seconds: when > 0 (and no ``repair_delay``), a failed send leaves a delayed repair
    message (best effort): the API's, whose caller gets the error and no queue redelivers."""
    lone_task_groups: bool = True
    """Whether a lone task is sent as a group of one (:func:`group_tasks`)."""

    def flush(
        self,
        record: ExecutionRecord,
        *,
        inline: bool | None = None,
        clear: bool = True,
        skip: frozenset[str] = frozenset(),
    ) -> list[Message]:
        """Send the outbox; return its task messages instead when tasks run inline.

        The outbox is cleared only when everything in it was sent (and ``clear``):
        inline task messages stay until the commit of their results replaces the outbox.
        ``skip``: ids of messages a commit kept from a held outbox, not sent here; once the
        rest went, the outbox is replaced by them alone (``held_mark.carry_held``: sent
        after the mark if still pending), so a later commit does not carry the rest again.
        """
        try:
            return self._flush(record, inline, clear, skip)
        except Exception:
            if held_until(record) is not None:  # its messages must not wait for the mark
                self._end_mark(record)
            if self.failed_send_repair > 0 and self.repair_delay == 0:
                self._repair_later(record.execution_arn)
            raise

    def _repair_later(self, execution_arn: str) -> None:
        """After a failed send: a delayed repair message (best effort; the send's error stands)."""
        try:
            self.bus.send(repair_message(execution_arn), _delay(self.failed_send_repair))
        except Exception as exc:  # the outbox repair job is the backstop
            LOG.warning("%s: no repair message after a failed send: %r", execution_arn, exc)

    def _keep(self, record: ExecutionRecord, carried: list[Message]) -> None:
        """Make the outbox ``carried``, leaving the head's mark as it is now.

        Another writer's failed send may have ended the mark since this commit wrote it
        (``_end_mark``): written back, it would hold that writer's messages again (review).
        """
        head = self.log.get(record.execution_arn)
        if head is None or head.seq != record.seq:
            return  # a later commit replaced the outbox: nothing to keep
        self.log.keep_outbox(record if held_until(head) is not None else unmarked(record), carried)

    def _end_mark(self, record: ExecutionRecord) -> None:
        """End the "held until" mark of ``record`` after one of its sends failed.

        Also when a later commit kept its messages under the mark: what did not go is
        then re-sent by the redelivery at once instead of after the mark (review: a Wait
        of 10 s took 10 minutes). Held tasks re-sent then meet their holder's live lease.
        Best effort: on an error of its own the send's error stands, and the mark ends
        by itself.
        """
        ids = {m.id for m in record.outbox}
        try:
            for _ in range(3):  # a commit racing in between keeps the messages: unmark it
                # the head as stored, never the caller's copy (its outbox may leave out the
                # tasks a stepper ran inline, whose only copy the outbox is: review)
                head = self.log.get(record.execution_arn)
                if head is None or held_until(head) is None:
                    return
                if head.seq != record.seq and not ids & {m.id for m in head.outbox}:
                    return
                self.log.keep_outbox(unmarked(head), head.outbox)
        except Exception as exc:
            LOG.warning("a held mark was not ended after a failed send: %r", exc)

    def _flush(
        self, record: ExecutionRecord, inline: bool | None, clear: bool, skip: frozenset[str]
    ) -> list[Message]:
        inline = self.inline_tasks if inline is None else inline
        now = self.clock()
        kept = []
        queued: list[tuple[Message, int]] = []
        timers: list[tuple[Message, int]] = []  # retry timers: to the runner (see rides_tasks)
        tasks: list[Message] = []
        dispatched = False
        router = self.router
        for message in record.outbox:
            if message.id in skip:
                continue
            if self.tasks_bus is not None and not inline and rides_tasks(record, message):
                timers.append((message, _delay(message.not_before - now)))
            elif message.kind == "task" and router is not None and router.deferred(message):
                router.dispatch(message)
                dispatched = True
            elif message.kind == "task" and inline:
                kept.append(message)
            elif message.kind == "task" and self.tasks_bus is not None:
                tasks.append(message)
            else:
                queued.append((message, _delay(message.not_before - now)))
        # A runner's own commit of tasks: it runs them in place (in_place.py), and the outbox,
        # their durable copy until their results are committed, is not cleared (its other
        # messages, a timeout's timer, are sent once, not again by the next re-flush).
        in_place = current_in_place() if tasks and not dispatched else None
        if in_place is not None and in_place.hold(record, tasks):
            if skip:  # never cleared out of time: what it keeps may not have gone
                in_place.unsent(record.execution_arn)
            fresh = [(m, d) for m, d in queued if not in_place.was_sent(m)]
            later = [(m, d) for m, d in timers if not in_place.was_sent(m)]
            try:
                send_all(self.bus, fresh)
                if later and self.tasks_bus is not None:
                    send_all(self.tasks_bus, later)
            except Exception:  # the outbox is their only copy now: never cleared here
                in_place.unsent(record.execution_arn)
                raise
            in_place.sent([m for m, _ in fresh + later])
            return kept
        if self.tasks_bus is not None and (tasks or timers):
            # a Map's ten tasks: one message, one claim
            send_all(
                self.tasks_bus, [(m, 0) for m in group_tasks(tasks, self.lone_task_groups)] + timers
            )
        send_all(self.bus, queued)
        # An empty outbox has nothing to clear: the conditional write would fail, billed.
        if record.outbox and not kept and clear and not final_report(record):
            if not skip:
                self.log.clear_outbox(record.execution_arn, record.seq)
            elif any(m.id not in skip for m in record.outbox):  # all its own went: keep the rest
                self._keep(record, [m for m in record.outbox if m.id in skip])
        return kept

    def send_repair(self, execution_arn: str, *, ending: bool = False) -> bool:
        """Before a commit: a delayed message whose delivery re-sends a still pending outbox.

        Sent before every commit with a ``repair_delay``; with a ``failed_send_repair`` only
        before a commit that ends the execution (``ending``): the outbox repair job reads
        running executions only, so nothing else would re-send that outbox (a ``.sync``
        parent's notice, a child's stop) if its sender died before the send (review 37).
        Whether it was sent.
        """
        delay = self.repair_delay or (self.failed_send_repair if ending else 0)
        if delay <= 0:
            return False
        self.bus.send(repair_message(execution_arn), _delay(delay))
        return True


def rides_tasks(record: ExecutionRecord, message: Message) -> bool:
    """Whether ``message`` goes to the tasks queue though it is not a task: a retry's timer.

    A Task's retry fires on the runner (:attr:`~stepflow.runtime.stepper.Stepper.task_runner`),
    whose commit of ``TimerFired`` holds the new attempt and runs it in place: the hop
    through the transition queue (a send, a receive, a delete, a stepper invocation and an
    outbox clear) is gone. Known from the head alone (the armed timer's kind in its state),
    so every sender of the same outbox routes it the same way.
    """
    if message.kind != "event" or message.body.get("type") != "TimerFired":
        return False
    timers, timer_id = record.state.get("timers"), message.body.get("timer_id")
    if not isinstance(timers, dict) or not isinstance(timer_id, str):
        return False
    timer = timers.get(timer_id)
    return isinstance(timer, list | tuple) and len(timer) == 2 and timer[1] == "retry"


def final_report(record: ExecutionRecord) -> bool:
    """Whether the outbox is only an ended map run child's report to its run.

    Such an outbox is not cleared: that write would cost as much as the report's own
    share of the commit that ended the child, and nothing more is ever committed on
    this head. Left in place, it is sent again only if a late delivery reaches the
    ended child (a duplicate, a stop that lost the race), and a run counts a child's
    report once (the child leaves its window once), so the repeat is harmless.
    """
    return (
        record.status != "RUNNING"
        and bool(record.outbox)
        and all(m.kind == "event" and is_run_key(m.execution_arn) for m in record.outbox)
    )


def repair_message(execution_arn: str) -> Message:
    """A ``repair`` message: its delivery makes a stepper re-send the execution's pending outbox."""
    return Message(execution_arn, f"{execution_arn}#repair#{uuid.uuid4().hex}", "repair", {})
