"""The built-in effects: an HTTP request, and AWS calls through StepFlow's integrations.

Pure models (no boto3, no httpx): what a cell requests and what it gets back.
Their handlers live at the edge (:mod:`stepflow.integrations.effect_handlers`),
registered by ``builtin_handlers`` under the user's own. Each effect has a
``kind`` literal, so that it can stand in a cell's discriminated effect union
next to the cell's own effects::

    Effects = Annotated[ChargeCard | HttpRequest | DynamoPutItem, Field(discriminator="kind")]

The AWS effects are the Task integrations of the same name, performed with the
task's role (the state machine's): :meth:`AwsEffect.resource` and
:meth:`AwsEffect.task_parameters` are the Task a state would run, and the result is
that integration's output (see docs/cells-effects.md for each target's
idempotency).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from stepflow.cells.effects import Effect

MAX_RESPONSE_BYTES = 256 * 1024
"""The most of an HTTP response body an :class:`HttpRequest` may ask to keep.

The response is recorded in the coordination log (one DynamoDB item, 400 KB at
most with its other attributes): a larger body fails the effect
(``StepFlow.Effect.ResponseTooLarge``) instead of the record's write.
"""

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpResponse(BaseModel):
    """An HTTP response as recorded: status, headers (lower-case names), body text, JSON.

    ``body`` is the body decoded as UTF-8 (an invalid byte becomes U+FFFD);
    ``json_body`` is the body parsed when the response says it is JSON
    (``application/json`` or ``+json``), else None.
    """

    model_config = ConfigDict(frozen=True)

    status: int
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    json_body: JsonValue = None


class HttpRequest(Effect[HttpResponse]):
    """Send one HTTP request (httpx) with an ``Idempotency-Key`` header.

    ``json_body`` is sent as JSON, or ``body`` as text (not both). ``timeout``
    (seconds) is capped by the handler policy's. A status of 400 or more fails
    the effect with ``StepFlow.Effect.Http.<status>`` (408, 429 and 5xx are
    retried) unless ``fail_on_status`` is False. A body larger than
    ``max_response_bytes`` fails it with ``StepFlow.Effect.ResponseTooLarge``.
    """

    kind: Literal["http"] = "http"
    method: HttpMethod = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: JsonValue = None
    body: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    fail_on_status: bool = True
    max_response_bytes: int = Field(default=MAX_RESPONSE_BYTES, gt=0, le=MAX_RESPONSE_BYTES)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    def breaker_endpoint(self) -> str:
        """``scheme://host:port``: the circuit breaker this request goes through."""
        parts = urlsplit(self.url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # not a port: the request fails when sent, under this breaker
            return f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}"
        host = (parts.hostname or "").lower()
        return (
            f"{parts.scheme}://[{host}]:{port}"
            if ":" in host
            else f"{parts.scheme}://{host}:{port}"
        )

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json_body or body, not both")
        return self


class AwsResult(BaseModel):
    """An AWS response read by its members' names (AWS's or the field names); extras ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class AwsEffect:
    """The side of an AWS effect its handler reads: the Task that performs it.

    Mixed into an ``Effect[Result]``: ``task_resource`` is the Task resource and
    :meth:`task_parameters` its parameters. ``token`` is the request's
    idempotency token, which a target that takes a deduplication id gets (an
    SQS or SNS FIFO message).
    """

    task_resource: ClassVar[str] = ""

    def resource(self) -> str:
        """The Task resource that performs this effect."""
        return self.task_resource

    def target(self) -> str:
        """The ARN or URL of the resource called, when it names one (its region)."""
        return ""

    def breaker_endpoint(self) -> str:
        """``aws:<service>:<region>``: the circuit breaker this call goes through.

        The region is the one the target names (empty: the clients' own).
        """
        resource = self.resource().removeprefix("arn:aws:states:::").removeprefix("aws-sdk:")
        return f"aws:{resource.split(':', 1)[0]}:{region_of(self.target())}"

    def repeatable(self, token: str) -> bool:
        """Whether sending the request again after an unclear failure cannot do it twice.

        True when the target deduplicates it (a FIFO deduplication id, an idempotent
        put, an API's own client token); a send that is not (a standard SQS queue or
        SNS topic, EventBridge) is retried only after throttling, which says the
        request was refused, not after an error that may follow its success.
        """
        return True

    def task_parameters(self, token: str) -> dict[str, Any]:
        """The Task's parameters (the API request, in Step Functions' spelling)."""
        raise NotImplementedError


class DynamoPutItemResult(AwsResult):
    """DynamoDB's PutItem response (``Attributes`` with ``ReturnValues=ALL_OLD``)."""

    attributes: dict[str, Any] | None = Field(default=None, alias="Attributes")
    consumed_capacity: dict[str, Any] | None = Field(default=None, alias="ConsumedCapacity")


