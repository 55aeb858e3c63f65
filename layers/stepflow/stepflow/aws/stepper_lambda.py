"""The stepper Lambda: consumes the transition queue and advances executions.

Each SQS record is one :class:`~stepflow.runtime.Message`. The batch goes to
:meth:`~stepflow.runtime.Stepper.handle_batch` as a whole (one commit per
execution per batch); Powertools' batch utility then reports each record: one
whose handling failed (a poison body, a held task lease, a log outage, ...) is
listed in ``batchItemFailures`` and comes back after its visibility timeout
(reaching the DLQ after ``maxReceiveCount`` deliveries), or after a short back-off
if its error is transient (:mod:`stepflow.aws.redelivery`); the rest of the batch
is acknowledged.

Every record is verified before anything is decided
(:mod:`stepflow.runtime.signing`): a record that is not a message StepFlow
signed (unsigned, malformed, another key, altered) is dropped: acknowledged,
never retried into the DLQ, logged with its reason only (no execution data)
and counted in the ``ForgedMessages`` metric. The effects the batch's cells performed,
replayed and failed are counted too (:func:`add_effect_metrics`).

The stepper and the signer are built lazily on the first invocation by
:func:`stepflow.aws.wiring.build` from the environment's settings and reused
by the container (no signing key is a startup error: the invocation fails);
tests inject their own with :func:`configure`.
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
from stepflow.aws.redelivery import hasten
from stepflow.aws.settings import Settings
from stepflow.aws.sqs_bus import SQSBus, decode_message
from stepflow.aws.wiring import Wiring, build
from stepflow.runtime import Stepper
from stepflow.runtime.effect_tally import EffectTally, tallying
from stepflow.runtime.payloads import (
    PayloadCorruptError,
    PayloadNotFoundError,
    PayloadStore,
    PayloadStoreUnavailableError,
)
from stepflow.runtime.registry import DefinitionCache
from stepflow.runtime.signing import ForgedMessageError, MessageSigner

SERVICE = "stepflow-stepper"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)
tracer = Tracer(service=SERVICE)

Definitions = Callable[[str], StateMachine]
"""Looks up the parsed definition of a state machine ARN."""

DECISION_MARGIN_MS = 5_000
"""Time kept for one decision's reads, commit and sends, on top of its evaluation budget."""

_stepper: Stepper | None = None
_runner: Stepper | None = None
_signer: MessageSigner | None = None
_messages: PayloadStore | None = None
_wiring: Wiring | None = None
_configured = False


def configure(
    stepper: Stepper | None,
    signer: MessageSigner | None = None,
    messages: PayloadStore | None = None,
) -> None:
    """Use ``stepper``, ``signer`` and ``messages`` for the following invocations.

    ``messages`` holds the queue bodies over SQS's limit (:mod:`stepflow.runtime.offload`).
    None: build them from the environment (the signer from its key settings).
    """
    global _stepper, _signer, _messages, _wiring, _configured
    _stepper, _signer, _messages = stepper, signer, messages
    _configured = stepper is not None or messages is not None
    if stepper is None:
        _wiring = None


def get_message_store() -> PayloadStore | None:
    """The store of offloaded queue bodies: the configured one, else the wiring's.

    Only :func:`configure` decides: the stepper the wiring builds on first use does not.
    """
    if _configured:
        return _messages
    return _container().message_store


def get_signer() -> MessageSigner:
    """The container's message signer (the wiring's), built on first use."""
    global _signer
    if _signer is None:
        _signer = _container().signer
    return _signer


def _container() -> Wiring:
    global _wiring
    if _wiring is None:
        _wiring = build(Settings.from_environ())
    return _wiring


def configure_runner(runner: Stepper | None) -> None:
    """Use ``runner`` for the tasks queue's invocations (None: build one from the environment)."""
    global _runner
    _runner = runner


def get_runner() -> Stepper:
    """The container's task runner: the wiring's runner stepper, built on first use."""
    global _runner
    if _runner is None:
        _runner = _container().runner
    return _runner


def get_stepper() -> Stepper:
    """The container's stepper (the wiring's), built on first use."""
    global _stepper
    if _stepper is None:
        _stepper = _container().stepper
    return _stepper


class _WiredStore:
    """:func:`get_message_store`, looked up only when a record is a reference."""

    def put(self, data: bytes) -> str:
        return self._store().put(data)

    def get(self, key: str) -> bytes:
        return self._store().get(key)

    def get_at_most(self, key: str, max_bytes: int) -> bytes:
        store = self._store()
        bounded = getattr(store, "get_at_most", None)
        return bytes(bounded(key, max_bytes)) if callable(bounded) else store.get(key)

    def _store(self) -> PayloadStore:
        store = get_message_store()
        if store is None:  # no bucket configured: retried, then dead-lettered
            raise PayloadStoreUnavailableError("no payload store for offloaded messages")
        return store


_WIRED_STORE = _WiredStore()


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


def table_definitions(
    client: Any, table_name: str, definitions: PayloadStore | None = None
) -> Definitions:
    """The definition cache over the registry on ``table_name`` (see :class:`DefinitionCache`).

    ``definitions`` holds the definitions too large for an item.
    """
    return DefinitionCache(DynamoDBRegistry(table_name, client=client, definitions=definitions))


