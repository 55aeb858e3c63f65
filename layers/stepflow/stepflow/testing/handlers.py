"""Binding Task resources to Python callables: the handlers of tests and ``stepflow local``.

A handler bound to a resource (or a Lambda function name) runs instead of the
integration; a task without one goes to the ``fallback`` invoker (the
integration registry's :class:`~stepflow.integrations.IntegrationInvoker`)
when there is one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.engine.model import RunTask
from stepflow.engine.resources import ParameterCheck, describe
from stepflow.errors import StatesErrorName
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.integrations.item_reader import S3ItemSource
from stepflow.integrations.result_writer import S3ResultSink
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.item_reading import MemoryItemSource
from stepflow.runtime.map_io import ItemSource, ResultSink
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.result_writing import MemoryResultSink
from stepflow.testing.timing import NO_ANSWER, HandlerDelayedError, delayed_result

Handler = Callable[[Any], Any]

NO_HANDLER_HINT = (
    "Pass handlers={resource_or_function_name: callable}, or aws=True (or a TaskClients) "
    "to run unbound integrations against AWS (e.g. moto's mock_aws)."
)
"""How a test binds a resource that has no handler (the end of the task's cause)."""


def task_invoker(
    handlers: Mapping[str, Handler],
    fallback: TaskInvoker | None = None,
    *,
    virtual_time: bool = False,
) -> TaskInvoker:
    """A task invoker for the runtime's ``Stepper`` that runs tasks on ``handlers``.

    It takes the body of an inline task message and returns a
    :class:`~stepflow.runtime.outcome.TaskOutcome`, as the integrations do. A
    task with no handler goes to ``fallback`` (None: it fails, naming the options).
    ``virtual_time``: a handler may answer with :class:`~stepflow.testing.timing.Delay`
    (see :func:`call_handler`).
    """

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        if fallback is not None and body.get("op") is not None:  # a poll or stop of a job
            return fallback(body)
        if fallback is not None and find_handler(handlers, body["resource"], body["input"]) is None:
            return fallback(body)
        command = RunTask(
            body["task_id"],
            body["resource"],
            body["input"],
            body["state_name"],
            body.get("timeout_seconds"),
            None,
            body.get("task_token"),
            str(body.get("role_arn") or ""),
            str(body.get("execution_role") or ""),
        )
        return run_handler(handlers, command, virtual_time=virtual_time)

    return invoke


def unbound_check(handlers: Mapping[str, Handler], check: ParameterCheck) -> ParameterCheck:
    """``check`` for the tasks no handler takes.

    A bound handler replaces the integration, its checks too: it may take any parameters.
    """
    if not handlers:
        return check

    def unbound(resource: str, parameters: Any) -> str | None:
        if find_handler(handlers, resource, parameters) is not None:
            return None
        return check(resource, parameters)

    return unbound


def aws_invoker(aws: bool | TaskClients, region: str) -> TaskInvoker | None:
    """The integrations invoker of ``aws`` (None: False, no AWS).

    True: the process's credentials in ``region`` (no role assumed: a test has
    no IAM), so moto's ``mock_aws()`` serves every call; a
    :class:`~stepflow.runtime.clients.TaskClients`: its clients.
    """
    clients = aws_clients(aws, region)
    return None if clients is None else IntegrationInvoker(default_registry(), clients)


def aws_clients(aws: bool | TaskClients, region: str) -> TaskClients | None:
    """The task clients of ``aws`` (see :func:`aws_invoker`; None: False, no AWS)."""
    if aws is False:
        return None
    if aws is True:
        from stepflow.aws.role_clients import RoleClients
        from stepflow.integrations.lambda_ import LAMBDA_CONFIG

        return RoleClients(assume_roles=False, region=region, configs={"lambda": LAMBDA_CONFIG})
    if isinstance(aws, TaskClients):
        return aws
    raise TypeError(f"aws must be True, False or a TaskClients, not {aws!r}")


def map_io(
    aws: bool | TaskClients, region: str, objects: dict[tuple[str, str], bytes]
) -> tuple[ItemSource, ResultSink]:
    """A distributed Map's reader and writer: S3 with ``aws``'s clients, else ``objects``."""
    clients = aws_clients(aws, region)
    if clients is None:
        return MemoryItemSource(objects), MemoryResultSink(objects)
    return S3ItemSource(clients), S3ResultSink(clients)


def run_handler(
    handlers: Mapping[str, Handler], command: RunTask, *, virtual_time: bool = False
) -> TaskOutcome:
    """Find the handler for ``command``'s resource, call it, and capture the outcome."""
    found = find_handler(handlers, command.resource, command.input)
    if found is None:
        known = ", ".join(sorted(handlers)) or "none"
        return TaskOutcome(
            False,
            error=StatesErrorName.TASK_FAILED,
            cause=f"No handler is registered for resource {command.resource!r} "
            f"(registered: {known}). {NO_HANDLER_HINT}",
        )
    handler, payload, wrap = found
    try:
        outcome = call_handler(handler, payload, command.resource, virtual_time=virtual_time)
    except HandlerDelayedError as delayed:
        if wrap and delayed.outcome is not None:
            raise HandlerDelayedError(delayed.seconds, _invoke_response(delayed.outcome)) from None
        raise
    return _invoke_response(outcome) if wrap else outcome


def _invoke_response(outcome: TaskOutcome) -> TaskOutcome:
    """A handler's successful outcome as a ``lambda:invoke`` response (a failure as is)."""
    if not outcome.ok:
        return outcome
    return TaskOutcome.succeeded(
        {
            "ExecutedVersion": "$LATEST",
            "Payload": outcome.output,
            "SdkHttpMetadata": {"HttpStatusCode": 200},
            "SdkResponseMetadata": {},
            "StatusCode": 200,
        }
    )


def find_handler(
    handlers: Mapping[str, Handler], resource: str, payload: Any
) -> tuple[Handler, Any, bool] | None:
    """The handler bound to ``resource``, its argument, and whether to wrap its result.

    The result is wrapped as a ``lambda:invoke`` response; None if nothing is bound.

    Looked up by the resource, then without ``.waitForTaskToken``, then (for
    ``lambda:invoke``) by the ``FunctionName`` (called on ``Payload``), then by
    the function name of a Lambda ARN. A callback's result is never wrapped.
    """
    info = describe(resource)
    base = resource.removesuffix(".waitForTaskToken")
    handler = handlers.get(resource) or handlers.get(base)
    if handler is not None:
        return handler, payload, False
    if info.service != "lambda":
        return None
    if info.action == "invoke" and isinstance(payload, Mapping):
        handler = handlers.get(_function_name(str(payload.get("FunctionName", ""))))
        if handler is not None:
            return handler, payload.get("Payload"), info.pattern == "request-response"
    if info.action == "function":
        handler = handlers.get(_function_name(resource))
        if handler is not None:
            return handler, payload, False
    return None


def call_handler(
    handler: Handler, payload: Any, resource: str, *, virtual_time: bool = False
) -> TaskOutcome:
    """Call ``handler``: its JSON result is the output, an exception the task's failure.

    With ``virtual_time`` (the in-memory environment), a
    :class:`~stepflow.testing.timing.Delay` or ``NO_ANSWER`` result raises
    :class:`~stepflow.testing.timing.HandlerDelayedError` carrying the outcome due later;
    elsewhere it fails the task, naming where it works.
    """
    try:
        # A copy, as a Lambda gets its own: the payload may share structure with the
        # parsed definition (a Pass's Result) or the history, which a handler may not change.
        result = handler(copy.deepcopy(payload))
    except Exception as exc:  # a handler's failure is the task's failure
        return TaskOutcome(False, error=_error_name(exc), cause=_cause(exc))
    try:
        delayed = delayed_result(result)
    except ValueError as exc:
        return TaskOutcome(False, error=StatesErrorName.RUNTIME, cause=f"{resource!r}: {exc}")
    if delayed is not None:
        if not virtual_time:
            return TaskOutcome(
                False,
                error=StatesErrorName.RUNTIME,
                cause=f"The handler of {resource!r} answered {result!r}: Delay and NO_ANSWER "
                "take virtual time, in execute() and WorkflowEnvironment only.",
            )
        seconds, later = delayed
        outcome = None if result is NO_ANSWER else _result_outcome(later, resource, raised=True)
        raise HandlerDelayedError(seconds, outcome)
    return _result_outcome(result, resource)


def _result_outcome(result: Any, resource: str, *, raised: bool = False) -> TaskOutcome:
    """A handler's result as the task's outcome.

    ``raised``: the result of a ``Delay``, where an exception instance stands for one
    raised later (the task fails with it); returned plainly, it is a value that is not JSON.
    """
    if raised and isinstance(result, BaseException):
        return TaskOutcome(False, error=_error_name(result), cause=_cause(result))
    try:
        return TaskOutcome(True, output=json.loads(json.dumps(result)))
    except (TypeError, ValueError) as exc:
        return TaskOutcome(
            False,
            error=StatesErrorName.RUNTIME,
            cause=f"The handler of {resource!r} returned a value that is not JSON: {exc}",
        )


def _function_name(arn_or_name: str) -> str:
    if ":function:" in arn_or_name:
        return arn_or_name.split(":function:")[1].split(":")[0]
    return arn_or_name


def _error_name(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    return error if isinstance(error, str) else type(exc).__name__


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, str) else str(exc)
