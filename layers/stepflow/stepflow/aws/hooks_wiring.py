"""The built-in hooks, assembled from settings: :func:`hooks_from_settings`.

Settings (environment variables; the CDK stack sets them on the hooks function):

- ``STEPFLOW_HOOKS``: the hooks on, comma-separated: ``metrics``, ``eventbridge``,
  ``webhooks``, exactly so (names are case-sensitive everywhere: ``Metrics`` is
  refused as unknown). Default: none, as :class:`~stepflow.aws.settings.Settings`'
  (the CDK stack sets ``metrics`` unless told otherwise);
- ``STEPFLOW_EVENT_BUS`` (default ``default``), ``STEPFLOW_EVENT_SOURCE`` (default
  ``stepflow.states``: EventBridge refuses ``aws.*`` sources from an account),
  ``STEPFLOW_EVENT_BUS_EXPRESS`` (``true``: EXPRESS executions send events too; AWS's
  do not);
- ``STEPFLOW_WEBHOOK_URLS``: comma-separated URLs, or a JSON list of URLs (the
  form for a URL holding a comma) and ``{"url", "kinds", "stateMachines",
  "secretArn"}`` objects (``secretArn``, or ``secret`` for ``stepflow local``:
  that target's own signing secret); ``STEPFLOW_WEBHOOK_KINDS`` and
  ``STEPFLOW_WEBHOOK_STATE_MACHINES`` filter the URLs given as strings; an
  unknown kind is refused;
- ``STEPFLOW_WEBHOOK_SECRET_ARN`` (a Secrets Manager secret whose string signs
  deliveries) or ``STEPFLOW_WEBHOOK_SECRET`` (the secret itself: ``stepflow local``,
  tests); ``STEPFLOW_WEBHOOK_DLQ_URL`` (the SQS dead letter; empty: deliveries
  that fail are logged, scheme and host only, and the last 100 kept in memory);
  ``STEPFLOW_WEBHOOK_ATTEMPTS``; ``STEPFLOW_WEBHOOK_BUDGET_SECONDS`` (default 60:
  the most time webhooks may take per 5 minutes) and
  ``STEPFLOW_WEBHOOK_COOLDOWN_SECONDS`` (default 300: how long a target whose
  retries failed is skipped);
- ``STEPFLOW_METRICS_NAMESPACE`` (default ``StepFlow``),
  ``STEPFLOW_METRICS_PER_STATE_MACHINE`` (default true).

The log head (``TABLE_NAME``, ``PAYLOAD_BUCKET``) gives an execution's start and
input when a batch does not hold its ``ExecutionStarted``.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.base import SingleMetric
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.hook_eventbridge import EventBridgeHook
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.settings import Settings
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.hooks import Hook
from stepflow.hooks.metrics import Metric, MetricsHook
from stepflow.hooks.support import CachedFacts, ExecutionFacts, FactsLookup
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.integrations.http_port import Urllib3Http
from stepflow.integrations.webhook_targets import parse_targets
from stepflow.integrations.webhooks import (
    DeadLetter,
    MemoryDeadLetter,
    WebhookHook,
    WebhookTarget,
    dead_letter_message,
    site_of,
)

LOG = logging.getLogger(__name__)

HOOK_NAMES = ("metrics", "eventbridge", "webhooks")

Clients = Mapping[str, Any] | Callable[[str], Any]
"""boto3 clients by service name: a mapping, or a function (e.g. ``Wiring.client``)."""


def _alias(*names: str) -> Any:
    return AliasChoices(*names)


class HookSettings(BaseSettings):
    """The hooks' settings (module doc), read from the environment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    hooks: str = Field(default="", validation_alias=_alias("STEPFLOW_HOOKS", "hooks"))
    """As :attr:`stepflow.aws.settings.Settings.hooks` (same default: none)."""
    table_name: str = Field(default="", validation_alias=_alias("TABLE_NAME", "table_name"))
    payload_bucket: str = Field(
        default="", validation_alias=_alias("PAYLOAD_BUCKET", "payload_bucket")
    )
    region: str = Field(
        default="us-east-1", validation_alias=_alias("AWS_REGION", "AWS_DEFAULT_REGION", "region")
    )
    event_bus: str = Field(
        default="default", validation_alias=_alias("STEPFLOW_EVENT_BUS", "event_bus")
    )
    event_source: str = Field(
        default="stepflow.states", validation_alias=_alias("STEPFLOW_EVENT_SOURCE", "event_source")
    )
    event_bus_express: bool = Field(
        default=False, validation_alias=_alias("STEPFLOW_EVENT_BUS_EXPRESS", "event_bus_express")
    )
    webhook_urls: str = Field(
        default="", validation_alias=_alias("STEPFLOW_WEBHOOK_URLS", "webhook_urls")
    )
    webhook_kinds: str = Field(
        default="", validation_alias=_alias("STEPFLOW_WEBHOOK_KINDS", "webhook_kinds")
    )
    webhook_state_machines: str = Field(
        default="",
        validation_alias=_alias("STEPFLOW_WEBHOOK_STATE_MACHINES", "webhook_state_machines"),
    )
    webhook_secret_arn: str = Field(
        default="", validation_alias=_alias("STEPFLOW_WEBHOOK_SECRET_ARN", "webhook_secret_arn")
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=_alias("STEPFLOW_WEBHOOK_SECRET", "webhook_secret")
    )
    webhook_dlq_url: str = Field(
        default="", validation_alias=_alias("STEPFLOW_WEBHOOK_DLQ_URL", "webhook_dlq_url")
    )
    webhook_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        validation_alias=_alias("STEPFLOW_WEBHOOK_ATTEMPTS", "webhook_attempts"),
    )
    webhook_budget_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias=_alias("STEPFLOW_WEBHOOK_BUDGET_SECONDS", "webhook_budget_seconds"),
    )
    webhook_cooldown_seconds: float = Field(
        default=300.0,
        ge=0,
        validation_alias=_alias("STEPFLOW_WEBHOOK_COOLDOWN_SECONDS", "webhook_cooldown_seconds"),
    )
    metrics_namespace: str = Field(
        default="StepFlow",
        validation_alias=_alias("STEPFLOW_METRICS_NAMESPACE", "metrics_namespace"),
    )
    metrics_per_state_machine: bool = Field(
        default=True,
        validation_alias=_alias("STEPFLOW_METRICS_PER_STATE_MACHINE", "metrics_per_state_machine"),
    )

    @property
    def enabled(self) -> list[str]:
        """The hook names on, in :data:`HOOK_NAMES` order; raises ValueError for an unknown one.

        Names are case-sensitive, as in :func:`stepflow.aws.wiring.hooks_from_settings`.
        """
        names = {n.strip() for n in self.hooks.split(",") if n.strip()}
        unknown = names - set(HOOK_NAMES)
        if unknown:
            raise ValueError(f"STEPFLOW_HOOKS names unknown hooks: {sorted(unknown)}")
        return [n for n in HOOK_NAMES if n in names]

    def targets(self, secret_of: Callable[[str], bytes] | None = None) -> list[WebhookTarget]:
        """The webhook targets (JSON list, or comma-separated URLs with the shared filters).

        A JSON list holds URLs (strings: the form for a URL with a comma) or
        objects; an object may carry its own signing secret: ``secretArn`` (read
        with ``secret_of``) or ``secret`` (the value: ``stepflow local``, tests).
        Raises ValueError for a malformed list, a URL that is not http(s) or an
        unknown hook kind (a misspelled kind would silently filter everything).
        """
        return parse_targets(
            self.webhook_urls, self.webhook_kinds, self.webhook_state_machines, secret_of
        )


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


