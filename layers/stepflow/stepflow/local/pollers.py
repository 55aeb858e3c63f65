"""SQS pollers acting as a Lambda event source mapping with partial batch responses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stepflow.local.invocation import Function, Invocation

SQSHandler = Callable[[dict[str, Any], Any], dict[str, Any]]
"""A Lambda handler for SQS events returning ``{"batchItemFailures": [...]}``."""


class HandlerTimeoutError(Exception):
    """The handler overran its emulated timeout; its batch was abandoned."""


class Pollers:
    """``count`` threads receiving batches of up to ``batch_size`` and calling ``handler``.

    Each call gets its own Lambda context (:class:`~stepflow.local.invocation.Invocation`)
    of ``function``, its time left counting down from the function's deployed timeout,
    as Lambda's does. ``timeout`` (None: never) cuts an invocation off: a handler still
    running after it is abandoned, and its batch is not deleted, so the messages come
    back after the queue's visibility timeout. (A thread cannot be killed: the abandoned
    call runs on, but nothing waits for its answer.) A shorter ``timeout`` does not
    shorten the context: the stepper handler defers its batch's events once less than a
    decision's budget and a margin (15 s) are left, and a stepper begun with less applies
    one execution's events per invocation (as would a deployed stepper given so short a
    timeout: :func:`~stepflow.aws.stepper_lambda.time_left`).
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: SQSHandler,
        count: int = 4,
        *,
        batch_size: int = 10,
        timeout: float | None = None,
        function: Function,
    ) -> None:
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.batch_size, self.timeout = batch_size, timeout
        for seconds in (function.timeout, timeout):  # a bad one fails here, not in each call
            if seconds is not None:
                Invocation.begin(function.name, seconds)
        self.function = function
        self.timeouts = 0
        """How many invocations overran ``timeout`` and were abandoned."""
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"poller-{i}", daemon=True)
            for i in range(max(1, count))
        ]
        self.errors: list[BaseException] = []

    def start(self) -> Pollers:
        """Start polling."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop polling; wait up to ``timeout`` in all for the batches in hand.

        A receive waits at most a second. A poller still in a batch after
        ``timeout`` is left behind (a daemon thread): the messages it has not
        deleted are received again once their visibility timeout ends.
        """
        self.request_stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def request_stop(self) -> None:
        """Ask every poller to stop after its batch in hand, without waiting."""
        self._stop.set()

    @property
    def running(self) -> int:
        """Pollers still alive (after :meth:`stop`: those stuck in a batch)."""
        return sum(thread.is_alive() for thread in self._threads)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # an outage of the endpoint: keep polling, as AWS does
                self.errors.append(exc)
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """Receive one batch, hand it to the handler, delete what succeeded; returns its size."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [_record(message, self.queue_url) for message in messages]
        response = self._invoke({"Records": records})
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        return len(messages)

    def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's response, or an error if it overran the emulated timeout."""
        context = Invocation.begin(self.function.name, self.function.timeout)
        if self.timeout is None:
            return self.handler(event, context) or {}
        answer: list[dict[str, Any]] = []
        call = threading.Thread(
            target=lambda: answer.append(self.handler(event, context) or {}), daemon=True
        )
        call.start()
        call.join(self.timeout)
        if not answer:
            self.timeouts += 1
            raise HandlerTimeoutError(f"the handler ran over {self.timeout} s")
        return answer[0]


def _record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping delivers it."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "dataType": value.get("DataType", "String"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_url,
        "awsRegion": "us-east-1",
    }
