"""The runtime's ports: the coordination log and the message bus, as small Protocols.

Each has an in-memory twin (:mod:`stepflow.runtime.memory`) and an AWS
implementation (:mod:`stepflow.aws`); one contract test suite runs against all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stepflow.engine.history_events import HistoryEvent
from stepflow.runtime.leases import LeaseFence, TaskLease
from stepflow.runtime.messages import Message


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """The head of one execution in the log.

    ``seq`` counts committed decisions; a commit is accepted only from the
    record it was decided from. ``state`` is the engine state (see
    :mod:`stepflow.engine.codec`); ``outbox`` the messages the last commit
    must send, kept until they are known to be sent.
    """

    execution_arn: str
    state_machine_arn: str
    name: str
    input: Any
    status: str
    seq: int
    state: dict[str, Any]
    outbox: tuple[Message, ...] = ()
    start_date: float = 0.0
    stop_date: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of history events and the token of the next page (None at the end)."""

    events: list[dict[str, Any]]
    next_token: str | None


class ConflictError(Exception):
    """A commit lost the race: the record moved on since it was read."""

    def __init__(self, execution_arn: str, expected_seq: int) -> None:
        super().__init__(f"{execution_arn}: the log is no longer at seq {expected_seq}")
        self.execution_arn = execution_arn
        self.expected_seq = expected_seq


class ExecutionAlreadyExistsError(Exception):
    """An execution with that ARN exists; ``existing`` is its record."""

    def __init__(self, existing: ExecutionRecord) -> None:
        super().__init__(f"execution {existing.execution_arn} already exists")
        self.existing = existing


class UnstorableDataError(ValueError):
    """A write holds data the log cannot store (nothing was written).

    A lone surrogate, NaN or Infinity, a value that is not JSON, or an item too
    large even for the payload store. Retrying cannot help: the stepper fails the
    execution instead (``States.Runtime``). ``problem`` is ASCII, safe to record.
    """

    def __init__(self, execution_arn: str, problem: str) -> None:
        super().__init__(f"{execution_arn}: {problem}")
        self.execution_arn = execution_arn
        self.problem = problem


class CoordinationLog(Protocol):
    """Executions and their history; every write is conditional."""

    def create(self, record: ExecutionRecord, events: Sequence[HistoryEvent]) -> None:
        """Insert a new execution with its first events.

        ``events`` hold compact events only for a log that declares ``compact_events = True``
        (:func:`~stepflow.engine.history_events.takes_compact_events`); others get dicts.

        Raises :class:`ExecutionAlreadyExistsError` if the ARN is taken.
        """

    def get(self, execution_arn: str) -> ExecutionRecord | None:
        """The execution's current record, or None."""

    def commit(
        self,
        record: ExecutionRecord,
        expected_seq: int,
        events: Sequence[HistoryEvent],
        *,
        fence: LeaseFence | None = None,
    ) -> None:
        """Append ``events`` (see :meth:`create`) and replace the head with ``record``, atomically.

        Only if the stored head is still at ``expected_seq`` and, with a
        ``fence``, the task's lease record is still at ``fence.current.version``
        (``fence.new`` is then written by the same atomic write); otherwise
        raises :class:`ConflictError` and writes nothing. A commit with events
        moves the seq on (``record.seq > expected_seq``), else ValueError.
        """

    def get_many(self, execution_arns: Sequence[str]) -> list[ExecutionRecord | None]:
        """The current records of ``execution_arns`` (strongly consistent), in their order.

        None where there is none. One request per 100 records on DynamoDB (BatchGetItem),
        so reading many records back costs a hundredth of :meth:`get` each.
        """

    def put_many(self, records: Sequence[ExecutionRecord]) -> None:
        """Store records without events, **unconditionally**: each replaces its ARN's head.

        For records whose writer cannot race another writer of the same ARN (an EXPRESS
        batch's results under its lease, see :mod:`stepflow.runtime.map_express`); 25 per
        request on DynamoDB (BatchWriteItem). Not atomic: after an error some may be
        stored, and writing the same records again is harmless. A record that cannot be
        stored raises :class:`UnstorableDataError` before anything is written.
        """

    def clear_outbox(self, execution_arn: str, seq: int) -> None:
        """Empty the outbox if the head is still at ``seq`` (else do nothing)."""

    def keep_outbox(self, record: ExecutionRecord, messages: Sequence[Message]) -> None:
        """Replace the outbox of ``record`` with ``messages`` if the head is still at its seq.

        ``record``: the head as its commit wrote it (else do nothing), or with its "held
        until" mark taken off (``held_mark.unmarked``). One write, as :meth:`clear_outbox`:
        the commit's sender sent the rest (``held_mark.carry_held``).
        """

    def history(
        self,
        execution_arn: str,
        *,
        next_token: str | None = None,
        limit: int = 1000,
        reverse: bool = False,
    ) -> HistoryPage:
        """History events in order (``reverse``: newest first), a page at a time, no cap.

        The token is the log's own and names its direction: a token of the other
        direction, a malformed one or one pointing where no page can start raises
        ValueError. A page costs the same wherever it is in the history, either way.
        """

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        """The task attempt's lease record (strongly consistent), or None."""

    def put_lease(self, lease: TaskLease) -> None:
        """Store ``lease`` iff the stored record is at ``lease.version - 1`` (0: absent).

        Otherwise raises :class:`~stepflow.runtime.leases.LeaseConflictError`
        and writes nothing. The claim rules are in :mod:`stepflow.runtime.leases`.
        """

    def list_executions(
        self,
        state_machine_arn: str,
        *,
        status: str | None = None,
        next_token: str | None = None,
        limit: int = 100,
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Top-level executions of a state machine (any version), newest first, paged.

        ``state_machine_arn`` is unqualified; ``status`` filters. Returns a page
        and the token of the next one (None at the end); a bad token raises ValueError.
        """


class MessageBus(Protocol):
    """Queues that deliver messages at least once, possibly delayed."""

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        """Enqueue ``message``; sending the same ``message.id`` twice may deliver it twice."""
