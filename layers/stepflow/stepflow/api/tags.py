"""TagResource, UntagResource, ListTagsForResource: tags of state machines and activities.

Step Functions tags state machines and activities only (not versions,
aliases or executions: their ARNs are ``InvalidArn`` here). A resource keeps
at most :data:`MAX_TAGS` tags (``TooManyTags``); a key is 1-128 characters, a
value 0-256, both of Unicode letters, digits, white space and ``_ . : / = +
- @``; keys starting with ``aws:`` (any case) are reserved for AWS. A bad tag
is a ``ValidationException`` and nothing is written. Within one request a
repeated key keeps its last value.

Tags live in the registry, written conditionally on the document's ``rev``
like every other API record, and are retried on a conflict, so concurrent
TagResource and UntagResource calls never lose each other's keys:

- a state machine's in its head document (``tags``): they go when it is
  deleted, are not copied to its versions, and a tag write that races a
  DeleteStateMachine fails its condition and answers ``ResourceNotFound``;
- an activity's (an activity *is* its task queue, whose own tags SQS limits to
  50) in a document of the partition named by the activity's ARN, key
  :data:`ACTIVITY_TAGS`, which records the creation date of the activity it
  belongs to: DeleteActivity removes it, and one left behind by a write that
  raced a delete is ignored (and replaced) once an activity of that name is
  created again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError, invalid_arn, validation
from stepflow.runtime.registry import HEAD, RegistryConflictError, StateMachineRegistry

MAX_TAGS = 50
"""Tags per resource (AWS: 50)."""
MAX_KEY = 128
MAX_VALUE = 256
ACTIVITY_TAGS = "TAGS"
"""The sort key of an activity's tag document (its partition: the activity ARN)."""
_SYMBOLS = frozenset("_.:/=+-@")
_ATTEMPTS = 20

Operation = Callable[[dict[str, Any]], dict[str, Any]]


