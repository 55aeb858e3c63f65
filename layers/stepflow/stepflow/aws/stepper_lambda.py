"""The stepper Lambda: consumes the transition queue and advances executions.

Each SQS record is one :class:`~stepflow.runtime.Message`. The batch goes to
:meth:`~stepflow.runtime.Stepper.handle_batch` as a whole (one commit per
execution per batch); Powertools' batch utility then reports each record: one
whose handling failed (a poison body, a held task lease, a log outage, ...) is
listed in ``batchItemFailures`` and comes back after its visibility timeout
(reaching the DLQ after ``maxReceiveCount`` deliveries); the rest of the batch
is acknowledged.

The stepper is built lazily on the first invocation by
:func:`stepflow.aws.wiring.build` from the environment's settings and reused
by the container; tests inject their own with :func:`configure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepflow.asl import StateMachine
from stepflow.aws.dynamodb_registry import DynamoDBRegistry
from stepflow.aws.settings import Settings
from stepflow.aws.sqs_bus import decode_message
from stepflow.aws.wiring import build
from stepflow.runtime import Stepper
from stepflow.runtime.registry import DefinitionCache

SERVICE = "stepflow-stepper"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)
tracer = Tracer(service=SERVICE)

Definitions = Callable[[str], StateMachine]
"""Looks up the parsed definition of a state machine ARN."""

_stepper: Stepper | None = None
_runner: Stepper | None = None


class PoisonMessageError(ValueError):
    """A record whose body is not a StepFlow message; it can never succeed."""


def configure(stepper: Stepper | None) -> None:
    """Use ``stepper`` for the following invocations (None: build one from the environment)."""
    global _stepper
    _stepper = stepper


def configure_runner(runner: Stepper | None) -> None:
    """Use ``runner`` for the tasks queue's invocations (None: build one from the environment)."""
    global _runner
    _runner = runner


def get_runner() -> Stepper:
    """The container's task runner: the wiring's runner stepper, built on first use."""
    global _runner
    if _runner is None:
        _runner = build(Settings.from_environ()).runner
    return _runner


def get_stepper() -> Stepper:
    """The container's stepper, built by :func:`build_stepper` on first use."""
    global _stepper
    if _stepper is None:
        _stepper = build_stepper()
    return _stepper


def build_stepper(
    definitions: Definitions | None = None, environ: Mapping[str, str] | None = None
) -> Stepper:
    """The transition stepper of :func:`stepflow.aws.wiring.build` on ``environ``'s settings.

    ``definitions`` replaces the registry's definition cache (tests).
    """
    stepper = build(Settings.from_environ(environ)).stepper
    if definitions is not None:
        stepper.definitions = definitions
    return stepper


def table_definitions(client: Any, table_name: str) -> Definitions:
    """The definition cache over the registry on ``table_name`` (see :class:`DefinitionCache`)."""
    return DefinitionCache(DynamoDBRegistry(table_name, client=client))


def process_records(
    records: list[dict[str, Any]], stepper: Stepper | None = None
) -> dict[str, Exception]:
    """Handle a batch of raw SQS records as one Stepper batch; failures by message id.

    Decoding is per record (a poison body fails only its record); the valid
    messages go to :meth:`Stepper.handle_batch` together, so the events of one
    execution in this batch are committed as one decision.
    """
    failures: dict[str, Exception] = {}
    messages: dict[int, str] = {}
    batch = []
    for record in records:
        record_id = str(record.get("messageId"))
        try:
            message = decode_message(str(record.get("body", "")))
        except ValueError as exc:
            metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)
            logger.error("poison message", extra={"message_id": record_id, "reason": str(exc)})
            failures[record_id] = PoisonMessageError(str(exc))
            continue
        messages[id(message)] = record_id
        batch.append(message)
    started = time.perf_counter()
    failed = (stepper or get_stepper()).handle_batch(batch)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    metrics.add_metric(name="DecisionLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    for message, error in failed:
        failures[messages[id(message)]] = error
        logger.error(
            "message failed; it will be redelivered",
            extra={
                "message_id": messages[id(message)],
                "execution_arn": message.execution_arn,
                "kind": message.kind,
                "reason": repr(error),
            },
        )
    if failed:
        metrics.add_metric(name="MessagesFailed", unit=MetricUnit.Count, value=len(failed))
    processed = len(batch) - len(failed)
    metrics.add_metric(name="MessagesProcessed", unit=MetricUnit.Count, value=processed)
    return failures


def respond(
    event: dict[str, Any], context: LambdaContext, stepper: Stepper | None = None
) -> PartialItemFailureResponse:
    """Handle the event's records as one batch and report each record's outcome.

    The outcomes and the batch processor are this call's own: ``stepflow local``
    calls the handlers from several poller threads at once.
    """
    outcomes = process_records(list(event.get("Records", [])), stepper)

    def record_handler(record: SQSRecord) -> None:
        failure = outcomes.get(record.message_id)
        if failure is not None:
            raise failure

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The Lambda entry point: returns ``{"batchItemFailures": [...]}``."""
    return respond(event, context)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def runner_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The task runner's entry point: the tasks queue's records (a batch of one).

    Each task message is claimed, run, recorded and answered with its result
    event on the transition queue (:meth:`Stepper.handle_batch` on the runner).
    """
    return respond(event, context, get_runner())
