"""The message bus on a standard SQS queue.

Every :class:`~stepflow.runtime.Message` is one SQS message: the body is the
message's signed JSON (:meth:`MessageSigner.sign
<stepflow.runtime.signing.MessageSigner.sign>`: the message, its key id and its
HMAC; see :mod:`stepflow.runtime.signing`), with the execution ARN and the
message id repeated as message attributes (for filtering, tracing and DLQ
triage without parsing the body). Delays use ``DelaySeconds`` (0-900 s; the
stepper caps longer waits and re-arms them through ``not_before``).

A body over SQS's 256 KiB is stored in the payload store first and the queue
carries a signed reference to it (:mod:`stepflow.runtime.offload`): both ends of
this bus encode and decode through that module, so no producer has to know.

The queue is a *standard* queue: delivery is at least once and unordered, and
the stepper is an idempotent consumer (see :mod:`stepflow.runtime.stepper`),
so no FIFO deduplication is needed. A queue made by :func:`create_queues` has
a dead-letter queue that receives a message after ``maxReceiveCount``
failed deliveries.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import boto3

from stepflow.runtime.messages import Message
from stepflow.runtime.offload import Body, decode_body, encode_body
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.wire import attributes, encode_wire

logger = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 900
"""SQS's longest ``DelaySeconds``."""

BATCH_ENTRIES = 10
"""SQS's most messages in one SendMessageBatch."""

BATCH_BYTES = 200_000
"""The most body bytes :meth:`SQSBus.send_batch` puts in one request (SQS: 256 KiB in all)."""

MAX_RECEIVE_COUNT = 5
"""Deliveries of one message before SQS moves it to the dead-letter queue."""

STEPPER_FUNCTION_TIMEOUT = 30
"""The stepper Lambda's timeout (seconds) the queue's visibility timeout is sized for.

The stepper only decides, commits and sends (tasks run on the runner; a batch of
ten takes well under a second), but one decision may evaluate for up to
``decision_budget_seconds`` (10 s by default): the handler starts another
execution only while that and a margin remain (see
:func:`stepflow.aws.stepper_lambda.time_left`) and sends the rest again, so a
slow execution never makes the invocation time out. A crashed stepper's
messages come back within 6 x 30 = 180 s, the six times AWS advises for an
event source mapping."""

RUNNER_FUNCTION_TIMEOUT = 900
"""The task runner Lambda's timeout: Lambda's maximum, the longest a Lambda task may run."""

RUNNER_BATCH_SIZE = 10
"""Task messages per runner invocation: they run side by side, each sending its result as it
ends (so a slow task holds no other's result), for one receive, one delete and one Lambda
request per ten tasks of a Map instead of ten of each. Since issue 18's round 3 a message
may be a group of one commit's tasks (up to ten, runtime/task_groups.py): an invocation
runs up to ``runner_commit.MAX_TASK_THREADS`` (32) of its up to 100 tasks side by side."""

DLQ_RETENTION_SECONDS = 14 * 24 * 3600
"""How long a dead letter is kept: SQS's maximum, to leave time for triage."""


class BusUnavailableError(Exception):
    """SQS refused or failed a request (throttling, outage, permissions, bad queue)."""