class ActivityLookup(Protocol):
    """What the tags need of the activity service."""

    def describe_activity(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeActivity (raises ``ActivityDoesNotExist`` / ``InvalidArn``)."""


def check_tags(tags: Any) -> dict[str, str]:
    """``tags`` (a TagList) as ``{key: value}``, or the ValidationException AWS answers."""
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise validation("tags must be a list of {key, value} objects")
    if len(tags) > MAX_TAGS:
        raise ApiError("TooManyTags", f"Too many tags: {len(tags)} (at most {MAX_TAGS})")
    found: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict):
            raise validation(f"a tag must be a {{key, value}} object: {tag!r:.100}")
        key, value = check_key(tag.get("key")), tag.get("value", "")
        if not isinstance(value, str) or len(value) > MAX_VALUE or not _allowed(value):
            raise validation(
                f"Invalid tag value for key '{key}': at most {MAX_VALUE} Unicode letters, "
                "digits, white space or _ . : / = + - @"
            )
        found[key] = value
    return found


def check_key(key: Any) -> str:
    """``key`` if it is a tag key AWS accepts, else ValidationException."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY or not _allowed(key):
        shown = key[:MAX_KEY] if isinstance(key, str) else key
        raise validation(
            f"Invalid tag key '{shown}': 1 to {MAX_KEY} Unicode letters, digits, white space "
            "or _ . : / = + - @"
        )
    if key.lower().startswith("aws:"):
        raise validation(f"Invalid tag key '{key}': the aws: prefix is reserved for AWS use")
    return key


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """``{key: value}`` as Step Functions' TagList."""
    return [{"key": key, "value": value} for key, value in tags.items()]


class Tags:
    """The three tag operations over the registry (activities: when the service has them)."""

    def __init__(
        self, registry: StateMachineRegistry, scope: Scope, activities: ActivityLookup | None
    ) -> None:
        self.registry, self.scope, self.activities = registry, scope, activities

    def tag_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        """TagResource: add or replace tags (TooManyTags past :data:`MAX_TAGS` in all)."""
        added = check_tags(p.get("tags"))

        def merged(tags: dict[str, str]) -> dict[str, str]:
            new = {**tags, **added}
            if len(new) > MAX_TAGS:
                raise ApiError(
                    "TooManyTags",
                    f"Too many tags: {p['resourceArn']} would have {len(new)} (at most {MAX_TAGS})",
                )
            return new

        self._change(str(p["resourceArn"]), merged)
        return {}

    def untag_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        """UntagResource: remove the keys (a key the resource lacks is no error)."""
        keys = p.get("tagKeys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise validation("tagKeys must be a list of strings")
        gone = set(keys)
        self._change(
            str(p["resourceArn"]), lambda tags: {k: v for k, v in tags.items() if k not in gone}
        )
        return {}

    def list_tags_for_resource(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListTagsForResource."""
        arn = str(p["resourceArn"])
        kind, name = self._resource(arn)
        if kind == "stateMachine":
            return {"tags": tag_list(self._machine_head(arn, name).get("tags") or {})}
        created = self._activity_created(arn)
        doc = self.registry.get(arn, ACTIVITY_TAGS)
        live = doc is not None and doc.get("created") == created
        return {"tags": tag_list(doc["tags"]) if live and doc is not None else []}

    # -- activities: called by the service around CreateActivity / DeleteActivity -------

    def activity_created(self, arn: str, created: float, tags: dict[str, str]) -> None:
        """Store the ``tags`` CreateActivity gave a new activity (created at ``created``).

        An activity that already existed (CreateActivity is idempotent) keeps its
        tags, as in AWS: the request's are ignored.
        """
        for _ in range(_ATTEMPTS):
            doc = self.registry.get(arn, ACTIVITY_TAGS)
            if doc is not None and doc.get("created") == created:
                return  # the activity existed: its tags stay
            if doc is None and not tags:
                return
            rev = None if doc is None else int(doc["rev"])
            new = {"rev": (rev or 0) + 1, "created": created, "tags": tags}
            try:
                self.registry.put(arn, ACTIVITY_TAGS, new, expected_rev=rev)
                return
            except RegistryConflictError:
                continue
        raise _busy(arn)

    def activity_deleted(self, arn: str) -> None:
        """Forget a deleted activity's tags."""
        self.registry.delete(arn, ACTIVITY_TAGS)

    # -- internals ----------------------------------------------------------------------

    def _change(self, arn: str, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Apply ``change`` to the resource's tags: a conditional write, retried on conflict."""
        kind, name = self._resource(arn)
        for _ in range(_ATTEMPTS):
            rev: int | None
            if kind == "stateMachine":
                head = self._machine_head(arn, name)
                partition, key, rev = name, HEAD, int(head["rev"])
                new = {**head, "rev": rev + 1, "tags": change(head.get("tags") or {})}
            else:
                created = self._activity_created(arn)
                doc = self.registry.get(arn, ACTIVITY_TAGS)
                rev = None if doc is None else int(doc["rev"])
                live = doc["tags"] if doc is not None and doc.get("created") == created else {}
                partition, key = arn, ACTIVITY_TAGS
                new = {"rev": (rev or 0) + 1, "created": created, "tags": change(live)}
            try:
                self.registry.put(partition, key, new, expected_rev=rev)
                return
            except RegistryConflictError:
                continue
        raise _busy(arn)

    def _resource(self, arn: str) -> tuple[str, str]:
        """``("stateMachine" | "activity", name)`` of a taggable ARN, else InvalidArn."""
        parts = arn.split(":")
        kind = parts[5] if len(parts) > 5 else ""
        if kind == "stateMachine":
            name, qualifier = self.scope.parse_machine(arn, "state machine or activity")
            if qualifier is not None:
                raise invalid_arn(arn, "state machine or activity")
            return kind, name
        if kind == "activity" and len(parts) == 7 and ":".join(parts[:5]) == self.scope.prefix:
            return kind, parts[6]
        raise invalid_arn(arn, "state machine or activity")

    def _machine_head(self, arn: str, name: str) -> dict[str, Any]:
        head = self.registry.get(name, HEAD)
        if head is None:
            raise _not_found(arn)
        return head

    def _activity_created(self, arn: str) -> float:
        """The activity's creation date, or ResourceNotFound."""
        if self.activities is None:
            raise _not_found(arn)
        try:
            found = self.activities.describe_activity({"activityArn": arn})
        except Exception as exc:  # ActivityError: its code says which
            code = getattr(exc, "code", None)
            if code in ("InvalidArn", "InvalidName"):
                raise invalid_arn(arn, "state machine or activity") from None
            if code == "ActivityDoesNotExist":
                raise _not_found(arn) from None
            raise
        return float(found["creationDate"])


def _allowed(text: str) -> bool:
    return all(ch.isalnum() or ch.isspace() or ch in _SYMBOLS for ch in text)


def _not_found(arn: str) -> ApiError:
    return ApiError("ResourceNotFound", f"Resource not found: '{arn}'")


def _busy(arn: str) -> ApiError:
    return ApiError("ConflictException", f"the tags of {arn} are being changed concurrently")