class DynamoPutItem(Effect[DynamoPutItemResult], AwsEffect):
    """``dynamodb:putItem``: write one item (attribute values in DynamoDB JSON).

    DynamoDB takes no idempotency key: a put of the same item is idempotent by
    itself; make a conditional write (``condition_expression``) idempotent with
    a condition the first write satisfies and a repeat does not.
    """

    task_resource: ClassVar[str] = "arn:aws:states:::dynamodb:putItem"

    kind: Literal["dynamodb-put-item"] = "dynamodb-put-item"
    table: str
    item: dict[str, Any]
    condition_expression: str | None = None
    expression_attribute_names: dict[str, str] | None = None
    expression_attribute_values: dict[str, Any] | None = None
    return_values: Literal["NONE", "ALL_OLD"] | None = None

    def target(self) -> str:
        """The table (an ARN names its region)."""
        return self.table

    def task_parameters(self, token: str) -> dict[str, Any]:
        """PutItem's request."""
        return _without_none(
            {
                "TableName": self.table,
                "Item": self.item,
                "ConditionExpression": self.condition_expression,
                "ExpressionAttributeNames": self.expression_attribute_names,
                "ExpressionAttributeValues": self.expression_attribute_values,
                "ReturnValues": self.return_values,
            }
        )


class SnsPublishResult(AwsResult):
    """SNS's Publish response."""

    message_id: str = Field(alias="MessageId")
    sequence_number: str | None = Field(default=None, alias="SequenceNumber")


class SnsPublish(Effect[SnsPublishResult], AwsEffect):
    """``sns:publish``: publish one message (a non-string ``message`` is sent as JSON text).

    To a FIFO topic (``.fifo``), the idempotency token is the message's
    ``MessageDeduplicationId`` unless one is given: SNS drops a repeat within
    its five-minute deduplication window. A standard topic takes no key.
    """

    task_resource: ClassVar[str] = "arn:aws:states:::sns:publish"

    kind: Literal["sns-publish"] = "sns-publish"
    topic_arn: str
    message: JsonValue
    subject: str | None = None
    message_attributes: dict[str, Any] | None = None
    message_group_id: str | None = None
    message_deduplication_id: str | None = None

    def target(self) -> str:
        """The topic."""
        return self.topic_arn

    def repeatable(self, token: str) -> bool:
        """Only with a deduplication id (a FIFO topic)."""
        return "MessageDeduplicationId" in self.task_parameters(token)

    def task_parameters(self, token: str) -> dict[str, Any]:
        """Publish's request."""
        dedup = self.message_deduplication_id
        if dedup is None and self.topic_arn.endswith(".fifo"):
            dedup = token
        return _without_none(
            {
                "TopicArn": self.topic_arn,
                "Message": self.message,
                "Subject": self.subject,
                "MessageAttributes": self.message_attributes,
                "MessageGroupId": self.message_group_id,
                "MessageDeduplicationId": dedup,
            }
        )


class SqsSendMessageResult(AwsResult):
    """SQS's SendMessage response."""

    message_id: str = Field(alias="MessageId")
    md5_of_message_body: str | None = Field(default=None, alias="MD5OfMessageBody")
    sequence_number: str | None = Field(default=None, alias="SequenceNumber")


class SqsSendMessage(Effect[SqsSendMessageResult], AwsEffect):
    """``sqs:sendMessage``: send one message (a non-string body is sent as JSON text).

    To a FIFO queue (``.fifo``), the idempotency token is the message's
    ``MessageDeduplicationId`` unless one is given: SQS drops a repeat within
    its five-minute deduplication window. A standard queue takes no key (its
    consumers must deduplicate, e.g. on a message attribute).
    """

    task_resource: ClassVar[str] = "arn:aws:states:::sqs:sendMessage"

    kind: Literal["sqs-send-message"] = "sqs-send-message"
    queue_url: str
    message_body: JsonValue
    delay_seconds: int | None = Field(default=None, ge=0, le=900)
    message_attributes: dict[str, Any] | None = None
    message_group_id: str | None = None
    message_deduplication_id: str | None = None

    def target(self) -> str:
        """The queue."""
        return self.queue_url

    def repeatable(self, token: str) -> bool:
        """Only with a deduplication id (a FIFO queue)."""
        return "MessageDeduplicationId" in self.task_parameters(token)

    def task_parameters(self, token: str) -> dict[str, Any]:
        """SendMessage's request."""
        dedup = self.message_deduplication_id
        if dedup is None and self.queue_url.rstrip("/").endswith(".fifo"):
            dedup = token
        return _without_none(
            {
                "QueueUrl": self.queue_url,
                "MessageBody": self.message_body,
                "DelaySeconds": self.delay_seconds,
                "MessageAttributes": self.message_attributes,
                "MessageGroupId": self.message_group_id,
                "MessageDeduplicationId": dedup,
            }
        )


