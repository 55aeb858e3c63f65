"""One commit's tasks for the runner: one tasks-queue message, claimed with one lease.

The tasks a commit sends to the runner for one execution (a Map's iterations, a
Parallel's branches) travel as ONE ``task`` message whose body is ``{"group":
[{"id": <member message id>, "body": <task body>}, ...]}`` (:func:`group_tasks`;
split only past :data:`GROUP_MAX_TASKS` or :data:`GROUP_MAX_BYTES`), signed as a
whole like every message. The runner (:mod:`stepflow.runtime.runner_commit`) takes
its members apart (:func:`group_members`) and runs them side by side under ONE lease
record, ``TK#tasks#<commit seq>#<first index>`` (:class:`GroupClaim`), instead of one
per task: a Map of ten costs one claim write, and one head read instead of ten.

The rules (model/coordination.pml, the ``group`` scenario of model/check.sh):

- the head is read once: members whose attempt is closed are dropped (all closed:
  the head's pending outbox is re-sent, as for a single task);
- :func:`stepflow.runtime.leases.claim_group`: a live lease of another runner makes
  the whole group wait (its redelivery); otherwise it is taken (again), and members
  the record lists as done are not run: a recorded result is sent again, a member done
  without one (committed, or closed) is skipped;
- the results go through the runner's commit as single tasks' do; the commit is
  skipped (the fallback) once the group lease has run out;
- the fallback writes the round's results into the record (with the members this
  claim finished before), releasing it once no member still runs, then sends them;
- a member starts only while the lease, and the runner invocation's time left, cover
  its ``TimeoutSeconds`` and a margin (:meth:`GroupClaim.covers`);
- a member not covered, or whose task asks to run later, is handed off: sent again
  as a single task message (its own lease, as before), THEN listed as done in the
  record (a failed send fails the group message, which comes back with the member
  still to run). The group message is acknowledged: no receive count is burnt.

A lone task travels as a group of one (since issue 18's round 11): its claim is then a
commit's first group's, whose record may share the commit's event item with their copy
(:mod:`stepflow.aws.log_claims`): one write where its own ``TK#`` lease and the copy
were two. A message of the old shape (one task) still runs under its own ``TK#<task
id>`` lease: a member handed off, a lone task too big for a group's envelope, and
messages queued before an upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from stepflow.engine.codec import decode_state
from stepflow.runtime import leases
from stepflow.runtime.leases import LeaseConflictError, TaskLease
from stepflow.runtime.map_run_state import is_run_key
from stepflow.runtime.messages import Message
from stepflow.runtime.ports import ExecutionRecord
from stepflow.runtime.task_runs import TaskLeaseHeldError
from stepflow.runtime.wire import MAX_MESSAGE_BYTES, encode_wire, unsigned_wire_size

GROUP_MAX_TASKS = 10
"""Members of one group message at most: a runner batch's ten tasks run side by side."""

GROUP_MARGIN_BYTES = 16_384
"""Room left under SQS's limit in a group message (a key id longer than the one allowed for)."""

GROUP_MAX_BYTES = MAX_MESSAGE_BYTES - GROUP_MARGIN_BYTES
"""A group message's size at most, measured as SQS counts it once signed (runtime/wire.py).

Measured on the JSON the bus sends (:func:`~stepflow.runtime.wire.encode_wire`: UTF-8
as is since review 6, only U+FFFE, U+FFFF and lone surrogates escaped), never guessed.
A member too big for any group travels alone, in the old shape, as on main."""

GROUP_START_MARGIN = 60.0
"""Seconds of the group lease a member must have left beyond its ``TimeoutSeconds`` to start.

A member without ``TimeoutSeconds`` (or one longer than the lease) starts only while the
lease has all but this margin left, as a single task starts with a fresh lease: a
member that would outlive the lease could run again, without a crash, by the runner
that takes the group's redelivery (review 3's finding 3; see :meth:`GroupClaim.covers`)."""

GROUP_HANDOFF_MARGIN = 30.0
"""Seconds of the group lease that must be left to hand a member off rather than fail.

With less (or a lease run out) another runner may take the group over while the
member's own message is sent, and run it beside that message's runner: the group
message fails instead, and its redelivery runs the member once."""

Plan = Literal["run", "resend", "skip"]


