"""The built-in effect handlers: HTTP (httpx) and AWS calls through the integration registry.

:func:`builtin_handlers` makes the handlers of every built-in effect
(:mod:`stepflow.cells.builtin`); the Wiring and the test environment merge
them UNDER a cells module's own handlers (a user's handler of the same effect
type wins).

An AWS effect is performed as the Task that the effect names
(``dynamodb:putItem``, ``aws-sdk:<service>:<action>``...), by the same
integration a Task state would use (:meth:`Registry.find(resource).call`), as
the task's role: the Task request is built from the cell's task message
(``role_arn``, ``execution_role``, ``execution_arn``). Its output is the
effect's result and its error (``DynamoDB.ConditionalCheckFailedException``,
``SNS.NotFoundException``...) the effect's error. Throttling is transient (retried by the
handler's policy); so are AWS's internal errors and client-side failures
(``SdkClientException``) of a request the target deduplicates, but not of a
send it does not (standard SQS queue or SNS topic, EventBridge): such a failure
may follow the send's success, and another attempt would deliver it twice. The
rest are permanent. A failure says whether the request may have been performed
(recorded with it): ``unknown`` after an AWS-side internal error or a client-side
failure (the request may have been sent), else ``no`` (throttled, refused by the
service, or refused before sending); a call that started a job was performed.
Before anything is called, the parameters pass the same check the
:class:`~stepflow.runtime.targets.OwnTargetGuard` applies to Tasks: an effect
naming one of StepFlow's own resources (its table, queues, bucket, functions,
signing secret) fails with ``States.Runtime`` and AWS is not called.
"""

from __future__ import annotations

from typing import Any

from stepflow.cells.builtin import (
    AwsCall,
    AwsEffect,
    DynamoPutItem,
    EventBridgePutEvents,
    HttpRequest,
    SnsPublish,
    SqsSendMessage,
)
from stepflow.cells.effects import Effect
from stepflow.cells.handlers import EffectCall, EffectHandlers, HandlerError
from stepflow.cells.policy import NO_RETRY, Policy, TransientError
from stepflow.errors import StatesErrorName
from stepflow.integrations.effect_http import EffectHttp
from stepflow.integrations.registry import IntegrationInvoker, Registry
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome
from stepflow.runtime.targets import OwnResources, OwnTargetGuard

AWS_EFFECTS: tuple[type[Effect[Any]], ...] = (
    DynamoPutItem,
    SnsPublish,
    SqsSendMessage,
    EventBridgePutEvents,
    AwsCall,
)
"""The built-in effects performed through the integration registry."""

NO_EFFECT_HANDLER = "StepFlow.Cell.NoEffectHandler"
INVALID_PARAMETERS = "StepFlow.Effect.InvalidParameters"

_THROTTLING_SUFFIXES = (
    ".ThrottlingException",
    ".Throttling",
    ".ThrottledException",
    ".Throttled",
    ".RequestThrottled",
    ".TooManyRequestsException",
    ".ProvisionedThroughputExceededException",
    ".RequestLimitExceeded",
    ".RequestThrottledException",
    ".KMSThrottlingException",
)
"""AWS error names (``<Service>.<Exception>``) of a request refused before it was performed."""

_TRANSIENT_SUFFIXES = (
    *_THROTTLING_SUFFIXES,
    ".ServiceUnavailable",
    ".ServiceUnavailableException",
    ".InternalServerError",
    ".InternalServerErrorException",
    ".InternalFailure",
    ".InternalError",
    ".InternalErrorException",
    ".SdkClientException",
)
"""AWS error names worth another attempt of a request the target deduplicates.

An AWS-side failure or a client-side one (a connection lost, a read timed out) may
follow the request's success: another attempt of a send the target does not
deduplicate could deliver it twice, so only throttling is retried for those
(:meth:`~stepflow.cells.builtin.AwsEffect.repeatable`).
"""

