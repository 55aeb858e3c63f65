"""Where the built-in hooks write: the Powertools EMF sink and the webhooks' dead letters.

:class:`PowertoolsSink` writes the metrics hook's CloudWatch EMF documents;
:class:`SqsDeadLetter` keeps failed webhook deliveries on an SQS queue, and
without a queue they are logged (scheme and host only) and the last
:data:`LOGGED_DEAD_LETTERS` kept in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.base import SingleMetric

from stepflow.hooks.metrics import Metric
from stepflow.integrations.webhooks import MemoryDeadLetter, dead_letter_message, site_of

LOG = logging.getLogger(__name__)


class PowertoolsSink:
    """An :class:`~stepflow.hooks.metrics.EmfSink` writing CloudWatch EMF with Powertools.

    One EMF document per metric, with exactly the metric's dimensions (never
    Powertools' ``service``, whatever ``POWERTOOLS_SERVICE_NAME`` says) and the
    event's timestamp (the emit time only when the event has none). ``write``
    takes each document's line (default: stdout, which Lambda sends to CloudWatch).
    """

    def __init__(
        self, namespace: str = "StepFlow", write: Callable[[str], None] | None = None
    ) -> None:
        self.namespace = namespace
        self.write = write if write is not None else print

    def emit(self, metric: Metric) -> None:
        """Write ``metric`` as one EMF document (its own dimensions and timestamp)."""
        unit = MetricUnit.Count if metric.unit == "Count" else MetricUnit.Milliseconds
        emf = SingleMetric(namespace=self.namespace, service="")  # "": no service dimension
        emf.add_metric(name=metric.name, unit=unit, value=metric.value)
        for name, value in metric.dimensions:
            emf.add_dimension(name=name, value=value)
        if metric.timestamp is not None:
            emf.timestamp = round(metric.timestamp * 1000)  # EMF's epoch milliseconds
        self.write(json.dumps(emf.serialize_metric_set(), separators=(",", ":")))


class SqsDeadLetter:
    """A :class:`~stepflow.integrations.webhooks.DeadLetter` on an SQS queue."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def put(self, record: dict[str, Any]) -> None:
        """Send ``record`` to the queue, its body cut to fit SQS (raises if SQS refuses it)."""
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=dead_letter_message(record))


LOGGED_DEAD_LETTERS = 100
"""How many failed deliveries a process without a dead-letter queue keeps in memory."""


class _LoggedDeadLetter(MemoryDeadLetter):
    """No dead-letter queue configured: log the failed delivery, keep the last ones in memory.

    Only the target's scheme and host are logged (its path may be its secret).
    """

    def __init__(self, capacity: int = LOGGED_DEAD_LETTERS) -> None:
        super().__init__([], capacity)

    def put(self, record: dict[str, Any]) -> None:
        LOG.error("webhook delivery %s to %s failed: %s", record.get("deliveryId"),
                  site_of(str(record.get("url", ""))), record.get("reason"))  # fmt: skip
        super().put(record)
