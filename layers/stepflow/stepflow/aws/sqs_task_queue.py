"""The task-queue port on SQS: one standard queue per task queue or activity, one shared DLQ.

A lease is the received message's visibility timeout: ``ReceiveMessage`` sets
it, ``ChangeMessageVisibility`` extends it on a heartbeat (or sets 0 to release
the task at once) and ``DeleteMessage`` ends it. A message received more than
:data:`MAX_RECEIVE_COUNT` times (it keeps failing, e.g. it cannot be decoded)
moves to the dead-letter queue; ordinary redelivery limits are enforced before
that by the activity service, which fails the task instead.

Every queue created here refuses requests not sent over TLS (a queue policy
denying ``aws:SecureTransport: false``) and dead-letters into ONE queue shared
by all activities: the deployed stack declares it, with an alarm, and passes
its ARN (``ACTIVITY_DLQ_ARN``); without one (``stepflow local``) the first
``create`` makes it, named ``<DLQ prefix>shared``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3

from stepflow.aws.sqs_bus import DLQ_RETENTION_SECONDS, BusUnavailableError
from stepflow.runtime.task_queue import Lease, QueueDoesNotExistError
from stepflow.runtime.wire import encode_wire

QUEUE_PREFIX = "stepflow-tq-"
"""Name prefix of task queues (:data:`~stepflow.aws.topology.TASK_QUEUE_PREFIX`); their DLQs
are ``stepflow-tqdlq-<name>``."""

DLQ_PREFIX = "stepflow-tqdlq-"

SHARED_DLQ_NAME = "shared"
"""The shared DLQ's name after the DLQ prefix, when the deployment does not name one."""

MAX_RECEIVE_COUNT = 10
"""Deliveries before SQS dead-letters a task message (above the service's redelivery limit)."""

MAX_WAIT_SECONDS = 20
"""SQS's longest long poll."""


