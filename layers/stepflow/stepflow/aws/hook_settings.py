"""The built-in hooks' settings: :class:`HookSettings`, read from the environment.

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

from collections.abc import Callable
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from stepflow.integrations.webhook_targets import parse_targets
from stepflow.integrations.webhooks import WebhookTarget

HOOK_NAMES = ("metrics", "eventbridge", "webhooks")


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