class EventEntry(BaseModel):
    """One EventBridge event (a non-string ``detail`` is sent as JSON text)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    detail_type: str
    detail: JsonValue
    event_bus_name: str | None = None
    resources: list[str] | None = None


class EventBridgePutEventsResult(AwsResult):
    """EventBridge's PutEvents response (a failed entry fails the effect instead)."""

    entries: list[dict[str, Any]] = Field(default_factory=list, alias="Entries")
    failed_entry_count: int = Field(default=0, alias="FailedEntryCount")


class EventBridgePutEvents(Effect[EventBridgePutEventsResult], AwsEffect):
    """``events:putEvents``: send up to 10 events. EventBridge takes no idempotency key.

    A request retried after a lost answer may deliver its events twice, and
    StepFlow adds nothing to the events (a field it added could change which
    rules match): consumers deduplicate on an id the cell puts in ``detail``.
    As the Task integration does, a failed entry fails the effect
    (``EventBridge.FailedEntry``).
    """

    task_resource: ClassVar[str] = "arn:aws:states:::events:putEvents"

    kind: Literal["eventbridge-put-events"] = "eventbridge-put-events"
    entries: list[EventEntry] = Field(min_length=1, max_length=10)

    def target(self) -> str:
        """The first entry's bus (an ARN names its region)."""
        return self.entries[0].event_bus_name or ""

    def repeatable(self, token: str) -> bool:
        """Never: EventBridge takes no idempotency key."""
        return False

    def task_parameters(self, token: str) -> dict[str, Any]:
        """PutEvents' request."""
        return {
            "Entries": [
                _without_none(
                    {
                        "Source": entry.source,
                        "DetailType": entry.detail_type,
                        "Detail": entry.detail,
                        "EventBusName": entry.event_bus_name,
                        "Resources": entry.resources,
                    }
                )
                for entry in self.entries
            ]
        }


class AwsCall(Effect[dict[str, Any]], AwsEffect):
    """Any AWS API call: the ``aws-sdk:<service>:<action>`` integration.

    ``service`` as Step Functions names it (``dynamodb``, ``s3``), ``action`` in
    camelCase (``updateItem``), ``parameters`` the API's members (``TableName``).
    The result is the integration's output; no idempotency key is passed (use
    the API's own, e.g. ``ClientToken``, in the parameters).
    """

    kind: Literal["aws-call"] = "aws-call"
    service: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    action: str = Field(pattern=r"^[a-z][A-Za-z0-9]*$")
    parameters: dict[str, Any] = Field(default_factory=dict)

    def resource(self) -> str:
        """The Task resource of this call."""
        return f"arn:aws:states:::aws-sdk:{self.service}:{self.action}"

    def task_parameters(self, token: str) -> dict[str, Any]:
        """The API's request, as given."""
        return dict(self.parameters)


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def region_of(target: str) -> str:
    """The AWS region an ARN or an endpoint URL names; ``""`` when it names none.

    ``arn:aws:sns:us-east-1:...`` or ``https://sqs.eu-west-1.amazonaws.com/...``.
    """
    if target.startswith("arn:"):
        parts = target.split(":")
        return parts[3] if len(parts) > 3 and _REGION.match(parts[3]) else ""
    host = urlsplit(target).hostname if "://" in target else None
    return next((part for part in (host or "").split(".") if _REGION.match(part)), "")


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


BUILTIN_EFFECTS: tuple[type[Effect[Any]], ...] = (
    HttpRequest,
    DynamoPutItem,
    SnsPublish,
    SqsSendMessage,
    EventBridgePutEvents,
    AwsCall,
)
"""Every built-in effect type."""