def groupable(message: Message) -> bool:
    """Whether a tasks-queue message may travel in a group: a task to run.

    Not a poll or a stop of a ``.sync`` job, nor a map run's EXPRESS batch.
    """
    body = message.body
    return (
        message.kind == "task"
        and body.get("op") is None
        and "task_id" in body
        and "group" not in body
        and not is_run_key(message.execution_arn)
    )


def group_tasks(messages: list[Message], lone: bool = True) -> list[Message]:
    """The task messages of one outbox for the tasks queue: those of a commit grouped.

    Polls and stops keep their own messages. A lone task is a group of one (``lone``),
    unless the group's envelope would take it past :data:`GROUP_MAX_BYTES`; then, or with
    ``lone`` False (the first deploy of an upgrade), it keeps the single shape.
    """
    out: list[Message] = []
    commits: dict[tuple[str, str], list[Message]] = {}
    for message in messages:
        if not groupable(message):
            out.append(message)
            continue  # ids are <arn>#<seq of the commit>#<index>
        commits.setdefault((message.execution_arn, message.id.rsplit("#", 1)[0]), []).append(
            message
        )
    for members in commits.values():
        # a group's size: its envelope (a group of none) plus each entry and its comma
        envelope = unsigned_wire_size(_group_message(members[0], []))
        chunk: list[Message] = []
        size = envelope
        for member in members:
            length = len(encode_wire(_entry(member)).encode()) + 1
            if chunk and (len(chunk) == GROUP_MAX_TASKS or size + length > GROUP_MAX_BYTES):
                out.append(_group(chunk, lone, size))
                chunk, size = [], envelope
            chunk.append(member)
            size += length
        out.append(_group(chunk, lone, size))
    return out


def _entry(member: Message) -> dict[str, Any]:
    return {"id": member.id, "body": member.body}


def _group_message(first: Message, members: list[Message]) -> Message:
    # "+NN": the id's longest suffix, so that the envelope is not under-counted
    suffix = len(members) if members else GROUP_MAX_TASKS
    body = {"group": [_entry(m) for m in members]}
    return Message(first.execution_arn, f"{first.id}+{suffix}", "task", body)


def _group(members: list[Message], lone: bool, size: int) -> Message:
    """``members`` as one group message, ``size`` its measured size.

    A lone member stays alone without ``lone``, or when too big for a group's envelope.
    """
    if len(members) == 1 and (not lone or size > GROUP_MAX_BYTES):
        return members[0]
    return _group_message(members[0], members)


def group_members(message: Message) -> list[Message] | None:
    """The member task messages of a group message; None for a single task's.

    ``ValueError`` if the group is malformed (a member of another execution, a poll,
    one message id for two tasks or one task under two message ids: claims and plans
    are keyed by message id, so either would let a task take another's plan). An
    exact repeat of an entry (a sender's bug) is kept once: it runs once.
    """
    entries = message.body.get("group")
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{message.id}: a malformed task group")
    members = []
    seen: dict[str, str] = {}  # message id -> task id
    tasks: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
            raise ValueError(f"{message.id}: a malformed task group")
        member = Message(message.execution_arn, str(entry.get("id")), "task", entry["body"])
        if not member.id.startswith(message.execution_arn + "#") or not groupable(member):
            raise ValueError(f"{message.id}: a task group may hold only its execution's tasks")
        tid = task_id(member)
        if seen.get(member.id, tid) != tid or (member.id not in seen and tid in tasks):
            raise ValueError(f"{message.id}: a task group names a task or a message twice")
        if member.id not in seen:
            seen[member.id] = tid
            tasks.add(tid)
            members.append(member)
    return members


def group_key(message: Message) -> str:
    """The lease record of a group message: ``tasks#<commit seq>#<first member's index>``."""
    seq_index = message.id.rsplit("+", 1)[0].rsplit("#", 2)[-2:]
    return "tasks#" + "#".join(seq_index)


