"""StepFlow's own resources are never task targets.

A workflow that any API caller can create must not reach StepFlow's own
queues, table, bucket or functions through a Task: a message sent to the
transition queue, or an invoke of the stepper, would bypass every check the
API makes. :class:`OwnTargetGuard` wraps the task invoker (outermost, so every
integration passes through it): it reads the target of each task (a Lambda
function name or ARN, a queue URL or ARN, a table or bucket name) and fails the
task with ``States.Runtime`` (never retried, never caught) without calling AWS
when the target is one of :class:`OwnResources`.

Pure: no AWS client, no clock. The edge builds :class:`OwnResources` from the
deployment's settings (:func:`stepflow.aws.own_resources.own_resources`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

OWN_TARGET_CAUSE = "target is a StepFlow resource"
"""The start of the cause of a refused task (followed by the kind and name of the target)."""

# The request field naming the target, per service, for the optimised integrations
# (``arn:aws:states:::<service>:<action>``) and the SDK ones (``...:::aws-sdk:<service>:...``).
_TARGET_FIELDS: dict[str, tuple[str, str]] = {
    "lambda": ("function", "FunctionName"),
    "sqs": ("queue", "QueueUrl"),
    "dynamodb": ("table", "TableName"),
    "s3": ("bucket", "Bucket"),
}


@dataclass(frozen=True, slots=True)
class OwnResources:
    """The names of StepFlow's own resources in one deployment.

    ``queue_prefixes`` covers the activity queues and their DLQs, created at run time.
    """

    functions: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    queue_prefixes: tuple[str, ...] = ()
    tables: frozenset[str] = frozenset()
    buckets: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        functions: Iterable[str] = (),
        queues: Iterable[str] = (),
        queue_prefixes: Iterable[str] = (),
        tables: Iterable[str] = (),
        buckets: Iterable[str] = (),
    ) -> OwnResources:
        """Normalise references (ARNs, URLs, qualified names) to bare names; drop blanks."""
        return cls(
            functions=frozenset(n for n in map(function_name, functions) if n),
            queues=frozenset(n for n in map(queue_name, queues) if n),
            queue_prefixes=tuple(p for p in queue_prefixes if p),
            tables=frozenset(n for n in map(table_name, tables) if n),
            buckets=frozenset(n for n in map(bucket_name, buckets) if n),
        )

    def owns(self, kind: str, reference: str) -> bool:
        """Whether ``reference`` (a name, ARN or URL of a ``kind`` resource) is StepFlow's."""
        if kind == "function":
            return function_name(reference) in self.functions
        if kind == "queue":
            name = queue_name(reference)
            return name in self.queues or any(name.startswith(p) for p in self.queue_prefixes)
        if kind == "table":
            return table_name(reference) in self.tables
        if kind == "bucket":
            return bucket_name(reference) in self.buckets
        return False


def function_name(reference: str) -> str:
    """The function name of a Lambda reference.

    A name (``my-fn``, ``my-fn:alias``), a partial ARN (``123456789012:function:my-fn``)
    or an ARN (``arn:aws:lambda:us-east-1:123456789012:function:my-fn:PROD``).
    """
    parts = reference.strip().split(":")
    if "function" in parts[:-1]:
        return parts[parts.index("function") + 1]
    return parts[0]


def queue_name(reference: str) -> str:
    """The queue name of an SQS queue URL or ARN (``arn:aws:sqs:REGION:ACCOUNT:NAME``)."""
    text = reference.strip()
    if "://" in text:
        segments = [s for s in unquote(urlparse(text).path).split("/") if s]
        return segments[-1] if segments else ""
    return text.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def table_name(reference: str) -> str:
    """The table name of a DynamoDB table name or ARN (``...:table/NAME[/index/...]``)."""
    text = reference.strip()
    if ":table/" in text:
        return text.split(":table/", 1)[1].split("/", 1)[0]
    return text


def bucket_name(reference: str) -> str:
    """The bucket name of an S3 bucket name or ARN (``arn:aws:s3:::NAME[/key]``)."""
    text = reference.strip()
    if text.startswith("arn:"):
        text = text.rsplit(":", 1)[-1]
    return text.split("/", 1)[0]


def task_targets(resource: str, task_input: Any) -> list[tuple[str, str]]:
    """The ``(kind, reference)`` targets a task with ``resource`` and ``task_input`` calls."""
    info = describe(resource)
    if info.kind == "lambda":
        return [("function", resource)]
    if info.kind != "service":
        return []
    service = info.service.removeprefix("aws-sdk:")
    field = _TARGET_FIELDS.get(service)
    if field is None or not isinstance(task_input, dict):
        return []
    value = task_input.get(field[1])
    return [(field[0], value)] if isinstance(value, str) else []


class OwnTargetGuard:
    """A task invoker that refuses tasks aimed at StepFlow's own resources, else runs ``inner``."""

    def __init__(self, inner: TaskInvoker, own: OwnResources) -> None:
        self.inner = inner
        self.own = own

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task of ``body`` unless its target is StepFlow's (``States.Runtime``)."""
        resource = str(body.get("resource", ""))
        for kind, reference in task_targets(resource, body.get("input")):
            if self.own.owns(kind, reference):
                return TaskOutcome.failed(
                    StatesErrorName.RUNTIME, f"{OWN_TARGET_CAUSE}: {kind} {reference!r}"
                )
        return self.inner(body)
