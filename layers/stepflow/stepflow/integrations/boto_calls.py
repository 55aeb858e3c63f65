"""Optimized integrations that are one boto3 call each (athena, glue, batch, ecs, bedrock).

Step Functions spells every parameter in PascalCase (``Cluster``,
``TaskDefinition``) where some APIs use camelCase (ECS's ``cluster``), and
returns the response in PascalCase too, timestamps as epoch milliseconds,
without ``ResponseMetadata``. :func:`to_api` and :func:`from_api` translate
through botocore's service model: a structure's members are matched by name
regardless of case; a map's keys are data and never touched.

Only the request-response form (and ``.waitForTaskToken`` where AWS has it) is
run here; the ``.sync`` forms poll the job and are the next issue's:
:meth:`BotoIntegration.check` says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ParamValidationError
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from stepflow.engine.resources import Pattern
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import service_failure
from stepflow.integrations.http_common import BadParameters
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

Prepare = Callable[[TaskRequest, TaskClients, dict[str, Any]], dict[str, Any]]
"""Turns the task's parameters into the API's (after :func:`to_api`)."""
Finish = Callable[[dict[str, Any]], Any]
"""Turns the API's response into the task's output (instead of :func:`from_api`)."""


@dataclass(frozen=True, slots=True)
class Action:
    """One action: its API operation and the patterns AWS runs it in."""

    operation: str
    patterns: frozenset[Pattern] = frozenset({"request-response"})
    prepare: Prepare | None = None
    finish: Finish | None = None


@dataclass(slots=True)
class BotoIntegration:
    """A service whose actions are one call each on the boto3 client ``client``.

    ``prefix`` names its errors (``Athena`` gives ``Athena.InvalidRequestException``),
    ``cause_service`` the cause's ``Service:`` (``AmazonAthena``).
    """

    service: str
    client: str
    prefix: str
    cause_service: str
    actions: Mapping[str, Action]
    patterns: frozenset[Pattern] = field(
        default=frozenset({"request-response", "wait-for-token", "sync", "sync2"})
    )

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``action`` in ``pattern`` cannot run (None: it can)."""
        found = self.actions.get(action)
        if found is None:
            known = ", ".join(sorted(self.actions))
            return f"{self.service}:{action} is not a {self.prefix} integration (known: {known})"
        if pattern in ("sync", "sync2"):
            if pattern in found.patterns:
                return (
                    f"the .sync form of {self.service}:{action} is not supported yet "
                    "(request-response only)"
                )
            return f"{self.service}:{action} has no .sync form"
        if pattern not in found.patterns:
            return f"{self.service}:{action} does not support the {pattern} pattern"
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Make the call once, as the task's role; the response as Step Functions returns it."""
        action = self.actions[request.action]
        client = request.client(clients, self.client)
        model = client.meta.service_model.operation_model(action.operation)
        parameters = request.parameters if request.parameters is not None else {}
        try:
            if not isinstance(parameters, dict):
                raise BadParameters("Parameters")
            api = to_api(model.input_shape, parameters)
            if action.prepare is not None:
                api = action.prepare(request, clients, api)
            response = getattr(client, _python_name(model))(**api)
        except BadParameters as bad:
            return bad.outcome(parameters)
        except ParamValidationError as exc:
            return BadParameters("Parameters", f"is invalid: {exc}").outcome(parameters)
        except Exception as exc:  # an AWS error is the task's; anything else is ours
            failed = sdk_failure(exc, self.prefix, self.cause_service)
            if failed is None:
                raise
            return failed
        response.pop("ResponseMetadata", None)
        if action.finish is not None:
            try:  # it may read a streaming body (Bedrock's)
                return TaskOutcome.succeeded(action.finish(response))
            except BotoCoreError as exc:  # the connection broke while it was read
                return TaskOutcome.failed(f"{self.prefix}.SdkClientException", str(exc))
        return TaskOutcome.succeeded(from_api(model.output_shape, response))


def sdk_failure(exc: BaseException, prefix: str, cause_service: str) -> TaskOutcome | None:
    """A failed boto3 call as a task failure (None: not a botocore failure).

    An AWS error is ``<Prefix>.<Code>``; any other botocore failure (no
    credentials, no connection) is ``<Prefix>.SdkClientException``, as the SDK
    for Java names it.
    """
    failed = service_failure(exc, prefix, cause_service)
    if failed is None and type(exc).__module__.startswith("botocore"):
        failed = TaskOutcome.failed(f"{prefix}.SdkClientException", str(exc))
    return failed


def _python_name(model: OperationModel) -> str:
    from botocore import xform_name

    return str(xform_name(model.name))


def to_api(shape: Shape | None, value: Any) -> Any:
    """``value`` (Step Functions' spelling) in the API's member names."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members: dict[str, str] = {name.lower(): name for name in shape.members}
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = members.get(str(key).lower(), str(key))
            result[name] = to_api(shape.members.get(name), item)
        return result
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [to_api(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: to_api(shape.value, item) for key, item in value.items()}
    return value


def from_api(shape: Shape | None, value: Any) -> Any:
    """An API response in Step Functions' spelling: PascalCase members, epoch-ms timestamps."""
    if isinstance(value, dict):
        if isinstance(shape, MapShape):
            return {key: from_api(shape.value, item) for key, item in value.items()}
        members = shape.members if isinstance(shape, StructureShape) else {}
        return {_pascal(key): from_api(members.get(key), item) for key, item in value.items()}
    if isinstance(value, list):
        member = shape.member if isinstance(shape, ListShape) else None
        return [from_api(member, item) for item in value]
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def json_text(value: Any) -> str:
    """A JSON body as text (a string is taken as already encoded)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
