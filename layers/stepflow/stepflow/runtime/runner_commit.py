"""Queued tasks run side by side; the runner commits the results of the tasks it ran itself.

:func:`run_tasks` is the task part of :func:`stepflow.runtime.stepper_batch.run_batch`
(the runner Lambda's batch, up to ten task messages). Each task runs under its own
lease (:meth:`TaskRuns.run_unrecorded`). The results of one execution's tasks in
the batch are that execution's event group, committed by the stepper's own
:func:`stepflow.runtime.stepper_commit.apply_events` (decided on the latest head,
conditional on ``seq``, conflicts retried, the outbox then sent) when *that
execution's* last task in the batch ends, or
:data:`~stepflow.runtime.runner_group.GROUP_WAIT_SECONDS` after its
first result if others still run: a Map's ten results that end together are one
commit, and a slow task holds no other result (its own execution's included) longer
than that.

A committed result closes its attempt in the head, so a duplicate delivery of the
task message is dropped by the head check before the claim, and the lease needs no
recorded result. When the commit does not happen (an error, conflicts exhausted,
the invocation out of time, a lease that ran out meanwhile), the results go the old
way, the fallback: each is recorded on its lease and sent to the transition queue,
where a stepper commits it. Nothing is lost:

- a crash between the invoke and the commit leaves the lease live and the message
  unacknowledged: its redelivery waits for the lease to run out, then runs the task
  again (the window a crash between the invoke and the recorded result always had);
- a crash after the commit, before its outbox is sent: the redelivered task message
  finds its attempt closed and the head's outbox pending, and re-sends it as any
  stepper delivery does (:func:`apply_events` with no event); the repair job is the
  backstop.

Polls and cancels (``.sync`` jobs) and tasks for activity queues keep the old path.

A group message (one commit's tasks, :mod:`stepflow.runtime.task_groups`) is taken
apart: its members run side by side as the batch's other tasks do, under the group's
one lease instead of one each, and their results are committed the same way; the
fallback records them on the group's lease.

This module takes a batch apart and runs its tasks side by side; the results'
grouping, commits and fallback are :class:`stepflow.runtime.runner_group.ResultGroups`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from stepflow.runtime.in_place import current as current_in_place
from stepflow.runtime.in_place import run_rounds
from stepflow.runtime.messages import Message
from stepflow.runtime.runner_group import ResultGroups
from stepflow.runtime.task_groups import GROUP_MAX_TASKS, GroupClaim, group_members

if TYPE_CHECKING:
    from stepflow.runtime.stepper import Stepper


MAX_TASK_THREADS = 32
"""Tasks one runner invocation runs side by side at most (a batch of ten groups holds 100).

Each waits on its function in a thread (and a connection): the cap bounds them in
one runner Lambda; three full groups' worth start at once. A member that waits for a
thread starts only if its group's lease still covers it (``GroupClaim.covers``); one
that does not is handed off (sent on its own)."""


def run_tasks(
    stepper: Stepper,
    tasks: list[Message],
    has_time: Callable[[], bool] | None = None,
    remaining: Callable[[], float] | None = None,
    first: Callable[[], list[tuple[Message, Exception]]] | None = None,
) -> list[tuple[Message, Exception]]:
    """Run queued task messages, then the tasks their commits gave back; the failures.

    The tasks a runner's commit schedules are run in place, in rounds
    (:mod:`stepflow.runtime.in_place`); a held task that fails to run is sent (it comes
    back through the queue, as a delivered one would), and what the rounds leave is sent.
    ``first``, given instead of ``tasks``: the first round's work (the runner's delivered
    timers applied), its commits' tasks held as a task's result commit's are.
    """
    workers = _workers(stepper)
    return run_rounds(stepper, tasks, has_time, remaining, _run_round, workers, first)


def _workers(stepper: Stepper) -> int:
    """The tasks one round runs side by side at most."""
    concurrency = max(1, stepper.task_concurrency)
    return min(MAX_TASK_THREADS, concurrency * GROUP_MAX_TASKS) if concurrency > 1 else 1


def _run_round(
    stepper: Stepper,
    tasks: list[Message],
    has_time: Callable[[], bool] | None = None,
    remaining: Callable[[], float] | None = None,
) -> list[tuple[Message, Exception]]:
    """Run task messages, up to ``stepper.task_concurrency`` at a time; the failures.

    The runner takes a batch of up to ten tasks in one invocation (one receive,
    one delete, one Lambda request for a Map's ten tasks); they wait on their
    functions side by side, and each execution's results are committed together
    as soon as its last task in the batch ends (see the module's docstring).
    ``remaining``: the invocation's seconds left (a group member starts only if they
    cover it, see ``GroupClaim.covers``).
    """
    runs = stepper._tasks()
    # A duplicate inside the batch shares its first copy's run and outcome: run side by
    # side, it would find the first copy's lease live (its result not recorded).
    first: dict[tuple[str, str], Message] = {}
    copies = [(m, first.setdefault((m.execution_arn, m.id), m)) for m in tasks]
    # A group message's members run as the batch's tasks, under the group's one claim.
    failed: dict[int, Exception] = {}  # by id() of the delivered message
    expanded: list[Message] = []
    delivered: dict[int, Message] = {}  # id() of a task -> the message it came in
    claims: dict[int, GroupClaim] = {}
    for message in first.values():
        try:
            members = group_members(message)
        except ValueError as exc:  # malformed: never run (a signed one is a bug)
            failed[id(message)] = exc
            continue
        if members is None:
            expanded.append(message)
            delivered[id(message)] = message
            continue
        claim = GroupClaim(
            message=message,
            members=members,
            log=runs.log,
            owner=runs.owner,
            clock=runs.clock,
            seconds=runs.task_lease_seconds,
            remaining=remaining,
        )
        for member in members:
            expanded.append(member)
            delivered[id(member)] = message
            claims[id(member)] = claim
    groups = ResultGroups(stepper, runs, expanded, has_time, stepper.task_group_wait)
    for claim in claims.values():
        claim.closed = groups.closed
    in_place = current_in_place()
    if in_place is not None:  # the tasks its commits may hold wait for none of these
        in_place.round(len(expanded))

    def one(message: Message) -> Exception | None:
        with in_place.task() if in_place is not None else contextlib.nullcontext():
            return _one(message)

    def _one(message: Message) -> Exception | None:
        try:
            claim = claims.get(id(message))
            if claim is not None:
                groups.run(message, claim)
            elif runs.commits_directly(message):
                groups.run(message)
            else:
                runs.run_task(message)
        except Exception as exc:  # reported per message; the others go on
            return exc
        return None

    # Side by side: a batch's ten messages, each up to a group of ten tasks, at most
    # MAX_TASK_THREADS at a time (the others wait, then start only if their lease covers them).
    workers = min(len(expanded), _workers(stepper))
    if workers == 1:
        outcomes = [one(message) for message in expanded]
        groups.drain()
    elif workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task") as pool:
            # each thread runs in a copy of the caller's context (the batch's effect tally)
            futures = [pool.submit(contextvars.copy_context().run, one, m) for m in expanded]
            outcomes = [future.result() for future in futures]
        groups.drain()
    else:
        outcomes = []
    for m, own in zip(expanded, outcomes, strict=True):
        if (error := own or groups.failures.get(m.id)) is not None:
            failed.setdefault(id(delivered[id(m)]), error)  # a group's first failure
    return [(m, failed[id(copy)]) for m, copy in copies if id(copy) in failed]
