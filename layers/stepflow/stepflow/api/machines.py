"""State machines and versions: the registry side of the API (aliases: :mod:`.aliases`)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from stepflow.api.access import current_principal
from stepflow.api.arns import Scope, check_name, check_role_arn
from stepflow.api.errors import ApiError, invalid_arn
from stepflow.api.paging import page_size, read_token, write_token
from stepflow.api.tags import check_tags
from stepflow.asl import DefinitionError, Diagnostic
from stepflow.asl.diagnostics import one_line
from stepflow.integrations.validation import check_definition as check_resources
from stepflow.integrations.validation import express_diagnostics
from stepflow.runtime.registry import HEAD, RegistryConflictError, StateMachineRegistry

TYPES = ("STANDARD", "EXPRESS")
PRINCIPAL_FIELDS = ("createdBy", "updatedBy")
"""StepFlow's additions to DescribeStateMachine: the principal ARNs that created and last
updated the state machine (botocore ignores response fields its model lacks)."""
_COPIED = ("loggingConfiguration", "tracingConfiguration", "encryptionConfiguration")


def version_key(number: int) -> str:
    """The registry key of version ``number``."""
    return f"V#{number:08d}"


class Machines:
    """CreateStateMachine and versions, over a :class:`StateMachineRegistry`.

    The alias operations are :class:`stepflow.api.aliases.Aliases`; the lookups here
    (:meth:`alias`, :meth:`resolve`) serve both.
    """

    def __init__(
        self, registry: StateMachineRegistry, scope: Scope, clock: Callable[[], float]
    ) -> None:
        self.registry, self.scope, self.clock = registry, scope, clock

    # -- state machines ---------------------------------------------------------

    def create_state_machine(self, p: dict[str, Any]) -> dict[str, Any]:
        """CreateStateMachine (idempotent when everything matches, as in AWS).

        ``tags`` are kept in the head (:mod:`stepflow.api.tags`); a repeated create
        of an existing state machine ignores them, as AWS does.
        """
        name = check_name(p["name"])
        check_role_arn(p["roleArn"])
        tags = check_tags(p.get("tags"))
        kind = p.get("type", "STANDARD")
        if kind not in TYPES:
            raise ApiError("StateMachineTypeNotSupported", f"unknown type {kind!r}")
        check_definition(p["definition"], kind)
        now = self.clock()
        head = {
            "rev": 1,
            "name": name,
            "arn": self.scope.machine_arn(name),
            "definition": p["definition"],
            "roleArn": p["roleArn"],
            "type": kind,
            "creationDate": now,
            "updateDate": now,
            "revisionId": uuid.uuid4().hex,
            "nextVersion": 1,
            **{key: p[key] for key in _COPIED if key in p},
            **_by("createdBy"),
            **({"tags": tags} if tags else {}),
        }
        self.registry.put_definition(self._revision_arn(head), head["definition"])
        try:
            self.registry.put(name, HEAD, head, expected_rev=None)
        except RegistryConflictError:
            existing = self.head(head["arn"])
            same = ("definition", "roleArn", "type")
            if any(existing[key] != head[key] for key in same) or p.get("publish"):
                raise ApiError(
                    "StateMachineAlreadyExists", f"State Machine Already Exists: '{head['arn']}'"
                ) from None
            return {"stateMachineArn": existing["arn"], "creationDate": existing["creationDate"]}
        result = {"stateMachineArn": head["arn"], "creationDate": now}
        if p.get("publish"):
            published = self._publish(name, None, p.get("versionDescription"))
            result["stateMachineVersionArn"] = published["stateMachineVersionArn"]
        return result

    def describe_state_machine(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeStateMachine of a state machine or one of its versions."""
        name, qualifier = self.scope.parse_machine(p["stateMachineArn"])
        if qualifier is None:
            head = self.head(p["stateMachineArn"])
            return describe(head, head["arn"], status=True)
        if not qualifier.isdigit():
            raise invalid_arn(p["stateMachineArn"], "state machine or version")
        version = self.version(name, int(qualifier))
        return describe(version, p["stateMachineArn"], status=True)

    def update_state_machine(self, p: dict[str, Any]) -> dict[str, Any]:
        """UpdateStateMachine: a new revision when the definition or role changes."""
        arn = p["stateMachineArn"]
        name, qualifier = self.scope.parse_machine(arn)
        if qualifier is not None:
            raise invalid_arn(arn, "state machine")
        if not any(key in p for key in ("definition", "roleArn", *_COPIED)):
            raise ApiError("MissingRequiredParameter", "nothing to update")
        if "definition" in p:
            check_definition(p["definition"], self.head(arn)["type"])
        if "roleArn" in p:
            check_role_arn(p["roleArn"])
        for _ in range(10):
            head = self.head(arn)
            new = {**head, **{k: p[k] for k in ("definition", "roleArn", *_COPIED) if k in p}}
            if new["definition"] != head["definition"] or new["roleArn"] != head["roleArn"]:
                new["revisionId"] = uuid.uuid4().hex
                self.registry.put_definition(self._revision_arn(new), new["definition"])
            new["updateDate"], new["rev"] = self.clock(), head["rev"] + 1
            new.update(_by("updatedBy"))
            try:
                self.registry.put(name, HEAD, new, expected_rev=head["rev"])
            except RegistryConflictError:
                continue
            result = {"updateDate": new["updateDate"], "revisionId": new["revisionId"]}
            if p.get("publish"):
                published = self._publish(name, None, p.get("versionDescription"))
                result["stateMachineVersionArn"] = published["stateMachineVersionArn"]
            return result
        raise ApiError("ConflictException", f"{arn} is being updated concurrently")

    def delete_state_machine(self, p: dict[str, Any]) -> dict[str, Any]:
        """DeleteStateMachine, with its versions and aliases (a missing one is no error)."""
        name, qualifier = self.scope.parse_machine(p["stateMachineArn"])
        if qualifier is not None:
            raise invalid_arn(p["stateMachineArn"], "state machine")
        for prefix in ("A#", "V#"):
            after = None
            while True:
                docs, after = self.registry.query(name, prefix, after=after, limit=100)
                for sk, _ in docs:
                    self.registry.delete(name, sk)
                if after is None:
                    break
        self.registry.delete(name, HEAD)
        return {}

    def list_state_machines(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListStateMachines, by name, paged."""
        heads, after = self.registry.heads(
            after=read_token(p.get("nextToken"), "sm"), limit=page_size(p.get("maxResults"))
        )
        keys = ("name", "type", "creationDate")
        machines = [{"stateMachineArn": h["arn"], **{k: h[k] for k in keys}} for h in heads]
        return {"stateMachines": machines, **write_token("sm", after)}

    # -- versions ---------------------------------------------------------------

    def publish_state_machine_version(self, p: dict[str, Any]) -> dict[str, Any]:
        """PublishStateMachineVersion of the current revision."""
        name, qualifier = self.scope.parse_machine(p["stateMachineArn"])
        if qualifier is not None:
            raise invalid_arn(p["stateMachineArn"], "state machine")
        return self._publish(name, p.get("revisionId"), p.get("description"))

    def list_state_machine_versions(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListStateMachineVersions, newest first... by number, paged."""
        name = self.unqualified(p["stateMachineArn"])
        self.head(p["stateMachineArn"])
        docs, after = self.registry.query(
            name,
            "V#",
            after=read_token(p.get("nextToken"), "v"),
            limit=page_size(p.get("maxResults")),
        )
        versions = [
            {
                "stateMachineVersionArn": self.scope.machine_arn(name, str(doc["version"])),
                "creationDate": doc["creationDate"],
            }
            for _, doc in docs
        ]
        return {"stateMachineVersions": versions, **write_token("v", after)}

    def delete_state_machine_version(self, p: dict[str, Any]) -> dict[str, Any]:
        """DeleteStateMachineVersion (refused while an alias routes to it)."""
        arn = p["stateMachineVersionArn"]
        name, qualifier = self.scope.parse_machine(arn, "state machine version")
        if qualifier is None or not qualifier.isdigit():
            raise invalid_arn(arn, "state machine version")
        after = None
        while True:
            aliases, after = self.registry.query(name, "A#", after=after)
            for _, alias in aliases:
                if any(r["stateMachineVersionArn"] == arn for r in alias["routingConfiguration"]):
                    raise ApiError(
                        "ConflictException", f"Version {arn} is referenced by alias {alias['name']}"
                    )
            if after is None:
                break
        self.registry.delete(name, version_key(int(qualifier)))
        return {}

    def _publish(self, name: str, revision: str | None, description: str | None) -> dict[str, Any]:
        for _ in range(10):
            head = self.head(self.scope.machine_arn(name))
            if revision is not None and revision != head["revisionId"]:
                raise ApiError("ConflictException", f"revisionId {revision} is not the latest")
            latest = self.registry.query(name, "V#", after=version_key(head["nextVersion"] - 2))
            for _, doc in latest[0]:
                if doc["revisionId"] == head["revisionId"]:  # already published: the same
                    arn = self.scope.machine_arn(name, str(doc["version"]))
                    return {"stateMachineVersionArn": arn, "creationDate": doc["creationDate"]}
            number = head["nextVersion"]
            try:
                self.registry.put(
                    name,
                    HEAD,
                    {**head, "rev": head["rev"] + 1, "nextVersion": number + 1},
                    expected_rev=head["rev"],
                )
            except RegistryConflictError:
                continue
            keys = ("definition", "roleArn", "type", "revisionId", *_COPIED)
            version = {k: head[k] for k in keys if k in head}
            version.update(rev=1, version=number, name=name, creationDate=self.clock())
            if description is not None:
                version["description"] = description
            arn = self.scope.machine_arn(name, str(number))
            self.registry.put_definition(arn, head["definition"])
            self.registry.put(name, version_key(number), version, expected_rev=None)
            return {"stateMachineVersionArn": arn, "creationDate": version["creationDate"]}
        raise ApiError("ConflictException", f"{name} is being published concurrently")

    # -- lookups ----------------------------------------------------------------

    def head(self, arn: str) -> dict[str, Any]:
        """The head document of an unqualified state machine ARN, or StateMachineDoesNotExist."""
        name = self.unqualified(arn)
        head = self.registry.get(name, HEAD)
        if head is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return head

    def version(self, name: str, number: int) -> dict[str, Any]:
        """A version document, or StateMachineDoesNotExist."""
        doc = self.registry.get(name, version_key(number))
        if doc is None:
            arn = self.scope.machine_arn(name, str(number))
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return doc

    def alias(self, name: str, alias: str) -> dict[str, Any]:
        """An alias document, or ResourceNotFound."""
        doc = self.registry.get(name, f"A#{alias}")
        if doc is None:
            arn = self.scope.machine_arn(name, alias)
            raise ApiError("ResourceNotFound", f"Resource not found: '{arn}'")
        return doc

    def resolve(self, arn: str) -> str:
        """The ARN an execution of ``arn`` (machine, version or alias) records and runs.

        A state machine's current revision, a version, or a version an alias
        routes to (chosen by weight): each names an immutable stored definition.
        """
        name, qualifier = self.scope.parse_machine(arn)
        if qualifier is None:
            return self._revision_arn(self.head(arn))
        if qualifier.isdigit():
            self.version(name, int(qualifier))
            return arn
        routing = self.alias(name, qualifier)["routingConfiguration"]
        weights = [r["weight"] for r in routing]
        return str(random.choices(routing, weights=weights)[0]["stateMachineVersionArn"])

    def target(self, arn: str) -> tuple[str, str]:
        """:meth:`resolve` and the :meth:`role_of` its result, reading the machine once.

        A state machine or version ARN costs one read (StartExecution reads
        nothing else of the registry); an alias, its own and its version's.
        """
        name, qualifier = self.scope.parse_machine(arn)
        if qualifier is None:
            head = self.head(arn)
            return self._revision_arn(head), str(head["roleArn"])
        if qualifier.isdigit():
            return arn, str(self.version(name, int(qualifier))["roleArn"])
        resolved = self.resolve(arn)
        return resolved, self.role_of(resolved)

    def role_of(self, resolved: str) -> str:
        """The roleArn an execution of ``resolved`` (from :meth:`resolve`) runs with.

        A version's own role; for a revision, the head's (a new roleArn makes a new
        revision). Tasks assume a ``Credentials.RoleArn`` through this role.
        """
        name, qualifier = self.scope.parse_machine(resolved)
        if qualifier is not None and qualifier.isdigit():
            return str(self.version(name, int(qualifier))["roleArn"])
        return str(self.head(self.scope.machine_arn(name))["roleArn"])

    def _revision_arn(self, head: dict[str, Any]) -> str:
        return self.scope.machine_arn(head["name"], head["revisionId"])

    def unqualified(self, arn: str) -> str:
        """The name in an unqualified state machine ARN; InvalidArn for a version or alias."""
        name, qualifier = self.scope.parse_machine(arn)
        if qualifier is not None:
            raise invalid_arn(arn, "state machine")
        return name


def check_definition(definition: str, machine_type: str = "STANDARD") -> None:
    """InvalidDefinition (with every diagnostic) unless the engine and AWS accept ``definition``.

    AWS refuses a Task resource it does not know (``aws-sdk:nosuch:thing``,
    ``dynamodb:query``); one StepFlow cannot run is only a warning. In an EXPRESS
    machine (or an EXPRESS distributed Map's processor) it refuses ``.sync``,
    ``.waitForTaskToken`` and activities, in AWS's words.
    """
    try:
        check_resources(definition)
    except DefinitionError as exc:
        raise invalid_definition(exc.diagnostics) from None
    refused = express_diagnostics(definition, machine_type)
    if refused:
        raise invalid_definition(refused)


def invalid_definition(diagnostics: Sequence[Diagnostic]) -> ApiError:
    """AWS's InvalidDefinition: one line, ``'CODE: message at /location, ...'``."""
    return ApiError(
        "InvalidDefinition", f"Invalid State Machine Definition: '{one_line(diagnostics)}'"
    )


def describe(doc: dict[str, Any], arn: str, *, status: bool) -> dict[str, Any]:
    """The DescribeStateMachine shape of a head or version document."""
    result: dict[str, Any] = {
        "stateMachineArn": arn,
        "name": doc["name"],
        "definition": doc["definition"],
        "roleArn": doc["roleArn"],
        "type": doc["type"],
        "creationDate": doc["creationDate"],
        "revisionId": doc["revisionId"],
        "loggingConfiguration": doc.get("loggingConfiguration", {"level": "OFF"}),
        **{k: doc[k] for k in ("tracingConfiguration", "description") if k in doc},
        **{k: doc[k] for k in PRINCIPAL_FIELDS if k in doc},
    }
    if status:
        result["status"] = "ACTIVE"
    return result


def _by(key: str) -> dict[str, str]:
    """``{key: the caller's principal ARN}``, or nothing when the caller is not known."""
    principal = current_principal()
    return {} if principal is None else {key: principal}


def parse_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON, or InvalidExecutionInput."""
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError("InvalidExecutionInput", f"Invalid {what}: not valid JSON") from None
