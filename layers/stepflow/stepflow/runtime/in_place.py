"""The runner runs an execution's next tasks in place instead of sending them to itself.

A runner that commits task results often gets the execution's next tasks back from
its own commit: a Parallel's branches after a Task, a Map's items after the
Parallel. Sent, they would cost a send, a receive, a delete, a Lambda invocation
and an outbox clear before the next runner claimed them. :class:`InPlace` holds
them instead (``OutboxSender.flush`` asks it), and :func:`run_in_place` runs them
in the same invocation, as if they had just been delivered: the same group
messages (:func:`~stepflow.runtime.task_groups.group_tasks`), claimed through the
same lease records, each member started only if its lease and the invocation's
time left cover it.

Why nothing runs twice or is lost:

- The outbox is not cleared while its tasks are held: it is their durable copy.
  If the runner dies, the redelivery of the message it was running re-sends the
  pending outbox (``ResultGroups.closed``), and the repair job is the backstop, once
  the commit's "held until" mark (below) has passed.
- Anything else that re-sends a held outbox after the mark (or a runner without a
  deadline, which writes none) groups it exactly as the runner did, so its claim meets
  the runner's live lease on the same record. For that, a commit that ends some of a
  held group's members carries the whole group into its outbox while any member is
  still open (:meth:`InPlace.carried`, :func:`carry_held`): a smaller group would have
  another lease key.
- The other messages of a held outbox (a timeout's timer) are sent at once, and not
  again when a later commit of the runner re-sends the pending outbox. Only tasks that
  may travel in a group are held, a lone task only with a ``TimeoutSeconds`` the
  invocation's time left covers; an outbox with an activity's task is not held.
- Held only while nothing else of the round still runs, so a held task starts at once
  (its timeout's timer runs from the commit), and only if the invocation's time left
  covers each task as ``GroupClaim.covers`` would for a claim made then. After 20
  rounds, or out of time, tasks are sent (and the outbox cleared) as usual.

The "held until" mark a runner's commit writes for the tasks it may hold, and what
other deliveries do with a held outbox, are in :mod:`stepflow.runtime.held_mark`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Container, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from stepflow.runtime.messages import Message
from stepflow.runtime.outbox import delay as _delay
from stepflow.runtime.outbox import send_all
from stepflow.runtime.ports import ConflictError, ExecutionRecord
from stepflow.runtime.task_groups import GROUP_START_MARGIN, group_tasks, groupable

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper

Round = Callable[
    ["Stepper", list[Message], Callable[[], bool] | None, Callable[[], float] | None],
    list[tuple[Message, Exception]],
]
"""One round of a runner's tasks (``runner_commit._run_round``): the failures."""

LOG = logging.getLogger(__name__)

MAX_ROUNDS = 20
"""Rounds of held tasks one runner invocation runs at most (then it sends the rest)."""

_CURRENT: ContextVar[InPlace | None] = ContextVar("stepflow_in_place", default=None)


def commit_prefix(message: Message) -> str:
    """``<arn>#<seq of the commit>`` of a task message's id (its group's prefix)."""
    return message.id.rsplit("#", 1)[0]