_SHARED_FACTS: weakref.WeakKeyDictionary[DynamoDBLog, CachedFacts] = weakref.WeakKeyDictionary()


def log_facts(log: DynamoDBLog) -> CachedFacts:
    """An execution's start, input and redrives from the log's head (one GetItem).

    One lookup per log: every hook built on ``log`` (the metrics and EventBridge
    hooks, built one by one by :func:`builtin_factory`) shares it, so a head is
    read once per execution per batch (:class:`~stepflow.hooks.support.CachedFacts`).
    """
    shared = _SHARED_FACTS.get(log)
    if shared is not None:
        return shared

    def facts(execution_arn: str) -> ExecutionFacts | None:
        record = log.get(execution_arn)
        if record is None:
            return None
        state = decode_state(record.state) if record.state else None
        return ExecutionFacts(
            record.start_date or None,
            dumps(record.input),
            redrive_count=state.redrive_count if state is not None else 0,
            redrive_date=state.redrive_date if state is not None else None,
        )

    shared = _SHARED_FACTS[log] = CachedFacts(facts)
    return shared


def _client_getter(clients: Clients | None, region: str) -> Callable[[str], Any]:
    if callable(clients):
        return clients
    given = dict(clients or {})

    def get(service: str) -> Any:
        if service not in given:
            given[service] = boto3.client(service, region_name=region)
        return given[service]

    return get


def _secret_reader(client: Callable[[str], Any]) -> Callable[[str], bytes]:
    def read(arn: str) -> bytes:
        answer = client("secretsmanager").get_secret_value(SecretId=arn)
        return str(answer["SecretString"]).encode()

    return read


def webhook_secret(
    settings: HookSettings, client: Callable[[str], Any], *, required: bool = True
) -> bytes:
    """The shared signing secret: the raw setting, else the Secrets Manager secret's string.

    Not ``required`` (every target has its own): empty when none is set.
    """
    raw = settings.webhook_secret.get_secret_value()
    if raw:
        return raw.encode()
    if not settings.webhook_secret_arn:
        if not required:
            return b""
        raise ValueError("webhooks need STEPFLOW_WEBHOOK_SECRET_ARN or STEPFLOW_WEBHOOK_SECRET")
    return _secret_reader(client)(settings.webhook_secret_arn)


