"""Conformance runner: ``run(definition, input)`` over ``stepflow.testing.execute``.

Used by ``../shared/conformance/sfn_oracle.py check --runner tests/conformance/runner.py:run``
and by ``test_conformance.py`` and ``test_parity.py``. :data:`HANDLERS` binds
the Task resources the cases call (``needs``) to stand-ins: a Lambda function
echoes its payload, an SQS message is answered with its body, anything else
with ``{}``. Callback resources (``.waitForTaskToken``) are answered through
SendTaskSuccess with the handler's result, as a worker would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepflow.asl import DefinitionError
from stepflow.testing import ExecutionResult, Handler, execute, open_environment

START = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def _lambda(request: Any) -> Any:
    return request


def _sqs(request: Any) -> Any:
    return request.get("MessageBody") if isinstance(request, dict) else request


def _empty(_request: Any) -> Any:
    return {}


SERVICES = (
    "sns:publish",
    "s3:getObject",
    "s3:putObject",
    "apigateway:invoke",
    "dynamodb:putItem",
    "events:putEvents",
    "aws-sdk:s3:getObject",
    "aws-sdk:s3:putObject",
    "aws-sdk:s3:listBuckets",
    "aws-sdk:dynamodb:putItem",
    "aws-sdk:secretsmanager:listSecrets",
)

HANDLERS: dict[str, Handler] = {
    "arn:aws:states:::lambda:invoke": _lambda,
    "arn:aws:states:::sqs:sendMessage": _sqs,
    **{f"arn:aws:states:::{service}": _empty for service in SERVICES},
}
"""Stand-ins for the resources the dev cases call (keyed without ``.waitForTaskToken``)."""


def run(definition: dict[str, Any], input: Any, *, durable: bool | str = False) -> dict[str, Any]:
    """Run one case and report it in the oracle's runner shape."""
    try:
        result = execute(
            definition,
            input,
            name="conformance",
            start_time=START,
            durable=durable,
            handlers=HANDLERS,
        )
    except DefinitionError as exc:
        return invalid(exc)
    return report_of(result)


def run_moto(definition: dict[str, Any], input: Any) -> dict[str, Any]:
    """The same case on the DynamoDB log on moto, every message through the stepper Lambda."""
    return run(definition, input, durable=True)


def run_all(cases: list[dict[str, Any]], *, durable: bool | str) -> list[dict[str, Any]]:
    """Run every case, one after the other, in one environment on backend ``durable``.

    One environment (one moto set-up) for all cases keeps the durable run
    quick; each case is its own state machine and execution, and the virtual
    clock moves on the same way on every backend.
    """
    reports = []
    with open_environment(durable, handlers=HANDLERS, start_time=START) as env:
        for i, case in enumerate(cases):
            try:
                arn = env.start(
                    case["definition"], case["input"], name=f"case-{i}", state_machine=f"case-{i}"
                )
            except DefinitionError as exc:
                reports.append(invalid(exc))
                continue
            env.run(arn)
            reports.append(report_of(env.result(arn)))
    return reports


def report_of(result: ExecutionResult) -> dict[str, Any]:
    """An execution's result in the oracle's runner shape."""
    return {
        "status": result.status,
        "output": result.output,
        "error": result.error,
        "cause": result.cause,
        "history": result.history,
    }


def invalid(exc: DefinitionError) -> dict[str, Any]:
    """A definition StepFlow rejects, in the runner shape."""
    return {
        "status": "FAILED",
        "error": "States.Runtime",
        "cause": str(exc),
        "output": None,
        "history": [],
    }
