"""Routing a Task on an activity to the activity's task queue (see Stepper's ``router``)."""

from __future__ import annotations

import logging

from stepflow.activities.names import is_cell_activity, queue_name
from stepflow.engine import TaskFailed
from stepflow.engine.resources import describe
from stepflow.runtime.messages import Message, encode_event
from stepflow.runtime.offload import wire_form
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.ports import MessageBus
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.targets import OWN_TARGET_CAUSE
from stepflow.runtime.task_queue import QueueDoesNotExistError, TaskQueue

logger = logging.getLogger(__name__)


class ActivityRouter:
    """A :class:`~stepflow.runtime.task_queue.TaskRouter`: activity tasks go to their queue.

    A task on an activity that does not exist fails at once with
    ``States.Runtime`` (reported through ``bus``) instead of waiting forever.
    Each task message is signed by ``signer`` (the activity service verifies it
    when it hands the task out); one over SQS's limit is stored in ``payloads`` (default:
    the bus's) and its queue carries a signed reference (:mod:`stepflow.runtime.offload`).
    """

    def __init__(
        self,
        queue: TaskQueue,
        bus: MessageBus,
        *,
        signer: MessageSigner,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.queue, self.bus, self.signer = queue, bus, signer
        self.payloads = payloads if payloads is not None else getattr(bus, "payloads", None)

    def deferred(self, message: Message) -> bool:
        """True for a task on an activity ARN."""
        return describe(str(message.body.get("resource", ""))).kind == "activity"

    def dispatch(self, message: Message) -> None:
        """Send the task message to its activity's queue."""
        resource = str(message.body["resource"])
        if is_cell_activity(resource):
            logger.warning("task on a cell queue's activity refused", extra={"resource": resource})
            self._fail(message, f"{OWN_TARGET_CAUSE}: activity '{resource}' is a cell queue")
            return
        name = queue_name(resource.split(":", 6)[6])
        try:
            self.queue.send(name, wire_form(message, self.signer, self.payloads))
        except QueueDoesNotExistError:
            logger.warning("task on a missing activity", extra={"resource": resource})
            self._fail(message, f"Activity Does Not Exist: '{resource}'")

    def _fail(self, message: Message, cause: str) -> None:
        """Fail the task of ``message`` with ``States.Runtime`` (through the bus)."""
        failed = TaskFailed(str(message.body["task_id"]), "States.Runtime", cause)
        result_id = f"{message.id}#result"
        self.bus.send(Message(message.execution_arn, result_id, "event", encode_event(failed)))
