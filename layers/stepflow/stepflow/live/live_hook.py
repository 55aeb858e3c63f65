"""The ``live`` hook (``STEPFLOW_HOOKS=...,live``): pushes new history to WebSocket subscribers.

It runs on the hooks dispatcher, so the stream is decoded once (by
:mod:`stepflow.aws.stream_records`). :meth:`LiveHook.handle` only notes which
executions a record is of; at the end of the batch (:meth:`LiveHook.end_batch`,
called by :func:`stepflow.aws.hooks_lambda.process`) each execution is pushed
once: one consistent ``GetItem`` tells whether anyone subscribed at all
(:meth:`~stepflow.live.websocket.Subscriptions.watched`), then one ``Query``
per execution finds its subscribers. The hook never raises: a failed push is
logged and counted (metric ``LivePushFailures``); the next push, or the client
subscribing again with ``after``, resumes it. So it never makes the stream
redeliver a batch to the other hooks (webhooks, EventBridge).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.hooks import HookEvent, HookKind
from stepflow.live.push import api_poster
from stepflow.live.websocket import ENDPOINT_ENV_VAR, Subscriptions

LOG = logging.getLogger(__name__)

__all__ = ["RESERVE_SECONDS", "LiveHook", "live_hook_factory"]

RESERVE_SECONDS = 5.0
"""The pushes stop this long before the invocation's end (the next batch resumes them)."""
_metrics = Metrics(namespace="StepFlow", service="stepflow-hooks")


def _count_failures(count: int) -> None:
    _metrics.add_metric(name="LivePushFailures", unit=MetricUnit.Count, value=count)


class LiveHook:
    """Pushes each execution's new history events to its subscribers (see the module doc)."""

    name = "live"
    kinds: frozenset[HookKind] | None = None

    def __init__(
        self,
        subscriptions: Subscriptions,
        count_failures: Callable[[int], None] = _count_failures,
    ) -> None:
        self.subscriptions = subscriptions
        self.count_failures = count_failures
        self._pending: dict[str, None] = {}

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Note the executions of ``events``: they are pushed at the end of the batch."""
        for event in events:
            self._pending[event.execution.execution_arn] = None

    def end_batch(self, remaining: Callable[[], float] | None = None) -> None:
        """Push every execution of the batch once, within ``remaining()`` seconds; never raises."""
        arns, self._pending = list(self._pending), {}
        subscriptions = self.subscriptions
        failed = subscriptions.failed
        try:
            if not arns or not subscriptions.watched():
                return
            deadline = None
            if remaining is not None:
                deadline = subscriptions.monotonic() + remaining() - RESERVE_SECONDS
            for arn in arns:
                subscribers = subscriptions.subscribers(arn)
                if subscribers:
                    subscriptions.push(arn, subscribers, deadline)
        except Exception:  # reading the subscriptions failed: the next push resumes
            LOG.warning("live pushes of %d execution(s) failed", len(arns), exc_info=True)
            subscriptions.failed += 1
        finally:
            if subscriptions.failed > failed:
                self.count_failures(subscriptions.failed - failed)


def live_hook_factory(settings: Any, clients: Callable[[str], Any]) -> LiveHook:
    """The ``live`` hook of the hooks dispatcher (``STEPFLOW_LIVE_ENDPOINT`` names the API).

    ``settings`` are the process's (table, bucket, region); ``clients`` a boto3 client
    factory (a :class:`~stepflow.aws.wiring.Wiring`'s ``client``: its log is used).
    """
    endpoint = os.environ.get(ENDPOINT_ENV_VAR, "")
    if not endpoint.startswith(("https://", "http://")):
        raise ValueError(f"the live hook needs {ENDPOINT_ENV_VAR}: the WebSocket API's URL")
    wiring = getattr(clients, "__self__", None)
    log = getattr(wiring, "log", None)
    if not isinstance(log, DynamoDBLog):
        bucket = settings.payload_bucket
        log = DynamoDBLog(
            settings.table_name,
            client=clients("dynamodb"),
            payloads=S3PayloadStore(bucket, client=clients("s3")) if bucket else None,
        )
    management = boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name=settings.region
    )
    return LiveHook(
        Subscriptions(
            settings.table_name,
            clients("dynamodb"),
            log,
            api_poster(management),
        )
    )
