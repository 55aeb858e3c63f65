"""The ``.waitForTaskToken`` integrations: send the request, then wait for SendTask*.

:class:`CallbackInvoker` wraps the stepper's task invoker. For a callback
resource it performs the request (an SQS ``SendMessage`` whose body carries
``$$.Task.Token``, or a Lambda invoke) and reports success *of sending*: the
stepper then records the task as started, and the execution waits until a
worker calls SendTaskSuccess/Failure or the task's timeout fires.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from stepflow.engine.resources import describe
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

SEND_FIELDS = (
    "QueueUrl",
    "DelaySeconds",
    "MessageAttributes",
    "MessageDeduplicationId",
    "MessageGroupId",
)


class MessageSender(Protocol):
    """What the SQS callback needs of an SQS client (a boto3 ``sqs`` client fits)."""

    def send_message(self, **request: Any) -> Any:
        """Send one message (``QueueUrl``, ``MessageBody``...); raise on failure."""
        ...


class CallbackInvoker:
    """A task invoker that performs callback integrations and passes the rest to ``inner``.

    ``sqs`` sends the ``sqs:sendMessage.waitForTaskToken`` messages; the edge that
    wires the runtime injects it (the core never builds an AWS client).
    """

    def __init__(self, inner: TaskInvoker, *, sqs: MessageSender) -> None:
        self.inner = inner
        self._sqs = sqs

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task described by ``body`` (an inline task message body)."""
        resource = str(body.get("resource", ""))
        if not describe(resource).wait_for_token:
            return self.inner(body)
        base = resource.removesuffix(".waitForTaskToken")
        if base.endswith(":sqs:sendMessage"):
            return self._send_message(body.get("input"))
        if base.endswith(":lambda:invoke"):
            sent = self.inner({**body, "resource": base})
            return TaskOutcome(sent.ok, None, sent.error, sent.cause)
        return TaskOutcome.failed(
            "States.Runtime", f"Unsupported callback integration {resource!r}"
        )

    def _send_message(self, request: Any) -> TaskOutcome:
        if not isinstance(request, dict) or not isinstance(request.get("QueueUrl"), str):
            return TaskOutcome.failed("States.Runtime", "sqs:sendMessage needs a QueueUrl")
        if "MessageBody" not in request:
            return TaskOutcome.failed("States.Runtime", "sqs:sendMessage needs a MessageBody")
        message_body = request["MessageBody"]
        if not isinstance(message_body, str):
            message_body = json.dumps(message_body, separators=(",", ":"))
        call = {k: request[k] for k in SEND_FIELDS if k in request}
        try:
            self._sqs.send_message(MessageBody=message_body, **call)
        except Exception as exc:
            response = getattr(exc, "response", None)
            if not isinstance(response, dict):
                raise
            code = response.get("Error", {}).get("Code", "AmazonSQSException")
            return TaskOutcome.failed(f"SQS.{code}", str(exc))
        return TaskOutcome.succeeded(None)
