"""``arn:aws:states:::states:startExecution``: a Task starts an execution of this StepFlow.

Every pattern AWS offers: request-response (``{"ExecutionArn", "StartDate"}``),
``.waitForTaskToken`` (the child, or anyone, answers with SendTaskSuccess),
``.sync`` and ``.sync:2`` (the child's end is reported to the task by the
runtime, never polled: see :mod:`stepflow.runtime.nested`). The start itself
goes through an injected :class:`~stepflow.runtime.nested.ExecutionStarter`
(the API's StartExecution, in process); ``aws-sdk:sfn`` stays the plain SDK call.
"""

from __future__ import annotations

import json
import uuid
from email.utils import formatdate
from typing import Any

from stepflow.data.serialize import dumps
from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.base import TaskRequest, unknown_action
from stepflow.integrations.errors import ErrorNames
from stepflow.integrations.metadata import sdk_metadata
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.nested import (
    ACTION,
    SERVICE,
    ExecutionStarter,
    NestedStart,
    StartRefusedError,
    epoch_millis,
)
from stepflow.runtime.outcome import TaskOutcome

ERRORS = ErrorNames("StepFunctions", "AWSStepFunctions")
"""``StepFunctions.<Code>Exception`` with the SDK for Java v1 cause, as AWS names them."""

PARAMETERS = frozenset({"StateMachineArn", "Input", "Name", "TraceHeader"})


class StatesStartExecution:
    """The ``states`` integration: ``startExecution`` in all four patterns.

    ``starter`` None (the bare default registry) fails every task with
    ``States.Runtime``: a process that runs tasks wires its API's starter in
    (:func:`stepflow.integrations.catalog.with_starter`).
    """

    service = SERVICE
    patterns: frozenset[Pattern] = frozenset(
        {"request-response", "wait-for-token", "sync", "sync2"}
    )

    def __init__(self, starter: ExecutionStarter | None = None) -> None:
        self.starter = starter

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Only ``startExecution`` (other Step Functions APIs: ``aws-sdk:sfn``)."""
        return unknown_action(SERVICE, action, (ACTION,), "sfn")

    def parameters_problem(self, action: str, parameters: Any) -> str | None:
        """What AWS's model refuses before the task is scheduled (types of the members)."""
        if not isinstance(parameters, dict):
            return "The Parameters must be a JSON object"
        for member in ("StateMachineArn", "Name", "TraceHeader"):
            value = parameters.get(member)
            if value is not None and not isinstance(value, str):
                return f"The value of the field '{member}' must be a string"
        unknown = sorted(set(parameters) - PARAMETERS)
        if unknown:
            return f"The field '{unknown[0]}' is not supported by Step Functions"
        return None

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Start the execution; ``.sync``/``.sync:2`` wait for its end (a handle, no poll)."""
        if self.starter is None:
            return TaskOutcome.failed(
                StatesErrorName.RUNTIME,
                "StepFlow cannot start nested executions here: no execution starter is wired.",
            )
        params = request.parameters if isinstance(request.parameters, dict) else {}
        arn = params.get("StateMachineArn")
        if not isinstance(arn, str):
            return refused(
                StartRefusedError(
                    "ValidationException",
                    "1 validation error detected: Value null at 'stateMachineArn' failed to "
                    "satisfy constraint: Member must not be null",
                )
            )
        text = execution_input(params.get("Input"))
        if text is None:
            return refused(StartRefusedError("InvalidExecutionInput", _bad_input(params)))
        name = params.get("Name")
        sync = request.pattern in ("sync", "sync2")
        caller = (
            {"arn": request.execution_arn, "task_id": request.task_id, "pattern": request.pattern}
            if sync
            else None
        )
        start = NestedStart(
            state_machine_arn=arn,
            input=text,
            name=name if isinstance(name, str) else default_name(request),
            caller=caller,
            principal=request.role_arn or request.execution_role,
            parent_arn=request.execution_arn,
            task_id=request.task_id,
        )
        try:
            started = self.starter.start(start)
        except StartRefusedError as exc:
            return refused(exc)
        output = start_response(started.execution_arn, started.start_date)
        if sync:
            return TaskOutcome.started(output, {"ExecutionArn": started.execution_arn})
        return TaskOutcome.succeeded(output)


def start_response(execution_arn: str, start_date: float) -> dict[str, Any]:
    """StartExecution's response as the task sees it: PascalCase, the SDK's HTTP metadata.

    (The metadata describes the API's JSON answer; no HTTP request is made.)
    """
    body = dumps({"executionArn": execution_arn, "startDate": start_date})
    headers = {
        "x-amzn-RequestId": str(uuid.uuid4()),
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(body.encode())),
        "Date": formatdate(start_date, usegmt=True),
    }
    answer = {"ResponseMetadata": {"HTTPHeaders": headers, "HTTPStatusCode": 200}}
    metadata = sdk_metadata(answer)
    metadata["SdkResponseMetadata"] = {"RequestId": headers["x-amzn-RequestId"]}
    return {
        "ExecutionArn": execution_arn,
        **metadata,
        "StartDate": epoch_millis(start_date),
    }


def execution_input(value: Any) -> str | None:
    """The child's input as JSON text: a string is taken as JSON text, null is ``{}``.

    None: a string that is not JSON (AWS: ``InvalidExecutionInput``).
    """
    if value is None:
        return "{}"
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return None
        return value
    return dumps(value)


def _bad_input(params: dict[str, Any]) -> str:
    text = str(params.get("Input"))
    shown = text if len(text) <= 256 else text[:256] + "..."
    return f"Invalid State Machine Execution Input: '{shown}'"


def default_name(request: TaskRequest) -> str:
    """A name for a child the Task does not name: one per task attempt.

    Stable for the attempt (a re-run of the same attempt finds the child it started,
    idempotently); a retry or a redrive is a new attempt, so a new child.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request.execution_arn}#{request.task_id}"))


def refused(exc: StartRefusedError) -> TaskOutcome:
    """The task's failure for a refused start: ``StepFunctions.<Code>Exception``, v1 cause."""
    code = exc.code if exc.code.endswith("Exception") else f"{exc.code}Exception"
    return TaskOutcome.failed(
        f"{ERRORS.prefix}.{code}",
        ERRORS.cause(exc.message, 400, exc.code, str(uuid.uuid4())),
    )


INTEGRATIONS = (StatesStartExecution(),)
