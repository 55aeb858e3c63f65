"""Routing cells to task queues served by ``stepflow worker --cells`` (docs/cells-workers.md).

A ``stepflow:cell:*`` task runs inline in the stepper unless a route of
``STEPFLOW_CELL_QUEUES`` sends it to a task queue: ``selector=queue`` pairs,
comma-separated, where the selector is

- ``name:major``: a Task naming that major version (``stepflow:cell:name:2``,
  ``stepflow:cell:name:2.1.0``);
- ``name``: any Task of that cell (a route with the major wins over it);
- ``saga:compensate``: the ``stepflow:saga:compensate`` tasks;
- ``*``: every cell and compensation not routed otherwise.

A routed task becomes a deferred task on the activity ``stepflow-cells-<queue>``
(created on first use), leased to workers exactly like an activity task:
one delivery per lease, heartbeats, the Task's ``HeartbeatSeconds`` and
``TimeoutSeconds``, and delivery-bound tokens. The engine sees a Task as
always (``TaskScheduled``, ``TaskStarted`` at hand-out, ``TaskSucceeded``).

The input a worker receives is an envelope, :data:`ENVELOPE` with the
execution ARN, state name and attempt id (so the worker's idempotency keys
are those an inline run uses), the parent execution of a child (whose cell
versions it keeps) and the roles, next to ``Input``, the task's own input.
The workflow never sees it, and cannot make one: a workflow Task on a cell
queue's activity is refused (:func:`stepflow.activities.names.is_cell_activity`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stepflow.activities.catalog import TAG_CREATED, TAG_NAME
from stepflow.activities.names import CELL_ACTIVITY_PREFIX, queue_name
from stepflow.cells.model import NAME
from stepflow.cells.runner import SERVICE, cell_reference
from stepflow.engine import TaskFailed
from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.offload import wire_form
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.ports import MessageBus
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.task_queue import QueueDoesNotExistError, TaskQueue, TaskRouter

logger = logging.getLogger(__name__)

SETTING = "STEPFLOW_CELL_QUEUES"
COMPENSATE = "saga:compensate"
EVERYTHING = "*"
ENVELOPE = "StepFlowCellTask"
"""The key of the task's identity in the input a worker receives (the input is ``Input``)."""
INPUT = "Input"

_OPTIONAL = (
    ("attempt_id", "attemptId"),
    ("parent_arn", "parentArn"),  # a child keeps its parent's cell versions
    ("frame", "frame"),  # the saga scope of the task (its branches and iterations)
    ("role_arn", "roleArn"),  # the roles an inline run's clients act as, carried so a
    ("execution_role", "executionRole"),  # worker's clients act as them too
)
"""The task body's optional keys and their names in the envelope."""
_QUEUE = re.compile(r"[A-Za-z0-9_-]{1,60}")
_MAJOR = re.compile(r"[0-9]{1,9}")


class CellQueueError(ValueError):
    """A malformed ``STEPFLOW_CELL_QUEUES`` setting or cell task envelope."""


def activity_name(queue: str) -> str:
    """The activity whose tasks queue ``queue`` holds: ``stepflow-cells-<queue>``."""
    return CELL_ACTIVITY_PREFIX + queue


@dataclass(frozen=True, slots=True)
class CellQueues:
    """Which cell tasks run on which task queue (none: every cell runs inline)."""

    routes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | Mapping[str, str] | None) -> CellQueues:
        """The routes of ``name[:major]=queue,...`` (or a mapping of the same); checked.

        Raises :class:`CellQueueError` naming the bad entry.
        """
        if text is None:
            return cls()
        pairs: list[tuple[str, str]]
        if isinstance(text, str):
            pairs = []
            for entry in (e.strip() for e in text.split(",")):
                if not entry:
                    continue
                selector, equals, queue = entry.partition("=")
                if not equals:
                    raise CellQueueError(f"{SETTING}: {entry!r} is not selector=queue")
                pairs.append((selector.strip(), queue.strip()))
        else:
            pairs = list(text.items())
        routes: dict[str, str] = {}
        for selector, queue in pairs:
            _check_selector(selector)
            if not _QUEUE.fullmatch(queue):
                raise CellQueueError(
                    f"{SETTING}: queue {queue!r} must be 1-60 letters, digits, '_' or '-'"
                )
            if selector in routes and routes[selector] != queue:
                raise CellQueueError(f"{SETTING}: {selector!r} is routed twice")
            routes[selector] = queue
        return cls(routes)

    def __bool__(self) -> bool:
        return bool(self.routes)

    def queue_for(self, resource: str) -> str | None:
        """The queue a task on ``resource`` runs on; None: inline."""
        if not self.routes:
            return None
        info = describe(resource)
        if info.service != SERVICE or info.pattern != "request-response":
            return None
        if info.action == COMPENSATE:
            return self.routes.get(COMPENSATE) or self.routes.get(EVERYTHING)
        reference = cell_reference(info.action)
        if reference is None:
            return None
        name, version = reference
        if version is not None:
            found = self.routes.get(f"{name}:{version.split('.')[0]}")
            if found is not None:
                return found
        return self.routes.get(name) or self.routes.get(EVERYTHING)


