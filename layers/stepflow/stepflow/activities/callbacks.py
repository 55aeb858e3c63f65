"""The ``.waitForTaskToken`` integrations: send the request, then wait for SendTask*.

:class:`CallbackInvoker` wraps the stepper's task invoker. For a callback
resource it performs the request (an SQS ``SendMessage`` whose body carries
``$$.Task.Token``, or a Lambda invoke) and reports success *of sending*: the
stepper then records the task as started, and the execution waits until a
worker calls SendTaskSuccess/Failure or the task's timeout fires.

The SQS client comes from the task clients (the task's role); a role that
cannot be used fails the task.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from stepflow.engine.resources import describe
from stepflow.runtime.clients import FixedClients, TaskCallRefused, TaskClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

SEND_FIELDS = (
    "QueueUrl",
    "DelaySeconds",
    "MessageAttributes",
    "MessageDeduplicationId",
    "MessageGroupId",
)


_NOT_GIVEN = object()


class MessageSender(Protocol):
    """What the SQS callback needs of an SQS client (a boto3 ``sqs`` client fits)."""

    def send_message(self, **request: Any) -> Any:
        """Send one message (``QueueUrl``, ``MessageBody``...); raise on failure."""
        ...


class CallbackInvoker:
    """A task invoker that performs callback integrations and passes the rest to ``inner``.

    ``clients`` hands out the SQS client of each task's role
    (:class:`~stepflow.aws.role_clients.RoleClients` in the deployed stack);
    ``sqs``, one sender used whatever the role, is for tests. The edge that
    wires the runtime injects one of them (the core never builds an AWS client).
    """

    def __init__(
        self,
        inner: TaskInvoker,
        *,
        sqs: MessageSender | object | None = _NOT_GIVEN,
        clients: TaskClients | None = None,
    ) -> None:
        if clients is None:
            if sqs is _NOT_GIVEN:
                raise TypeError("CallbackInvoker needs the task clients (or an SQS sender)")
            clients = FixedClients(sqs=sqs)
        self.inner = inner
        self._clients = clients

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task described by ``body`` (an inline task message body)."""
        resource = str(body.get("resource", ""))
        if not describe(resource).wait_for_token:
            return self.inner(body)
        base = resource.removesuffix(".waitForTaskToken")
        if base.endswith(":sqs:sendMessage"):
            return self._send_message(body, body.get("input"))
        if base.endswith(":lambda:invoke"):
            sent = self.inner({**body, "resource": base})
            return TaskOutcome(sent.ok, None, sent.error, sent.cause)
        return TaskOutcome.failed(
            "States.Runtime", f"Unsupported callback integration {resource!r}"
        )

    def _send_message(self, body: dict[str, Any], request: Any) -> TaskOutcome:
        if not isinstance(request, dict) or not isinstance(request.get("QueueUrl"), str):
            return TaskOutcome.failed("States.Runtime", "sqs:sendMessage needs a QueueUrl")
        if "MessageBody" not in request:
            return TaskOutcome.failed("States.Runtime", "sqs:sendMessage needs a MessageBody")
        message_body = request["MessageBody"]
        if not isinstance(message_body, str):
            message_body = json.dumps(message_body, separators=(",", ":"))
        call = {k: request[k] for k in SEND_FIELDS if k in request}
        try:
            sqs = self._clients.for_task(
                "sqs",
                str(body.get("role_arn") or ""),
                _queue_region(request["QueueUrl"]),
                execution=str(body.get("execution_arn") or ""),
            )
        except TaskCallRefused as refused:
            return refused.outcome()
        try:
            sqs.send_message(MessageBody=message_body, **call)
        except Exception as exc:
            response = getattr(exc, "response", None)
            if not isinstance(response, dict):
                raise
            code = response.get("Error", {}).get("Code", "AmazonSQSException")
            return TaskOutcome.failed(f"SQS.{code}", str(exc))
        return TaskOutcome.succeeded(None)


def _queue_region(queue_url: str) -> str | None:
    """The region of an ``https://sqs.<region>.amazonaws.com/...`` URL (None: the default)."""
    host = queue_url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return None
