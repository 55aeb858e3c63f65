"""How a Task ``Resource`` reads: its kind, service, action, pattern and history vocabulary.

This only parses the ARN grammar (the engine needs it to name history events).
Which resources StepFlow can *run* is decided in one place, the integration
registry (:mod:`stepflow.integrations.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Kind = Literal["lambda", "activity", "service"]
Pattern = Literal["request-response", "wait-for-token", "sync", "sync2"]

ParameterCheck = Callable[[str, Any], "str | None"]
"""``check(resource, parameters) -> problem``: why a Task's effective parameters cannot
start it (None: they can). Injected into :func:`~stepflow.engine.decide` by the edge
(the integration registry's :meth:`parameters_problem`); it must be pure and cheap."""

_SUFFIXES: tuple[tuple[str, Pattern], ...] = (
    (".waitForTaskToken", "wait-for-token"),
    (".sync:2", "sync2"),
    (".sync", "sync"),
)


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """The parts and history vocabulary of a resource.

    ``prefix`` is the event-type prefix (``LambdaFunction``, ``Activity`` or
    ``Task``); ``resource_type``/``resource`` are the Task* event detail fields
    (``lambda``/``invoke`` for ``arn:aws:states:::lambda:invoke``,
    ``aws-sdk:s3``/``getObject`` for ``arn:aws:states:::aws-sdk:s3:getObject``).
    ``service`` and ``action`` name the call without the pattern suffix
    (``aws-sdk:s3`` and ``getObject``; ``lambda`` and ``function`` for a
    function ARN; ``activity`` and ``activity`` for an activity), and
    ``pattern`` is the integration pattern.
    """

    kind: Kind
    prefix: str
    resource_type: str
    resource: str
    region: str
    wait_for_token: bool
    sync: bool
    service: str = ""
    action: str = ""
    pattern: Pattern = "request-response"


@lru_cache(maxsize=1024)
def describe(resource: str) -> ResourceInfo:
    """Classify a Task ``Resource`` string."""
    parts = resource.split(":")
    if resource.startswith("arn:") and len(parts) >= 7 and parts[2] == "lambda":
        return ResourceInfo(
            "lambda", "LambdaFunction", "lambda", resource, parts[3], False, False,
            "lambda", "function",
        )  # fmt: skip
    if resource.startswith("arn:") and len(parts) >= 7 and parts[5] == "activity":
        return ResourceInfo(
            "activity", "Activity", "activity", resource, parts[3], False, False,
            "activity", "activity",
        )  # fmt: skip
    if resource.startswith("arn:") and len(parts) >= 7:
        service, action = parts[5], ":".join(parts[6:])
        if service == "aws-sdk" and len(parts) >= 8:
            service, action = f"aws-sdk:{parts[6]}", ":".join(parts[7:])
        region = parts[3] or "us-east-1"
        base, pattern = _split_pattern(action)
        return ResourceInfo(
            "service",
            "Task",
            service,
            action,
            region,
            pattern == "wait-for-token",
            pattern in ("sync", "sync2"),
            service,
            base,
            pattern,
        )
    head, _, rest = resource.partition(":")
    base, pattern = _split_pattern(rest or head)
    return ResourceInfo(
        "service", "Task", head, rest or head, "us-east-1",
        pattern == "wait-for-token", pattern in ("sync", "sync2"), head, base, pattern,
    )  # fmt: skip


def _split_pattern(action: str) -> tuple[str, Pattern]:
    for suffix, pattern in _SUFFIXES:
        if action.endswith(suffix):
            return action[: -len(suffix)], pattern
    return action, "request-response"