def process_records(
    records: list[dict[str, Any]],
    stepper: Stepper | None = None,
    signer: MessageSigner | None = None,
    has_time: Callable[[], bool] | None = None,
    remaining: Callable[[], float] | None = None,
    stored: PayloadStore | None = None,
) -> dict[str, Exception]:
    """Handle a batch of raw SQS records as one Stepper batch; failures by message id.

    Each record is verified on its own: a forged one is dropped (it is not a
    failure, so it is acknowledged); the authentic messages go to
    :meth:`Stepper.handle_batch` together, so the events of one execution in
    this batch are committed as one decision. ``has_time`` says whether another
    execution may still be started (see :func:`time_left`); ``remaining``, the
    invocation's seconds left (see :func:`seconds_left`). A record carrying a reference
    to a stored body (:mod:`stepflow.runtime.offload`) is read from ``stored``; one
    whose body cannot be read now fails alone, and is redelivered.
    """
    verifier = signer or get_signer()
    runner = stepper or get_stepper()
    store = stored if stored is not None else _WIRED_STORE
    failures: dict[str, Exception] = {}
    messages: dict[int, str] = {}
    batch = []
    forged = 0
    for record in records:
        record_id = str(record.get("messageId"))
        try:
            message = decode_message(str(record.get("body", "")), verifier, store)
        except ForgedMessageError as exc:
            forged += 1
            logger.warning(
                "forged message dropped", extra={"message_id": record_id, "reason": exc.reason}
            )
            continue
        except (PayloadNotFoundError, PayloadStoreUnavailableError, PayloadCorruptError) as exc:
            failures[record_id] = exc
            logger.error(
                "stored message body unreadable; it will be redelivered",
                extra={"message_id": record_id, "reason": repr(exc)},
            )
            continue
        messages[id(message)] = record_id
        batch.append(message)
    if forged:
        metrics.add_metric(name="ForgedMessages", unit=MetricUnit.Count, value=forged)
    started = time.perf_counter()
    with tallying() as tally:
        failed = runner.handle_batch(batch, has_time, remaining)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    metrics.add_metric(name="DecisionLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    if tally.tasks:
        add_effect_metrics(tally)
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


def add_effect_metrics(tally: EffectTally) -> None:
    """The batch's cell effects as metrics (only for a batch that ran a cell's effects).

    ``EffectsPerformed`` (handler calls), ``EffectsReplayed`` (recorded results returned
    instead), ``EffectsFailed`` (performed and failed), ``CompensationsRun`` (saga
    compensations that requested an effect). No dimension beyond the service: effect
    names are code, but one metric per name and service would multiply the custom
    metrics billed; the history's events name each effect.
    """
    metrics.add_metric(name="EffectsPerformed", unit=MetricUnit.Count, value=tally.performed)
    metrics.add_metric(name="EffectsReplayed", unit=MetricUnit.Count, value=tally.replayed)
    metrics.add_metric(name="EffectsFailed", unit=MetricUnit.Count, value=tally.failed)
    metrics.add_metric(name="CompensationsRun", unit=MetricUnit.Count, value=tally.compensations)


def time_left(context: Any, stepper: Stepper) -> Callable[[], bool] | None:
    """Whether the invocation can still afford one more decision, from the Lambda context.

    One decision may evaluate for ``decision_budget_seconds``, plus its reads
    and writes: a new one is started only while more than that, and
    :data:`DECISION_MARGIN_MS`, remain. None when the context has no clock
    (tests; ``stepflow local``'s contexts have one: :mod:`stepflow.local.invocation`).
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    reserve = stepper.limits.decision_budget_seconds * 1000 + DECISION_MARGIN_MS
    asked = [0]

    def has_time() -> bool:
        asked[0] += 1  # the first message always goes ahead: every invocation makes progress
        return asked[0] == 1 or bool(remaining() > reserve)

    return has_time


def seconds_left(context: Any) -> Callable[[], float] | None:
    """The invocation's seconds left, from the Lambda context (None: no clock)."""
    left = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(left):
        return None
    return lambda: float(left()) / 1000.0


def respond(
    event: dict[str, Any],
    context: LambdaContext,
    stepper: Stepper | None = None,
    *,
    soon: bool = False,
) -> PartialItemFailureResponse:
    """Handle the event's records as one batch and report each record's outcome.

    The outcomes and the batch processor are this call's own: ``stepflow local``
    calls the handlers from several poller threads at once. ``soon``: a record that
    failed on a transient error comes back after a short back-off, not the queue's
    visibility timeout (:mod:`stepflow.aws.redelivery`; the transition queue's).
    """
    chosen = stepper or get_stepper()
    records = list(event.get("Records", []))
    outcomes = process_records(
        records, chosen, has_time=time_left(context, chosen), remaining=seconds_left(context)
    )
    if soon and outcomes and isinstance(chosen.bus, SQSBus):
        hastened = hasten(chosen.bus.client, records, outcomes)
        if hastened:
            metrics.add_metric(name="MessagesRetriedSoon", unit=MetricUnit.Count, value=hastened)

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
    return respond(event, context, soon=True)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False, capture_error=False)
def runner_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """The task runner's entry point: the tasks queue's records (up to ten).

    Each task message is claimed, run, recorded and answered with its result
    event on the transition queue (:meth:`Stepper.handle_batch` on the runner),
    the batch's tasks side by side, each result sent as soon as its task ends.
    """
    return respond(event, context, get_runner())
