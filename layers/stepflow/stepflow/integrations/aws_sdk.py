"""``aws-sdk:<service>:<action>``: any API botocore knows, called as Step Functions calls it.

The service is named as Step Functions names it (:mod:`.aws_sdk_names`), the
action is the API operation in camelCase (``getObject``) and the parameters are
the API's members (``Bucket``, ``Key``). The call is :func:`.api_call.call_api`
in its :data:`~.api_call.AWS_SDK` style: the response as Step Functions returns
it (:mod:`.aws_sdk_shapes`), a failure named ``<Service>.<Exception>``
(``S3.NoSuchKeyException``, ``Sfn.InvalidTokenException``) by
:class:`.errors.ErrorNames`: the modeled error shape with the ``Exception``
suffix Step Functions adds, or ``<Service>.<Service>Exception``
(``DynamoDb.DynamoDbException``) for an error the model does not name, with the
SDK for Java v2's cause text.

botocore's service models are loaded on first use of a service, and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.integrations.api_call import AWS_SDK, MAX_BODY_BYTES, call_api
from stepflow.integrations.aws_sdk_names import (
    boto_name,
    error_prefix,
    operation_name,
)
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.errors import ErrorNames
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

SERVICE = "aws-sdk:*"
"""The registry key of the generic SDK integration (every ``aws-sdk:<service>``)."""

PATTERNS: frozenset[Pattern] = frozenset({"request-response", "wait-for-token"})
"""AWS runs SDK integrations request-response or ``.waitForTaskToken``, never ``.sync``."""


MAX_ACTION = 128
"""The longest action name looked up (the longest AWS API operation name is far shorter)."""


@dataclass(frozen=True, slots=True)
class SdkOperation:
    """One API operation reached through ``aws-sdk``: its botocore model and names."""

    service: str
    boto_service: str
    operation: Any
    prefix: str

    @property
    def errors(self) -> ErrorNames:
        """How Step Functions names the operation's failures (``S3.NoSuchKeyException``)."""
        return ErrorNames(self.prefix, naming="suffixed", base_exception=f"{self.prefix}Exception")


@lru_cache(maxsize=64)
def _service_model(boto_service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(boto_service)


def resolve(service: str, action: str) -> SdkOperation | str:
    """The operation of ``aws-sdk:<service>:<action>``, or why there is none."""
    boto_service = boto_name(service)
    if boto_service is None:
        return f"the AWS SDK has no service {service[:64]!r}"
    if len(action) > MAX_ACTION:  # no API has one; and the cache holds no hostile strings
        return f"the AWS SDK service {service!r} has no action {action[:64]!r}..."
    return _resolve(service, boto_service, action)


@lru_cache(maxsize=1024)
def _resolve(service: str, boto_service: str, action: str) -> SdkOperation | str:
    model = _service_model(boto_service)
    wanted = operation_name(action)
    if action[:1] != action[:1].lower() or wanted not in model.operation_names:
        return f"the AWS SDK service {service!r} has no action {action!r}"
    prefix = error_prefix(model.metadata.get("serviceId") or service)
    return SdkOperation(service, boto_service, model.operation_model(wanted), prefix)


def problem(service: str, action: str) -> str | None:
    """Why ``aws-sdk:<service>:<action>`` names no operation (None: it names one)."""
    found = resolve(service, action)
    return found if isinstance(found, str) else None


class AwsSdkIntegration:
    """The generic ``aws-sdk:<service>:<action>`` integration over boto3."""

    service = SERVICE
    patterns = PATTERNS

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``<service>:<action>`` (as the registry passes it) cannot run; no I/O."""
        service, _, name = action.partition(":")
        return problem(service, name)

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Call the operation with the task's parameters; the response as Step Functions has it."""
        service = request.service.removeprefix("aws-sdk:")
        found = resolve(service, request.action)
        if isinstance(found, str):  # the invoker checks first; kept for direct callers
            raise ValueError(found)
        client = request.client(clients, found.boto_service)
        params = request.parameters if request.parameters is not None else {}
        if not isinstance(params, dict):
            return found.errors.invalid("The task's parameters must be a JSON object")
        return call_api(
            request,
            client,
            found.operation.name,
            params,
            found.errors,
            AWS_SDK,
            max_body_bytes=MAX_BODY_BYTES,  # read here: a test lowers it
        )


INTEGRATIONS = (AwsSdkIntegration(),)
"""The integrations of this module, for :mod:`stepflow.integrations.catalog`."""
