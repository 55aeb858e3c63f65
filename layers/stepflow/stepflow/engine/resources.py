"""How a Task ``Resource`` shows up in history: Lambda, activity or service integration."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Kind = Literal["lambda", "activity", "service"]


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """The history vocabulary of a resource.

    ``prefix`` is the event-type prefix (``LambdaFunction``, ``Activity`` or
    ``Task``); ``resource_type``/``resource`` are the Task* event detail fields
    (``lambda``/``invoke`` for ``arn:aws:states:::lambda:invoke``).
    """

    kind: Kind
    prefix: str
    resource_type: str
    resource: str
    region: str
    wait_for_token: bool
    sync: bool


@lru_cache(maxsize=1024)
def describe(resource: str) -> ResourceInfo:
    """Classify a Task ``Resource`` string."""
    parts = resource.split(":")
    if resource.startswith("arn:") and len(parts) >= 7 and parts[2] == "lambda":
        return ResourceInfo("lambda", "LambdaFunction", "lambda", resource, parts[3], False, False)
    if resource.startswith("arn:") and len(parts) >= 7 and parts[5] == "activity":
        return ResourceInfo("activity", "Activity", "activity", resource, parts[3], False, False)
    if resource.startswith("arn:") and len(parts) >= 7:
        service, action = parts[5], ":".join(parts[6:])
        region = parts[3] or "us-east-1"
        return ResourceInfo(
            "service",
            "Task",
            service,
            action,
            region,
            action.endswith(".waitForTaskToken"),
            action.endswith(".sync") or ".sync:" in action,
        )
    head, _, rest = resource.partition(":")
    return ResourceInfo("service", "Task", head, rest or head, "us-east-1", False, False)