class GroupClaim:
    """One group message's claim, shared by its members' threads (see the module).

    The first member to ask reads the head and claims the lease; an error doing so is
    raised to every member (a live lease of another runner: the message comes back).
    """

    def __init__(
        self,
        *,
        message: Message,
        members: list[Message],
        log: Any,
        owner: str,
        clock: Callable[[], float],
        seconds: float,
        remaining: Callable[[], float] | None = None,
    ) -> None:
        self.message = message
        self._remaining = remaining
        self.members = members
        self._log = log
        self._owner = owner
        self._clock = clock
        self._seconds = seconds
        self.closed: Callable[[str, ExecutionRecord | None], None] = lambda _arn, _head: None
        """Told when every member is closed in the head: re-send its pending outbox."""
        self._lock = threading.Lock()
        self._plans: dict[str, Plan] | None = None
        self._error: Exception | None = None
        self.lease: TaskLease | None = None
        self._done: dict[str, Any] = {}  # task id -> recorded result event, or None
        self._ended: set[str] = set()  # task ids done under this claim (or closed)
        self._running: set[str] = set()  # task ids of members running under this claim

    def plan(self, member: Message) -> Plan:
        """What to do with ``member``: run it, send its recorded result, or skip it."""
        with self._lock:
            if self._plans is None:
                try:
                    self._plans = self._prepare()
                except Exception as exc:
                    self._plans = {}
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._plans[member.id]

    def recorded(self, member: Message) -> dict[str, Any]:
        """The result the record lists for ``member`` (its plan is ``resend``)."""
        result: dict[str, Any] = self._done[task_id(member)]
        return result

    def _prepare(self) -> dict[str, Plan]:
        arn = self.message.execution_arn
        head = self._log.get(arn)
        open_tasks = decode_state(head.state).tasks if head is not None else {}
        plans: dict[str, Plan] = {m.id: "skip" for m in self.members}
        opened = [m for m in self.members if task_id(m) in open_tasks]
        self._ended = {task_id(m) for m in self.members if task_id(m) not in open_tasks}
        if not opened:
            self.closed(arn, head)
            return plans
        now = self._clock()
        key = group_key(self.message)
        claim = leases.claim_group(self._log, arn, key, self._owner, now, self._seconds)
        if claim.status == "busy":
            until = claim.lease.until if claim.lease is not None else now
            raise TaskLeaseHeldError(f"{arn}: task group {key} is leased to another worker", until)
        self.lease = claim.lease
        self._done = dict((claim.result or {}).get("done") or {})
        for member in opened:
            tid = task_id(member)
            if tid not in self._done:
                plans[member.id] = "run"
                self._running.add(tid)
            elif self._done[tid] is not None:
                plans[member.id] = "resend"
        return plans

    def covers(self, member: Message) -> bool:
        """Whether ``member`` may start now: the lease and the invocation both outlast it.

        The group lease, and the invocation's time left (``remaining``: the runner
        Lambda is killed at its deadline, and a member it cuts would run again after
        the lease), must have its ``TimeoutSeconds`` and a margin left (a member
        without one: all of the lease but the margin). A member not covered is handed
        off: sent on its own, to run later under its own lease.
        """
        if self.lease is None:
            return False
        timeout = member.body.get("timeout_seconds")
        longest = self._seconds - GROUP_START_MARGIN
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            longest = min(longest, timeout + GROUP_START_MARGIN)
        if self._remaining is not None and self._remaining() < longest:
            return False
        return self.lease.until - self._clock() >= longest

    def can_hand_off(self) -> bool:
        """Whether the lease is still this claim's long enough to hand a member off safely."""
        return self.lease is not None and self.lease.until - self._clock() > GROUP_HANDOFF_MARGIN

    def expired(self, now: float) -> bool:
        """Whether the group lease has run out (its members' results must not be committed)."""
        return self.lease is not None and self.lease.until <= now

    def ended(self, members: list[Message]) -> None:
        """Members done under this claim without a record write (committed, found closed)."""
        with self._lock:
            for member in members:
                self._running.discard(task_id(member))
                self._ended.add(task_id(member))

    def stopped(self, member: Message) -> None:
        """A member that ended without a result (its invoke raised): to run again."""
        with self._lock:
            self._running.discard(task_id(member))

    def record(self, results: dict[str, Any]) -> bool:
        """Write ``results`` (task id -> result event, or None: handed off) into the record.

        Only while the lease is still this claim's (False otherwise: its new holder
        runs what is not done). Released once no member of this claim still runs.
        """
        with self._lock:
            if self.lease is None:
                return False
            for tid in results:
                self._running.discard(tid)
            # a result recorded before is kept (a closed task's, listed done again)
            done = {**dict.fromkeys(self._ended), **self._done, **results}
            complete = not self._running
            new = self.lease.next(
                result={"done": done},
                released=complete,
                until=min(self.lease.until, self._clock()) if complete else self.lease.until,
            )
            try:
                self._log.put_lease(new)
            except LeaseConflictError:
                return False
            self.lease = new
            self._done = done
            return True


def task_id(member: Message) -> str:
    """The task attempt a member message runs."""
    return str(member.body["task_id"])