class SQSTaskQueue:
    """A :class:`~stepflow.runtime.task_queue.TaskQueue` on SQS.

    ``prefix`` separates deployments sharing an account and region; names are
    short enough for SQS's 80-character limit (the service keeps them so).
    """

    def __init__(
        self, *, client: Any = None, prefix: str = QUEUE_PREFIX, dead_letter_arn: str | None = None
    ) -> None:
        self._client: Any = client or boto3.client("sqs")
        self.prefix = prefix
        self.dlq_prefix = prefix.replace("-tq-", "-tqdlq-") if "-tq-" in prefix else DLQ_PREFIX
        self.dead_letter_arn = dead_letter_arn or None
        """The shared DLQ of every task queue (None: made by the first :meth:`create`)."""
        self._urls: dict[str, str] = {}

    def create(self, name: str, tags: Mapping[str, str]) -> None:
        """Create the queue: TLS only, dead-lettering into the shared DLQ.

        SQS returns an existing queue if its attributes match; a queue made by an
        older release (its own DLQ, no policy) gets the current attributes.
        """
        with _errors(name):
            dlq_arn = self._shared_dlq()
            queue_name = self.prefix + name
            redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            attributes = {
                "RedrivePolicy": json.dumps(redrive),
                "Policy": tls_only_policy(dlq_arn.rsplit(":", 1)[0] + ":" + queue_name),
            }
            try:
                url = self._client.create_queue(
                    QueueName=queue_name, Attributes=attributes, tags=dict(tags)
                )["QueueUrl"]
            except Exception as exc:
                if _code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                url = self._client.get_queue_url(QueueName=queue_name)["QueueUrl"]
                self._client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        self._urls[name] = url

    def _shared_dlq(self) -> str:
        """The shared DLQ's ARN; created (TLS only) when the deployment names none."""
        if self.dead_letter_arn is None:
            queue_name = self.dlq_prefix + SHARED_DLQ_NAME
            url = self._client.create_queue(
                QueueName=queue_name,
                Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
            )["QueueUrl"]
            arn = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            self._client.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": tls_only_policy(arn)}
            )
            self.dead_letter_arn = str(arn)
        return self.dead_letter_arn

    def delete(self, name: str) -> None:
        """Delete the queue and its DLQ."""
        for queue_name in (self.prefix + name, self.dlq_prefix + name):
            try:
                url = self._client.get_queue_url(QueueName=queue_name)["QueueUrl"]
                self._client.delete_queue(QueueUrl=url)
            except Exception as exc:
                if not _missing(exc):
                    raise BusUnavailableError(f"deleting {queue_name!r} failed: {exc}") from exc
        self._urls.pop(name, None)

    def tags(self, name: str) -> dict[str, str] | None:
        """The queue's tags, or None if it does not exist."""
        try:
            url = self._url(name)
            with _errors(name):
                tags: dict[str, str] = self._client.list_queue_tags(QueueUrl=url).get("Tags", {})
        except QueueDoesNotExistError:
            return None
        return tags

    def names(self) -> list[str]:
        """Every task queue's name (from ``ListQueues`` by prefix, all pages)."""
        names: list[str] = []
        request: dict[str, Any] = {"QueueNamePrefix": self.prefix, "MaxResults": 1000}
        with _errors(self.prefix):
            while True:
                page = self._client.list_queues(**request)
                for url in page.get("QueueUrls", []):
                    names.append(url.rsplit("/", 1)[-1].removeprefix(self.prefix))
                if not page.get("NextToken"):
                    return sorted(names)
                request["NextToken"] = page["NextToken"]

    def send(self, name: str, body: dict[str, Any], delay_seconds: int = 0) -> None:
        """Send a task message (``DelaySeconds`` clamped to 0-900)."""
        url = self._url(name)
        with _errors(name):
            self._client.send_message(
                QueueUrl=url,
                MessageBody=encode_wire(body),
                DelaySeconds=max(0, min(900, int(delay_seconds))),
            )

    def receive(self, name: str, *, lease_seconds: int, wait_seconds: float = 0) -> Lease | None:
        """One ``ReceiveMessage`` of at most one message, long-polling up to 20 s."""
        url = self._url(name)
        with _errors(name):
            messages = self._client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=1,
                VisibilityTimeout=max(0, min(43_200, int(lease_seconds))),
                WaitTimeSeconds=max(0, min(MAX_WAIT_SECONDS, int(wait_seconds))),
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
        if not messages:
            return None
        message = messages[0]
        try:
            body = json.loads(message["Body"])
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"malformed": message["Body"]}  # the service drops it (or the DLQ takes it)
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return Lease(name, message["ReceiptHandle"], body, count)

    def extend(self, name: str, receipt: str, lease_seconds: int) -> None:
        """``ChangeMessageVisibility``; an expired receipt is ignored."""
        url = self._url(name)
        try:
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=int(lease_seconds)
            )
        except Exception as exc:
            if not _stale(exc):
                raise BusUnavailableError(f"extending a lease on {name!r} failed: {exc}") from exc

    def ack(self, name: str, receipt: str) -> None:
        """``DeleteMessage``; an expired receipt is ignored."""
        url = self._url(name)
        try:
            self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)
        except Exception as exc:
            if not _stale(exc):
                raise BusUnavailableError(f"deleting a task on {name!r} failed: {exc}") from exc

    def _url(self, name: str) -> str:
        url = self._urls.get(name)
        if url is None:
            try:
                url = str(self._client.get_queue_url(QueueName=self.prefix + name)["QueueUrl"])
            except Exception as exc:
                if _missing(exc):
                    raise QueueDoesNotExistError(f"no task queue named {name!r}") from exc
                raise BusUnavailableError(f"looking up {name!r} failed: {exc}") from exc
            self._urls[name] = url
        return url


def tls_only_policy(queue_arn: str) -> str:
    """A queue policy that denies every request not sent over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        separators=(",", ":"),
    )


@contextlib.contextmanager
def _errors(name: str) -> Iterator[None]:
    """Turn botocore failures into BusUnavailableError / QueueDoesNotExistError."""
    try:
        yield
    except Exception as exc:
        if not _is_boto_error(exc):
            raise
        if _missing(exc):
            raise QueueDoesNotExistError(f"no task queue named {name!r}") from exc
        raise BusUnavailableError(f"SQS failed on task queue {name!r}: {exc}") from exc


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _missing(exc: BaseException) -> bool:
    return _code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _stale(exc: BaseException) -> bool:
    return _code(exc) in ("ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight")


def _is_boto_error(exc: BaseException) -> bool:
    return any(kind.__module__.startswith("botocore") for kind in type(exc).__mro__[:-1])
