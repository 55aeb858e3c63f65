"""When a failed record of the transition queue comes back: soon if its error is transient.

A record the stepper could not handle is listed in ``batchItemFailures`` and comes back
after the queue's visibility timeout (180 s, sized for a crashed invocation), reaching
the dead-letter queue after ``MAX_RECEIVE_COUNT`` receives. An error that another try
soon is likely to clear — DynamoDB throttling or a 5xx (:class:`LogUnavailableError`),
SQS refusing a send (:class:`BusUnavailableError`), a head's conditional writes lost
``max_conflicts`` times in a row (a hot map run's head) — sets the record's visibility
to a short back-off instead (:data:`TRANSIENT_BACKOFF`, by receive). The last receives
keep the full timeout, so a long outage still spans about 4 minutes before the DLQ
(receives at about 0, 3, 14, 45 and 226 s, a dead letter 180 s after the last). Any other
error (a malformed body, a held task lease, a bug) keeps the timeout: it reaches the DLQ
after its receives, never loops for ever.

Only the transition queue's stepper uses this: a task runner's failure usually means a
lease still held, which a quick return cannot take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stepflow.aws.log_table import LogUnavailableError
from stepflow.aws.sqs_bus import BusUnavailableError
from stepflow.runtime.ports import ConflictError

TRANSIENT_BACKOFF = (2, 10, 30)
"""Seconds before a record that failed transiently comes back, after its 1st, 2nd, 3rd
receive; after later receives the queue's visibility timeout stands (the DLQ is near)."""

TRANSIENT = (LogUnavailableError, BusUnavailableError, ConflictError)
"""Errors another try soon is likely to clear (an outage, throttling, a hot head)."""

# Queue URLs by (endpoint, event source ARN), kept across invocations of a warm Lambda:
# a queue's URL does not change, and an outage is when a GetQueueUrl per invocation
# costs most. Bounded: a Lambda has a few event sources, a hostile stream no more.
_QUEUE_URLS: dict[tuple[str, str], str] = {}
_MAX_QUEUE_URLS = 64


def backoff(error: Exception, receive_count: int) -> int | None:
    """Seconds before the record comes back, or None to keep the visibility timeout."""
    if not isinstance(error, TRANSIENT) or receive_count < 1:
        return None
    if receive_count > len(TRANSIENT_BACKOFF):
        return None
    return TRANSIENT_BACKOFF[receive_count - 1]


def hasten(
    client: Any, records: Sequence[Mapping[str, Any]], failures: Mapping[str, Exception]
) -> int:
    """Set the visibility of each failed record whose error is transient; how many were.

    ``records`` are the Lambda event's SQS records, ``failures`` the errors by message
    id. A visibility change that fails is ignored: the visibility timeout stands.
    """
    hastened = 0
    for record in records:
        error = failures.get(str(record.get("messageId")))
        attributes = record.get("attributes") or {}
        try:
            count = int(attributes.get("ApproximateReceiveCount") or 1)
        except (TypeError, ValueError):
            count = 1
        seconds = backoff(error, count) if error is not None else None
        if seconds is None:
            continue
        try:
            source = str(record.get("eventSourceARN") or "")
            client.change_message_visibility(
                QueueUrl=_queue_url(client, source),
                ReceiptHandle=str(record.get("receiptHandle")),
                VisibilityTimeout=seconds,
            )
        except Exception:  # the visibility timeout stands: a later retry, not a lost one
            continue
        hastened += 1
    return hastened


def _queue_url(client: Any, source: str) -> str:
    """The queue URL of an event source ARN, asked of SQS once per endpoint and queue.

    ``stepflow local`` passes the URL itself.
    """
    if not source.startswith("arn:"):
        return source
    key = (str(getattr(getattr(client, "meta", None), "endpoint_url", "")), source)
    url = _QUEUE_URLS.get(key)
    if url is None:
        parts = source.split(":")
        response = client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])
        url = str(response["QueueUrl"])
        if len(_QUEUE_URLS) >= _MAX_QUEUE_URLS:
            _QUEUE_URLS.clear()
        _QUEUE_URLS[key] = url
    return url