class InPlace:
    """The tasks one runner invocation's commits gave back, to run in place."""

    def __init__(
        self,
        remaining: Callable[[], float] | None,
        lease_seconds: float,
        rounds: int = MAX_ROUNDS,
        parallel: int = 1,
        lone_groups: bool = True,
    ) -> None:
        self._remaining = remaining
        self._parallel = parallel  # tasks a round runs side by side
        self._lone_groups = lone_groups  # grouped as the stepper's sender groups them
        self._lease_seconds = lease_seconds
        self._rounds = rounds
        self._lock = threading.Lock()
        self._known: set[str] = set()  # ids of every task message held in this invocation
        self._new: dict[str, list[Message]] = {}  # held, not yet run, by execution
        self._seq: dict[str, int] = {}  # the head seq of each execution's latest hold
        self._sent: set[str] = set()  # ids of the other messages of held outboxes, sent
        self._running = 0  # tasks of the current round not yet ended
        self._unsent: set[str] = set()  # executions whose held outbox lost a send
        self._local = threading.local()  # .task: this thread runs one of them

    def hold(self, record: ExecutionRecord, tasks: list[Message]) -> bool:
        """Whether the runner keeps ``tasks``, the whole outbox of ``record``, to run in place.

        ``True`` for tasks held already (a re-flush of the same outbox): not sent again.
        Held only while nothing else of the round still runs (a held task starts at once,
        never after a slow sibling: its timeout's timer is already running), and only if
        the invocation's time left covers every new task as ``GroupClaim.covers`` would.
        """
        with self._lock:
            fresh = [m for m in tasks if m.id not in self._known and m.id not in self._sent]
            if not fresh:
                return True
            if not self._may_hold(tasks, fresh):
                return False
            self._known.update(m.id for m in fresh)
            self._new.setdefault(record.execution_arn, []).extend(fresh)
            self._seq[record.execution_arn] = record.seq
            return True

    def _may_hold(self, tasks: list[Message], fresh: list[Message]) -> bool:
        """Whether ``fresh`` (new among ``tasks``) may be held now (locked)."""
        waiting = sum(len(messages) for messages in self._new.values())
        return (
            self._rounds > 0
            and self._idle()
            and waiting + len(fresh) <= self._parallel  # each starts at once next round
            and all(groupable(m) for m in tasks)
            and all(self._covers(m) for m in fresh)
        )

    def deadline(self, tasks: list[Message], now: float) -> float | None:
        """The mark a commit of ``tasks`` (its outbox's, not sent yet) writes on the head.

        ``now`` plus the invocation's time left if it may hold them (the same test as
        :meth:`hold`, which decides after the commit); None without a deadline (no mark:
        every delivery re-sends the outbox, as before the mark) or if it will not hold.
        """
        if self._remaining is None or not tasks:
            return None
        with self._lock:
            if not self._may_hold(tasks, tasks):
                return None
        return now + max(0.0, self._remaining())

    def _idle(self) -> bool:
        """Whether every task of the round but the calling thread's own has ended (locked)."""
        return self._running - (1 if getattr(self._local, "task", False) else 0) <= 0

    def _covers(self, message: Message) -> bool:
        """``GroupClaim.covers``' rule, for a claim made now: the time left outlasts the task."""
        if self._remaining is None:  # no deadline (a context without a clock: tests)
            return True
        longest = self._lease_seconds - GROUP_START_MARGIN
        timeout = message.body.get("timeout_seconds")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            longest = min(longest, timeout + GROUP_START_MARGIN)
        return self._remaining() >= longest

    def round(self, tasks: int) -> None:
        """A round of ``tasks`` task messages begins (none of them has ended)."""
        with self._lock:
            self._running = tasks

    @contextlib.contextmanager
    def task(self) -> Iterator[None]:
        """One task of the round runs in this block (in this thread), then has ended."""
        self._local.task = True
        try:
            yield
        finally:
            self._local.task = False
            with self._lock:
                self._running -= 1

    def was_sent(self, message: Message) -> bool:
        """Whether ``message`` (not a task) of a held outbox went out in this invocation."""
        with self._lock:
            return message.id in self._sent

    def sent(self, messages: list[Message]) -> None:
        """``messages`` of a held outbox went out: a re-flush of it does not send them again."""
        with self._lock:
            self._sent.update(m.id for m in messages)

    def unsent(self, execution_arn: str) -> None:
        """A message of ``execution_arn``'s held outbox failed to go: never clear that outbox."""
        with self._lock:
            self._unsent.add(execution_arn)

    def kept_pending(self) -> set[str]:
        """Executions whose outbox must stay pending (something of it may not have gone)."""
        with self._lock:
            return set(self._unsent)

    def carried(self, message: Message) -> bool:
        """Whether ``message`` is a task this invocation holds (kept in the outbox while open)."""
        with self._lock:
            return message.id in self._known

    def seq_of(self, execution_arn: str) -> int:
        """The head seq of ``execution_arn``'s latest held outbox."""
        with self._lock:
            return self._seq[execution_arn]

    def take(self) -> list[Message]:
        """The next round: the messages held since the last one, grouped as sent (or [])."""
        with self._lock:
            if self._rounds <= 0 or not self._new:
                return []
            self._rounds -= 1
            held, self._new = self._new, {}
        return [
            group
            for messages in held.values()
            for group in group_tasks(messages, self._lone_groups)
        ]


