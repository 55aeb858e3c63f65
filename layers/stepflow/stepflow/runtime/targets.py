"""StepFlow's own resources are never task targets.

A workflow that any API caller can create must not reach StepFlow's own
queues, table, bucket, functions or signing secret through a Task: a message
sent to the transition queue, an invoke of the stepper or a read of the signing
key would bypass every check the API makes. :class:`OwnTargetGuard` wraps the
task invoker (outermost, so every integration passes through it) and fails the
task with ``States.Runtime`` (never retried, never caught) without calling AWS
when the task names one of :class:`OwnResources`:

- a Lambda resource ARN that is one of StepFlow's functions;
- for every service integration (optimised and ``aws-sdk:*``, whose actions
  can name a resource anywhere: ``RequestItems`` keyed by table name,
  ``CopySource``, batch entries, ``SecretId``...), ANY string value or map key
  of its parameters (also once percent-decoded) naming an own resource. The
  scan is bounded (:data:`MAX_SCAN_VALUES`, :data:`MAX_SCAN_DEPTH`): a
  parameter tree past either bound is refused, never passed unchecked.

Pure: no AWS client, no clock. The edge builds :class:`OwnResources` from the
deployment's settings (:func:`stepflow.aws.own_resources.own_resources`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlparse

from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

OWN_TARGET_CAUSE = "target is a StepFlow resource"
"""The start of the cause of a refused task (followed by the kind and name of the target)."""

TOO_LARGE_TO_CHECK_CAUSE = "the task's parameters are too large to check for StepFlow resources"
"""The start of the cause of a task whose parameters pass a bound of the scan."""

MAX_SCAN_VALUES = 100_000
"""The most strings, keys, numbers and containers of one task's parameters the guard reads.

256 KiB of JSON (the default payload limit) holds at most ~87,000 strings.
"""
MAX_SCAN_DEPTH = 64
"""The deepest nesting of one task's parameters the guard reads."""