def hooks_from_settings(
    settings: HookSettings | Settings | Mapping[str, str] | None = None,
    clients: Clients | None = None,
    *,
    log: DynamoDBLog | None = None,
    denied: DeniedEndpoints | None = None,
    local: bool = False,
    sink: Any = None,
    dead_letter: DeadLetter | None = None,
) -> list[Hook]:
    """The hooks ``settings`` turn on (a mapping is read as the environment).

    Given the process's :class:`~stepflow.aws.settings.Settings`, the hooks' own
    settings are read from the environment and the table, bucket and region from it.

    ``clients`` gives boto3 clients (``events``, ``sqs``, ``secretsmanager``,
    ``dynamodb``, ``s3``); ``log`` the coordination log (default: on ``TABLE_NAME``);
    ``denied`` the stack's own endpoints webhooks must not reach and ``local``
    whether this machine may be reached (``stepflow local``; deployed: never).
    ``sink`` replaces the Powertools EMF sink, ``dead_letter`` the webhooks' one.
    """
    if isinstance(settings, Settings):  # the hooks' own settings are in the environment
        settings = HookSettings.model_validate(
            {
                **os.environ,
                "table_name": settings.table_name,
                "payload_bucket": settings.payload_bucket,
                "region": settings.region,
            }
        )
    elif settings is None or isinstance(settings, Mapping):
        settings = HookSettings.model_validate(dict(os.environ if settings is None else settings))
    client = _client_getter(clients, settings.region)
    enabled = settings.enabled
    facts: FactsLookup | None = None
    if log is None and settings.table_name and enabled:
        bucket = settings.payload_bucket
        log = DynamoDBLog(
            settings.table_name,
            client=client("dynamodb"),
            payloads=S3PayloadStore(bucket, client=client("s3")) if bucket else None,
        )
    if log is not None:
        facts = log_facts(log)
    hooks: list[Hook] = []
    if "metrics" in enabled:
        emf = sink if sink is not None else PowertoolsSink(settings.metrics_namespace)
        hooks.append(
            MetricsHook(emf, facts=facts, per_state_machine=settings.metrics_per_state_machine)
        )
    if "eventbridge" in enabled:
        hooks.append(
            EventBridgeHook(
                client("events"),
                settings.event_bus,
                source=settings.event_source,
                facts=facts,
                express=settings.event_bus_express,
            )
        )
    if "webhooks" in enabled:
        if dead_letter is None:
            dead_letter = (
                SqsDeadLetter(settings.webhook_dlq_url, client("sqs"))
                if settings.webhook_dlq_url
                else _LoggedDeadLetter()
            )
        targets = settings.targets(_secret_reader(client))
        shared = webhook_secret(settings, client, required=not all(t.secret for t in targets))
        hooks.append(
            WebhookHook(
                targets,
                secret=shared,
                http=Urllib3Http(denied=denied, allow_loopback=local, read_body=False),
                dead_letter=dead_letter,
                attempts=settings.webhook_attempts,
                budget=settings.webhook_budget_seconds,
                cooldown=settings.webhook_cooldown_seconds,
            )
        )
    return hooks


def builtin_factory(name: str) -> Callable[[Settings, Callable[[str], Any]], Hook]:
    """The factory :data:`stepflow.aws.wiring.HOOK_FACTORIES` holds for built-in hook ``name``.

    The hook's own settings come from the environment (as in :func:`hooks_from_settings`),
    the table, bucket and region from ``settings``. When ``clients`` is a
    :class:`~stepflow.aws.wiring.Wiring`'s ``client`` method, webhooks are refused the
    stack's own endpoints it knows (``stepflow local``: its denied endpoints; this machine
    stays reachable there, as for HTTP tasks).
    """

    def build(settings: Settings, clients: Callable[[str], Any]) -> Hook:
        environment = {
            k: v for k, v in os.environ.items() if k not in ("STEPFLOW_HOOKS", "hooks")
        }  # the one hook this factory builds, whatever the environment names
        hook_settings = HookSettings.model_validate(
            {
                **environment,
                "table_name": settings.table_name,
                "payload_bucket": settings.payload_bucket,
                "region": settings.region,
                "hooks": name,
            }
        )
        wiring = getattr(clients, "__self__", None)  # a Wiring's bound client method
        denied = getattr(wiring, "denied_endpoints", None)
        log = getattr(wiring, "log", None) if wiring is not None else None
        (hook,) = hooks_from_settings(
            hook_settings,
            clients,
            log=log if isinstance(log, DynamoDBLog) else None,
            denied=denied,
            local=denied is not None,
        )
        return hook

    return build