def current() -> InPlace | None:
    """The runner invocation's :class:`InPlace`, if one is running (in this context)."""
    return _CURRENT.get()


@contextlib.contextmanager
def holding(in_place: InPlace | None) -> Iterator[None]:
    """Commits made in this block (and in threads started with a copy of its context) hold."""
    token = _CURRENT.set(in_place)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def carry(record: ExecutionRecord, open_tasks: Container[str]) -> tuple[Message, ...]:
    """The held groups of ``record``'s outbox with a member still open, whole.

    ``open_tasks``: the task ids open in the new state. Empty outside a runner's
    :func:`holding` block.
    """
    in_place = current()
    if in_place is None:
        return ()
    held = [m for m in record.outbox if m.kind == "task" and in_place.carried(m)]
    live = {commit_prefix(m) for m in held if str(m.body.get("task_id")) in open_tasks}
    return tuple(m for m in held if commit_prefix(m) in live)


def run_rounds(
    stepper: Stepper,
    tasks: list[Message],
    has_time: Callable[[], bool] | None,
    remaining: Callable[[], float] | None,
    run_round: Round,
    parallel: int = 1,
    first: Callable[[], list[tuple[Message, Exception]]] | None = None,
) -> list[tuple[Message, Exception]]:
    """Run delivered task messages, then the tasks their commits gave back; the failures.

    The failures are the delivered messages' (a held task that fails to run is sent:
    it comes back through the queue, as a delivered one would). ``parallel``: the tasks
    a round runs side by side (no more are held for one round). ``first``: the first
    round's work instead of running ``tasks`` (its commits hold their tasks the same way).
    """
    in_place = None
    if stepper.tasks_bus is not None and not stepper.inline_tasks:
        in_place = InPlace(
            remaining, stepper.task_lease_seconds, MAX_ROUNDS, parallel, stepper.lone_task_groups
        )
    with holding(in_place):
        failures = first() if first is not None else run_round(stepper, tasks, has_time, remaining)
        while in_place is not None and (held := in_place.take()):
            if has_time is not None and not has_time():  # sent, as the commit would have
                if _send(stepper, held):  # not cleared where something may not have gone
                    for arn in {m.execution_arn for m in held} - in_place.kept_pending():
                        with contextlib.suppress(ConflictError):
                            stepper.log.clear_outbox(arn, in_place.seq_of(arn))
                break
            for message, exc in run_round(stepper, held, has_time, remaining):
                LOG.warning("%s: a task held in place goes to the queue: %r", message.id, exc)
                if not _send(stepper, [message], getattr(exc, "until", 0.0) - stepper.clock()):
                    in_place.unsent(message.execution_arn)
    return failures


def _send(stepper: Stepper, messages: list[Message], seconds: float = 0.0) -> bool:
    """Send held task messages to the tasks queue; whether all went.

    Not sent, they are still in the outbox, left pending: the redelivery of the message
    the runner ran (``ResultGroups.closed``) or the repair job sends them, all of them:
    the entries of a batch that SQS accepted around a refused one go twice (their
    second claim meets the first's lease or a closed task).
    """
    bus = stepper.tasks_bus or stepper.bus
    try:  # a Map held past its time: one request per ten on SQS
        send_all(bus, [(message, _delay(seconds)) for message in messages])
    except Exception as exc:
        LOG.warning("held task messages were not sent: %r", exc)
        return False
    return True