_UNKNOWN_SUFFIXES = tuple(s for s in _TRANSIENT_SUFFIXES if s not in _THROTTLING_SUFFIXES)
"""AWS error names of a request that may have been performed (internal or client-side)."""

_TASK_FIELDS = ("role_arn", "execution_role", "execution_arn", "state_name", "task_id")
"""What the effect's Task request keeps of the cell's task message (who calls, for what)."""


def is_transient_error(error: str | None, repeatable: bool = True) -> bool:
    """Whether an integration's error name is worth another attempt.

    Throttling always; an AWS-side or client-side failure only when the request is
    ``repeatable`` (the target deduplicates it).
    """
    suffixes = _TRANSIENT_SUFFIXES if repeatable else _THROTTLING_SUFFIXES
    return bool(error) and str(error).endswith(suffixes)


class AwsEffects:
    """Performs AWS effects through ``registry``'s integrations with ``clients``.

    ``own`` are StepFlow's own resources, which no effect may name.
    """

    def __init__(self, registry: Registry, clients: TaskClients, own: OwnResources) -> None:
        self.registry = registry
        self.clients = clients
        self._invoke = OwnTargetGuard(IntegrationInvoker(registry, clients), own)

    def __call__(self, effect: AwsEffect, call: EffectCall) -> Any:
        """Run the effect's Task as the cell's task role; its output, or its error raised."""
        resource = effect.resource()
        parameters = effect.task_parameters(call.key.token)
        problem = self.registry.parameters_problem(resource, parameters)
        if problem is not None:
            raise HandlerError(INVALID_PARAMETERS, problem)
        body: dict[str, Any] = {k: call.task[k] for k in _TASK_FIELDS if k in call.task}
        body.update(resource=resource, input=parameters)
        outcome = self._invoke(body)
        if outcome.ok:
            if outcome.submitted:
                raise HandlerError(
                    INVALID_PARAMETERS, f"{resource} started a job: not an effect", "yes"
                )
            return outcome.output
        raise _failure(outcome, effect.repeatable(call.key.token))


def _failure(outcome: TaskOutcome, repeatable: bool) -> Exception:
    error = outcome.error or StatesErrorName.TASK_FAILED.value
    cause = outcome.cause or ""
    performed = "unknown" if error.endswith(_UNKNOWN_SUFFIXES) else "no"
    if is_transient_error(error, repeatable):
        return TransientError(error, cause, performed)
    return HandlerError(error, cause, performed)


def _no_aws(effect: Effect[Any], call: EffectCall) -> Any:
    raise HandlerError(
        NO_EFFECT_HANDLER,
        f"Effect {effect.effect_name()} calls AWS, and this process has no AWS clients: "
        "run with AWS configured (stepflow.testing: WorkflowEnvironment(aws=True) or "
        "execute(..., aws=True), e.g. under moto), or register your own handler for it.",
    )


def builtin_handlers(
    registry: Registry | None,
    clients: TaskClients | None,
    http: EffectHttp | None = None,
    own: OwnResources | None = None,
    *,
    policy: Policy | None = None,
) -> EffectHandlers:
    """The handlers of the built-in effects (merge a cells module's handlers over them).

    ``http`` performs :class:`HttpRequest` (default: an :class:`EffectHttp` that
    may reach this machine, as in tests and ``stepflow local``); ``registry`` and
    ``clients`` the AWS effects (``clients`` None: no AWS, each AWS effect fails
    with a clear error); ``own`` are the resources they may never name.
    ``policy`` replaces every handler's default policy.
    """
    handlers = EffectHandlers()
    handlers.register(HttpRequest, http if http is not None else EffectHttp(), policy)
    if clients is None:
        for effect in AWS_EFFECTS:
            handlers.register(effect, _no_aws, NO_RETRY)
        return handlers
    if registry is None:
        from stepflow.integrations.catalog import default_registry

        registry = default_registry()
    aws = AwsEffects(registry, clients, own if own is not None else OwnResources())
    for effect in AWS_EFFECTS:
        handlers.register(effect, aws, policy)
    return handlers