_NAME_CHARS = "A-Za-z0-9_-"
"""The characters of table, queue, bucket (but dots) and function names: a name's bounds."""
_SECRET_CHARS = "A-Za-z0-9/_+=.@-"
"""The characters of a Secrets Manager secret name."""
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
"""The random suffix Secrets Manager appends to a secret's name in its ARN."""

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
    secrets: frozenset[str] = frozenset()
    """Secret names, each also without the 6-character suffix an ARN carries."""

    @classmethod
    def of(
        cls,
        *,
        functions: Iterable[str] = (),
        queues: Iterable[str] = (),
        queue_prefixes: Iterable[str] = (),
        tables: Iterable[str] = (),
        buckets: Iterable[str] = (),
        secrets: Iterable[str] = (),
    ) -> OwnResources:
        """Normalise references (ARNs, URLs, qualified names) to bare names; drop blanks."""
        return cls(
            functions=frozenset(n for n in map(function_name, functions) if n),
            queues=frozenset(n for n in map(queue_name, queues) if n),
            queue_prefixes=tuple(p for p in queue_prefixes if p),
            tables=frozenset(n for n in map(table_name, tables) if n),
            buckets=frozenset(n for n in map(bucket_name, buckets) if n),
            secrets=frozenset(n for ref in secrets for n in secret_names(ref) if n),
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
        if kind == "secret":
            return bool(secret_names(reference) & self.secrets)
        return False

    def named_in(self, text: str) -> tuple[str, str] | None:
        """The ``(kind, name)`` of an own resource ``text`` names anywhere in it, else None.

        A name counts where it stands between characters no name of its kind may
        hold (``/``, ``:``, ``"``, a space, ...), in any letter case: a queue URL, a
        function or table ARN, ``bucket/key``, a PartiQL statement. ``text`` is
        also read percent-decoded (up to three times).
        """
        return _find(_matcher(self), text)

    def named_in_tree(self, value: Any) -> tuple[str, str] | None:
        """The first own resource any string or map key of ``value`` names (see :meth:`named_in`).

        Raises :class:`ScanLimitError` past :data:`MAX_SCAN_VALUES` values or
        :data:`MAX_SCAN_DEPTH` levels: what is not read is never passed.
        """
        texts: list[str] = []
        stack: list[tuple[Any, int]] = [(value, 0)]
        seen = 0
        while stack:
            item, depth = stack.pop()
            seen += 1
            if seen > MAX_SCAN_VALUES:
                raise ScanLimitError(f"more than {MAX_SCAN_VALUES} values")
            if isinstance(item, str):
                texts.extend(_decodings(item) if "%" in item else (item,))
            elif isinstance(item, dict | list | tuple):
                if depth >= MAX_SCAN_DEPTH:
                    raise ScanLimitError(f"nested deeper than {MAX_SCAN_DEPTH} levels")
                if isinstance(item, dict):
                    for key, child in item.items():
                        stack.append((str(key), depth + 1))
                        stack.append((child, depth + 1))
                else:
                    stack.extend((child, depth + 1) for child in item)
        # One search over every text, NUL-separated: NUL bounds a name as any separator does.
        return _search(_matcher(self), "\x00".join(texts))


class ScanLimitError(Exception):
    """A task's parameters pass a bound of the own-resource scan."""


_Matcher = tuple[tuple[str, ...], "re.Pattern[str] | None"]
"""Every own name lowercased (a fast first test) and the expression finding them."""


def _find(matcher: _Matcher, text: str) -> tuple[str, str] | None:
    for variant in _decodings(text):
        found = _search(matcher, variant)
        if found is not None:
            return found
    return None


def _search(matcher: _Matcher, text: str) -> tuple[str, str] | None:
    needles, pattern = matcher
    if pattern is None:
        return None
    lowered = text.lower()
    if not any(needle in lowered for needle in needles):
        return None
    found = pattern.search(text)
    if found is None or found.lastgroup is None:
        return None
    return found.lastgroup, found.group(found.lastgroup)


@lru_cache(maxsize=8)
def _matcher(own: OwnResources) -> _Matcher:
    """One regular expression finding every own name, a named group per kind."""
    names = (
        *own.tables,
        *own.queues,
        *own.buckets,
        *own.functions,
        *own.queue_prefixes,
        *own.secrets,
    )
    needles = tuple(sorted({n.lower() for n in names}))

    def alternatives(names: Iterable[str]) -> str:
        return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))

    bounded = f"(?<![{_NAME_CHARS}])(?:{{}})(?![{_NAME_CHARS}])"
    groups = [
        (kind, bounded.format(alternatives(names)))
        for kind, names in (
            ("table", own.tables),
            ("queue", own.queues),
            ("bucket", own.buckets),
            ("function", own.functions),
        )
        if names
    ]
    if own.queue_prefixes:
        groups.append(
            ("queue_prefix", f"(?<![{_NAME_CHARS}])(?:{alternatives(own.queue_prefixes)})")
        )
    if own.secrets:
        secret = (
            f"(?<![{_SECRET_CHARS}])(?:{alternatives(own.secrets)})"
            f"(?:-[A-Za-z0-9]{{6}})?(?![{_SECRET_CHARS}])"
        )
        groups.append(("secret", secret))
    if not groups:
        return needles, None
    expression = "|".join(f"(?P<{kind}>{body})" for kind, body in groups)
    return needles, re.compile(expression, re.IGNORECASE | re.ASCII)


def _decodings(text: str) -> list[str]:
    """``text`` and its percent-decodings (each once more decoded), at most four in all."""
    variants = [text]
    while "%" in variants[-1] and len(variants) < 4:
        decoded = unquote(variants[-1])
        if decoded == variants[-1]:
            break
        variants.append(decoded)
    return variants


def secret_names(reference: str) -> set[str]:
    """The names a secret reference (a name, a partial or full ARN) may go by.

    A full ARN's name ends with ``-`` and 6 random characters; the name without
    them is kept too (a partial ARN or the name alone reaches the same secret).
    """
    text = reference.strip()
    if text.startswith("arn:") and ":secret:" in text:
        text = text.split(":secret:", 1)[1]
    if not text:
        return set()
    stripped = _SECRET_SUFFIX.sub("", text)
    return {text, stripped} if stripped else {text}


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
        """Run the task of ``body`` unless it names a StepFlow resource (``States.Runtime``)."""
        resource = str(body.get("resource", ""))
        for kind, reference in task_targets(resource, body.get("input")):
            if self.own.owns(kind, reference):
                return _refused(kind, reference)
        if describe(resource).kind == "service":
            try:
                found = self.own.named_in_tree(body.get("input"))
            except ScanLimitError as exc:
                return TaskOutcome.failed(
                    StatesErrorName.RUNTIME, f"{TOO_LARGE_TO_CHECK_CAUSE} ({exc})"
                )
            if found is not None:
                return _refused(found[0].removesuffix("_prefix"), found[1])
        return self.inner(body)


def _refused(kind: str, reference: str) -> TaskOutcome:
    return TaskOutcome.failed(StatesErrorName.RUNTIME, f"{OWN_TARGET_CAUSE}: {kind} {reference!r}")