def _check_selector(selector: str) -> None:
    if selector in (EVERYTHING, COMPENSATE):
        return
    name, colon, major = selector.partition(":")
    if not NAME.match(name) or (colon and not _MAJOR.fullmatch(major)):
        raise CellQueueError(
            f"{SETTING}: {selector!r} is not a cell name, name:major, {COMPENSATE} or *"
        )


def envelope(message: Message) -> dict[str, Any]:
    """The input a worker receives for the cell task of ``message``."""
    body = message.body
    identity = {
        "resource": str(body.get("resource", "")),
        "executionArn": message.execution_arn,
        "stateName": str(body.get("state_name", "")),
        "taskId": str(body.get("task_id", "")),
    }
    for key, name in _OPTIONAL:
        if body.get(key):
            identity[name] = str(body[key])
    return {ENVELOPE: identity, INPUT: body.get("input")}


def task_body(value: Any) -> dict[str, Any]:
    """The task body (as :class:`~stepflow.cells.CellRuntime` takes it) of an envelope.

    Raises :class:`CellQueueError` for anything :func:`envelope` did not make.
    """
    identity = value.get(ENVELOPE) if isinstance(value, dict) else None
    keys = ("resource", "executionArn", "stateName", "taskId")
    if not isinstance(identity, dict) or not all(
        isinstance(identity.get(k), str) and identity.get(k) for k in keys
    ):
        raise CellQueueError(
            f"the task input is not a StepFlow cell task (no {ENVELOPE} with {', '.join(keys)})"
        )
    assert isinstance(value, dict)
    body = {
        "resource": identity["resource"],
        "execution_arn": identity["executionArn"],
        "state_name": identity["stateName"],
        "task_id": identity["taskId"],
        "input": value.get(INPUT),
    }
    for key, name in _OPTIONAL:
        if isinstance(identity.get(name), str):
            body[key] = identity[name]
    return body


class CellRouter:
    """A :class:`~stepflow.runtime.task_queue.TaskRouter`: routed cells to their queues.

    Every other task goes to ``inner`` (the activity router), if any. A queue
    that does not exist yet is created, tagged as its activity, so a task
    waits there for a worker (within the Task's ``TimeoutSeconds``) rather
    than failing before the first worker started. Where it cannot be created,
    the task fails with ``States.Runtime``, reported through ``bus`` (as a task
    on a missing activity does). A task over SQS's limit is stored in ``payloads``
    (default: the bus's) and its queue carries a signed reference
    (:mod:`stepflow.runtime.offload`), as :class:`~stepflow.activities.ActivityRouter` does.
    """

    def __init__(
        self,
        queues: CellQueues,
        queue: TaskQueue,
        *,
        signer: MessageSigner,
        inner: TaskRouter | None = None,
        bus: MessageBus | None = None,
        clock: Callable[[], float] = time.time,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.queues, self.queue, self.signer = queues, queue, signer
        self.inner, self.bus, self.clock = inner, bus, clock
        self.payloads = payloads if payloads is not None else getattr(bus, "payloads", None)

    def _queue(self, message: Message) -> str | None:
        if message.kind != "task" or message.body.get("op") is not None:
            return None
        return self.queues.queue_for(str(message.body.get("resource", "")))

    def deferred(self, message: Message) -> bool:
        """True for a routed cell task, else what the inner router says."""
        if self._queue(message) is not None:
            return True
        return self.inner is not None and self.inner.deferred(message)

    def dispatch(self, message: Message) -> None:
        """Send a routed cell task, in its envelope, to its activity's queue."""
        routed = self._queue(message)
        if routed is None:
            if self.inner is not None:
                self.inner.dispatch(message)
            return
        name = activity_name(routed)
        target = queue_name(name)
        wrapped = replace(message, body={**message.body, "input": envelope(message)})
        signed = wire_form(wrapped, self.signer, self.payloads)
        try:
            self.queue.send(target, signed)
            return
        except QueueDoesNotExistError:
            pass
        try:
            self.queue.create(target, {TAG_NAME: name, TAG_CREATED: repr(self.clock())})
            self.queue.send(target, signed)
        except Exception as exc:  # e.g. a process not allowed to create queues (the runner)
            if self.bus is None:
                raise
            logger.warning("no cell queue", extra={"queue": routed, "error": repr(exc)})
            cause = (
                f"The cell queue '{routed}' (activity '{name}') does not exist and could not "
                f"be created: start 'stepflow worker --cells ... --queue {routed}' first."
            )
            failed = TaskFailed(str(message.body["task_id"]), StatesErrorName.RUNTIME, cause)
            result_id = f"{message.id}#result"
            self.bus.send(Message(message.execution_arn, result_id, "event", encode_event(failed)))
