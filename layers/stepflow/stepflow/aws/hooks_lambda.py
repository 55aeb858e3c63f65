"""The hooks dispatcher: the log table's stream -> hooks (``functions/hooks/handler.handler``).

No hook runs inside a commit: this Lambda function (an event source mapping on
the table's stream; ``stepflow local``: :mod:`stepflow.local.stream_poller`)
reads the records after the fact, turns them into hook events
(:mod:`stepflow.aws.stream_records`) and hands each record's events to a
:class:`~stepflow.hooks.Dispatcher` built from the settings
(``STEPFLOW_HOOKS``, :func:`stepflow.aws.wiring.hooks_from_settings`).

Partial batch failures: a record whose hooks failed is reported in
``batchItemFailures`` by its sequence number, and so is every record after it
(a batch is one shard, in stream order: Lambda resumes from the lowest one, so
no later record is delivered before an earlier one succeeded). When the log
cannot be read now for an execution (an outage of the table or the payload
store), the batch fails from that execution's first record on (the records
before it are dispatched). A malformed or unreadable (poison) record is logged
and skipped: it never blocks the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.stream_records import (
    MalformedRecordError,
    RecordHooks,
    StreamDecoder,
    sequence_number,
)
from stepflow.aws.wiring import Wiring, build, hooks_from_settings
from stepflow.hooks import Dispatcher, Hook, HookFailedError

LOG = logging.getLogger(__name__)
SERVICE = "stepflow-hooks"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)


@dataclass(slots=True)
class HooksRuntime:
    """What one container dispatches with: the stream decoder and the dispatcher."""

    decoder: StreamDecoder
    dispatcher: Dispatcher


def runtime_from(wiring: Wiring, extra: Sequence[Hook] = ()) -> HooksRuntime:
    """The settings' hooks (then ``extra``, e.g. ``stepflow local``'s Python hooks)."""
    hooks = [*hooks_from_settings(wiring.settings, wiring.client), *extra]
    return HooksRuntime(StreamDecoder(wiring.log), Dispatcher(hooks))


_runtime: HooksRuntime | None = None


def configure(runtime: HooksRuntime | None) -> None:
    """Use ``runtime`` for the following invocations (None: build one from the environment)."""
    global _runtime
    _runtime = runtime


def get_runtime() -> HooksRuntime:
    """The container's runtime, built from the environment on first use."""
    global _runtime
    if _runtime is None:
        _runtime = runtime_from(build())
    return _runtime


def process(
    records: Sequence[Mapping[str, Any]],
    runtime: HooksRuntime,
    remaining: Callable[[], float] | None = None,
) -> list[str]:
    """Dispatch the batch's records in order; the sequence numbers to report failed.

    Then the hooks that batch per invocation (the live pushes) run, within
    ``remaining()`` seconds (the invocation's time left).
    """
    try:
        decoded = runtime.decoder.decode(records)
    except Exception:  # a bug in the decoder (it raises nothing else): retry the batch
        LOG.exception("could not decode a batch of %d record(s)", len(records))
        return _all_numbers(records)
    failed: list[str] = []
    for item in decoded:
        # Stream order: nothing after a failed record goes ahead of it.
        if failed or item.unavailable or not _dispatched(runtime.dispatcher, item):
            failed.append(item.sequence_number)
    runtime.dispatcher.end_batch(remaining)
    return failed


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: ``{"batchItemFailures": [{"itemIdentifier": <seq>}, ...]}``.

    Metrics: ``StreamRecords`` (records received) and ``StreamRecordsFailed`` (reported).
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        logger.warning("an event without Records: nothing to dispatch")
        records = []
    runtime = get_runtime()
    forget_facts(runtime)  # a head read in an earlier invocation may be stale (a redrive since)
    left = getattr(context, "get_remaining_time_in_millis", None)
    remaining = (lambda: left() / 1000) if callable(left) else None
    failed = process(records, runtime, remaining) if records else []
    metrics.add_metric(name="StreamRecords", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(name="StreamRecordsFailed", unit=MetricUnit.Count, value=len(failed))
    if failed:
        logger.warning("hooks failed", extra={"failed": len(failed), "records": len(records)})
    return {"batchItemFailures": [{"itemIdentifier": number} for number in failed]}


def forget_facts(runtime: HooksRuntime) -> None:
    """Drop the execution facts the built-in hooks cached in an earlier invocation."""
    from stepflow.aws.hooks_wiring import log_facts

    log = getattr(runtime.decoder, "log", None)
    if isinstance(log, DynamoDBLog):
        log_facts(log).clear()


def _dispatched(dispatcher: Dispatcher, item: RecordHooks) -> bool:
    if not item.events:
        return True
    try:
        dispatcher.dispatch(item.events)
    except HookFailedError as exc:
        LOG.warning("record %s: hooks failed: %s", item.sequence_number, exc.failed)
        return False
    return True


def _all_numbers(records: Sequence[Mapping[str, Any]]) -> list[str]:
    numbers = []
    for record in records:
        try:
            numbers.append(sequence_number(record))
        except (MalformedRecordError, AttributeError):
            continue
    return numbers
