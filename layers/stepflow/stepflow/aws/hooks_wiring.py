"""The built-in hooks, assembled from settings: :func:`hooks_from_settings`.

The settings (environment variables) are :class:`~stepflow.aws.hook_settings.HookSettings`'
(see :mod:`stepflow.aws.hook_settings`); the EMF sink and the webhooks' dead letters
are in :mod:`stepflow.aws.hook_sinks`. Both are re-exported here.

The log head (``TABLE_NAME``, ``PAYLOAD_BUCKET``) gives an execution's start and
input when a batch does not hold its ``ExecutionStarted``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from stepflow.aws.dynamodb_log import DynamoDBLog
from stepflow.aws.hook_eventbridge import EventBridgeHook
from stepflow.aws.hook_settings import HOOK_NAMES, HookSettings
from stepflow.aws.hook_sinks import (
    LOGGED_DEAD_LETTERS,
    PowertoolsSink,
    SqsDeadLetter,
    _LoggedDeadLetter,
)
from stepflow.aws.s3_payloads import S3PayloadStore
from stepflow.aws.settings import Settings
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.hooks import Hook
from stepflow.hooks.metrics import MetricsHook
from stepflow.hooks.support import CachedFacts, ExecutionFacts, FactsLookup
from stepflow.integrations.http_denied import DeniedEndpoints
from stepflow.integrations.http_port import Urllib3Http
from stepflow.integrations.webhooks import DeadLetter, WebhookHook

__all__ = [
    "HOOK_NAMES",
    "LOGGED_DEAD_LETTERS",
    "Clients",
    "HookSettings",
    "PowertoolsSink",
    "SqsDeadLetter",
    "builtin_factory",
    "hooks_from_settings",
    "log_facts",
    "webhook_secret",
]

Clients = Mapping[str, Any] | Callable[[str], Any]
"""boto3 clients by service name: a mapping, or a function (e.g. ``Wiring.client``)."""

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
        settings = _process_settings(settings)
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


def _process_settings(settings: Settings, hooks: str | None = None) -> HookSettings:
    """The hooks' settings of a process: theirs from the environment, the table's from ``settings``.

    ``hooks`` (given): the hooks on, whatever the environment names.
    """
    environment: dict[str, str] = dict(os.environ)
    if hooks is not None:
        environment = {k: v for k, v in environment.items() if k not in ("STEPFLOW_HOOKS", "hooks")}
        environment["hooks"] = hooks
    return HookSettings.model_validate(
        {
            **environment,
            "table_name": settings.table_name,
            "payload_bucket": settings.payload_bucket,
            "region": settings.region,
        }
    )


def builtin_factory(name: str) -> Callable[[Settings, Callable[[str], Any]], Hook]:
    """The factory :data:`stepflow.aws.wiring.HOOK_FACTORIES` holds for built-in hook ``name``.

    The hook's own settings come from the environment (as in :func:`hooks_from_settings`),
    the table, bucket and region from ``settings``. When ``clients`` is a
    :class:`~stepflow.aws.wiring.Wiring`'s ``client`` method, webhooks are refused the
    stack's own endpoints it knows (``stepflow local``: its denied endpoints; this machine
    stays reachable there, as for HTTP tasks).
    """

    def build(settings: Settings, clients: Callable[[str], Any]) -> Hook:
        hook_settings = _process_settings(settings, hooks=name)
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