class SQSBus:
    """A :class:`~stepflow.runtime.ports.MessageBus` on one SQS queue; ``signer`` signs each.

    ``payloads`` stores the bodies over SQS's limit (None: such a message is refused,
    :class:`~stepflow.runtime.wire.MessageTooLargeError`); ``offloaded`` counts them.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        signer: MessageSigner,
        client: Any = None,
        payloads: PayloadStore | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.signer = signer
        self.payloads = payloads
        self.offloaded = 0
        self._lock = threading.Lock()
        self._client: Any = client or boto3.client("sqs")

    @property
    def client(self) -> Any:
        """The SQS client the bus sends with (the stepper Lambda sets visibilities with it)."""
        return self._client

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        """Send ``message``, deliverable after ``delay_seconds`` (clamped to 0-900).

        Raises :class:`BusUnavailableError` if SQS does not accept it,
        :class:`~stepflow.runtime.wire.MessageTooLargeError` if it is over SQS's limit
        and cannot be offloaded.
        """
        delay = max(0, min(MAX_DELAY_SECONDS, int(delay_seconds)))
        body = self._encode(message)
        try:
            self._client.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body.text,
                DelaySeconds=delay,
                MessageAttributes=_attributes(message),
            )
        except Exception as exc:
            if _is_boto_error(exc):
                raise BusUnavailableError(f"SQS SendMessage failed: {exc}") from exc
            raise

    def send_batch(self, messages: Sequence[tuple[Message, int]]) -> None:
        """Send each ``(message, delay_seconds)``, up to ten a request (SendMessageBatch).

        A batch also stays under :data:`BATCH_BYTES` of bodies. Raises
        :class:`BusUnavailableError` if SQS does not accept them all (those it
        accepted are delivered: sending again delivers them twice, which a
        stepper ignores).
        """
        entries: list[dict[str, Any]] = []
        size = 0
        for i, (message, delay_seconds) in enumerate(messages):
            body = self._encode(message)
            length = body.size
            if entries and (len(entries) == BATCH_ENTRIES or size + length > BATCH_BYTES):
                self._send_entries(entries)
                entries, size = [], 0
            entries.append(
                {
                    "Id": str(i),
                    "MessageBody": body.text,
                    "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
                    "MessageAttributes": _attributes(message),
                }
            )
            size += length
        if entries:
            self._send_entries(entries)

    def _encode(self, message: Message) -> Body:
        """``message``'s body; over the limit, stored first and sent as a reference."""
        body = encode_body(message, self.signer, self.payloads)
        if body.offloaded:
            with self._lock:
                self.offloaded += 1
            logger.info("message %s offloaded to the payload store", message.id)
        return body

    def _send_entries(self, entries: list[dict[str, Any]]) -> None:
        try:
            failed = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries).get(
                "Failed"
            )
        except Exception as exc:
            if _is_boto_error(exc):
                raise BusUnavailableError(f"SQS SendMessageBatch failed: {exc}") from exc
            raise
        if failed:
            codes = sorted({str(f.get("Code")) for f in failed})
            raise BusUnavailableError(f"SQS SendMessageBatch refused {len(failed)}: {codes}")


def encode_message(message: Message, signer: MessageSigner) -> str:
    """The signed JSON of ``message``, compact (:func:`encode_wire`), never offloaded."""
    return encode_wire(signer.sign(message))


def decode_message(
    body: str, signer: MessageSigner, payloads: PayloadStore | None = None
) -> Message:
    """The message in an SQS body written by :class:`SQSBus` with ``signer``'s keys.

    A reference to a stored body is resolved through ``payloads``
    (:func:`~stepflow.runtime.offload.decode_body`). Raises
    :class:`~stepflow.runtime.signing.ForgedMessageError` (a ``ValueError`` naming the
    reason only) if the body is not such a message: not JSON, not a message, unsigned,
    signed with another key or altered, or its stored body swapped; the payload store's
    errors if a stored body cannot be read or is not the signed length and digest
    (``PayloadCorruptError``): the record is retried.
    """
    return decode_body(body, signer, payloads)


def create_queues(
    client: Any,
    name: str,
    *,
    function_timeout: int = STEPPER_FUNCTION_TIMEOUT,
    visibility_timeout: int | None = None,
) -> tuple[str, str]:
    """Create the standard queue ``name`` and its dead-letter queue ``name-dlq``.

    The queue's visibility timeout is six times ``function_timeout`` (AWS's
    guidance for Lambda event sources, leaving room for retries within a
    batch); after :data:`MAX_RECEIVE_COUNT` failed deliveries a message moves
    to the DLQ. ``visibility_timeout`` overrides the six times (the tasks queue's
    is its runner's timeout plus a minute: a batch of one). Idempotent (SQS
    returns the existing queue if the attributes match). Returns ``(queue_url, dlq_url)``.
    """
    try:
        dlq_url: str = client.create_queue(
            QueueName=f"{name}-dlq",
            Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
        )["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
        queue_url: str = client.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(min(43_200, visibility_timeout or 6 * function_timeout)),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
    except Exception as exc:
        if _is_boto_error(exc):
            raise BusUnavailableError(f"creating the queues {name!r} failed: {exc}") from exc
        raise
    return queue_url, dlq_url


def _attributes(message: Message) -> dict[str, dict[str, str]]:
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in attributes(message).items()
    }


def _is_boto_error(exc: BaseException) -> bool:
    """True for botocore's exceptions (client errors, connection and credential failures)."""
    return any(kind.__module__.startswith("botocore") for kind in type(exc).__mro__[:-1])
