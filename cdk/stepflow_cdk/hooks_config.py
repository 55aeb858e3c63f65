"""Which hooks the stack deploys, and where they deliver: construct props or app context.

Checked at synth: a hook name that does not exist, webhooks without URLs, a
plain-HTTP webhook, a setting for a hook that is off, or a malformed ARN fails
``cdk synth`` instead of deploying a dispatcher that fails on every batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from aws_cdk import Stack
from constructs import Node

HOOKS_ENV_VAR = "STEPFLOW_HOOKS"
"""The hooks turned on, comma-separated (read by stepflow.aws.hooks_wiring)."""
EVENT_BUS_ENV_VAR = "STEPFLOW_EVENT_BUS"
"""The EventBridge bus status changes are put on (a name or an ARN)."""
EVENT_SOURCE_ENV_VAR = "STEPFLOW_EVENT_SOURCE"
"""The events' ``source`` (EventBridge refuses ``aws.*`` from an account); the grant
allows PutEvents of this source only."""
DEFAULT_EVENT_SOURCE = "stepflow.states"
WEBHOOK_URLS_ENV_VAR = "STEPFLOW_WEBHOOK_URLS"
"""The webhook endpoints, comma-separated."""
WEBHOOK_SECRET_ENV_VAR = "STEPFLOW_WEBHOOK_SECRET_ARN"
"""The Secrets Manager secret whose value signs webhook deliveries."""
WEBHOOK_DLQ_ENV_VAR = "STEPFLOW_WEBHOOK_DLQ_URL"
"""The queue deliveries that failed every retry go to."""

OTHER_SETTINGS = frozenset(
    {
        "STEPFLOW_EVENT_BUS_EXPRESS",
        "STEPFLOW_WEBHOOK_KINDS",
        "STEPFLOW_WEBHOOK_STATE_MACHINES",
        "STEPFLOW_WEBHOOK_ATTEMPTS",
        "STEPFLOW_METRICS_NAMESPACE",
        "STEPFLOW_METRICS_PER_STATE_MACHINE",
    }
)
"""The built-in hooks' other settings (stepflow.aws.hooks_wiring), passed through as given.
Never a secret's value (``STEPFLOW_WEBHOOK_SECRET``): the environment is not a vault."""

KNOWN_HOOKS = ("metrics", "eventbridge", "webhooks")
DEFAULT_HOOKS = ("metrics",)
NO_HOOKS = "none"
"""``-c stepflow:hooks=none``: no dispatcher at all (no function, no mapping, no queues)."""

StartingPosition = Literal["LATEST", "TRIM_HORIZON"]
DEFAULT_STARTING_POSITION: StartingPosition = "LATEST"

MAX_WEBHOOK_URLS_BYTES = 2048
"""The URLs travel in the function's environment (4 KB for all variables together)."""

_BUS_NAME = re.compile(r"[A-Za-z0-9._/\-]{1,256}")
_BUS_ARN = re.compile(
    r"arn:aws[a-z\-]*:events:[a-z0-9\-]+:\d{12}:event-bus/[A-Za-z0-9._/\-]{1,256}"
)
_SOURCE = re.compile(r"[A-Za-z0-9._\-/]{1,256}")
_SECRET_ARN = re.compile(r"arn:aws[a-z\-]*:secretsmanager:[a-z0-9\-]+:\d{12}:secret:[^\s,]+")

CONTEXT_KEYS = {
    "hooks": "stepflow:hooks",
    "event_bus": "stepflow:eventBus",
    "webhook_urls": "stepflow:webhookUrls",
    "webhook_secret_arn": "stepflow:webhookSecretArn",
    "starting_position": "stepflow:hooksStartingPosition",
    "event_source": "stepflow:eventSource",
    "settings": "stepflow:hooksSettings",
}
"""Each field's ``cdk -c`` context key."""


@dataclass(frozen=True, slots=True)
class HooksConfig:
    """The hooks dispatcher's settings (validated on construction).

    ``hooks``: which built-in hooks run (``metrics``, ``eventbridge``, ``webhooks``;
    empty: no dispatcher). ``event_bus``: the bus's name or ARN (eventbridge; empty:
    the account's ``default`` bus). ``webhook_urls``: HTTPS endpoints (webhooks).
    ``webhook_secret_arn``: the full ARN of an existing secret to sign deliveries with
    (webhooks; empty: the stack generates one). ``starting_position``: where a new
    stream mapping starts reading (see docs/hooks.md, "Deploying"). ``event_source``:
    the events' ``source`` (eventbridge; empty: ``stepflow.states``). ``settings``: the
    hooks' other settings (:data:`OTHER_SETTINGS`), e.g. ``STEPFLOW_WEBHOOK_KINDS``.
    """

    hooks: tuple[str, ...] = DEFAULT_HOOKS
    event_bus: str = ""
    webhook_urls: tuple[str, ...] = ()
    webhook_secret_arn: str = ""
    starting_position: StartingPosition = DEFAULT_STARTING_POSITION
    event_source: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [h for h in self.hooks if h not in KNOWN_HOOKS]
        if unknown or len(set(self.hooks)) != len(self.hooks):
            raise ValueError(
                f"hooks must be distinct names among {', '.join(KNOWN_HOOKS)} "
                f"(or {NO_HOOKS!r}), not {list(self.hooks)}"
            )
        if self.starting_position not in ("LATEST", "TRIM_HORIZON"):
            raise ValueError(
                f"the hooks' starting position is LATEST or TRIM_HORIZON, "
                f"not {self.starting_position!r}"
            )
        self._check_event_bus()
        self._check_webhooks()
        unknown = sorted(set(self.settings) - OTHER_SETTINGS)
        if unknown or not all(isinstance(v, str) for v in self.settings.values()):
            raise ValueError(
                f"hooks settings are text values of {', '.join(sorted(OTHER_SETTINGS))}; "
                f"not {unknown or dict(self.settings)}"
            )

    @property
    def enabled(self) -> bool:
        """Whether the stack deploys the dispatcher at all."""
        return bool(self.hooks)

    @property
    def bus(self) -> str:
        """The bus as PutEvents names it (``default`` unless configured)."""
        return self.event_bus or "default"

    @property
    def source(self) -> str:
        """The events' ``source`` (``stepflow.states`` unless configured)."""
        return self.event_source or DEFAULT_EVENT_SOURCE

    def event_bus_arn(self, stack: Stack) -> str:
        """The bus's ARN (a name is a bus of the stack's account and region)."""
        if self.bus.startswith("arn:"):
            return self.bus
        return f"arn:{stack.partition}:events:{stack.region}:{stack.account}:event-bus/{self.bus}"

    def _check_event_bus(self) -> None:
        if self.event_source:
            if "eventbridge" not in self.hooks:
                raise ValueError("an event source is configured but the eventbridge hook is off")
            if self.event_source.startswith("aws.") or not _SOURCE.fullmatch(self.event_source):
                raise ValueError(
                    f"not an event source an account may put (never aws.*): {self.event_source!r}"
                )
        if not self.event_bus:
            return
        if "eventbridge" not in self.hooks:
            raise ValueError("an event bus is configured but the eventbridge hook is off")
        pattern = _BUS_ARN if self.event_bus.startswith("arn:") else _BUS_NAME
        if not pattern.fullmatch(self.event_bus):
            raise ValueError(f"not an EventBridge bus name or ARN: {self.event_bus!r}")

    def _check_webhooks(self) -> None:
        on = "webhooks" in self.hooks
        if not on:
            if self.webhook_urls or self.webhook_secret_arn:
                raise ValueError("webhook settings are configured but the webhooks hook is off")
            return
        if not self.webhook_urls:
            raise ValueError("the webhooks hook needs at least one URL (stepflow:webhookUrls)")
        for url in self.webhook_urls:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or "," in url or url != url.strip():
                raise ValueError(
                    f"a webhook URL must be https://host/... without commas or spaces: {url!r} "
                    "(deliveries carry execution data)"
                )
        if len(",".join(self.webhook_urls).encode()) > MAX_WEBHOOK_URLS_BYTES:
            raise ValueError(
                f"the webhook URLs exceed {MAX_WEBHOOK_URLS_BYTES} bytes: Lambda's environment "
                "holds 4 KB in all"
            )
        if self.webhook_secret_arn and not _SECRET_ARN.fullmatch(self.webhook_secret_arn):
            raise ValueError(
                f"not a Secrets Manager secret ARN: {self.webhook_secret_arn!r} "
                "(give the full ARN, with its random suffix)"
            )

    @classmethod
    def from_context(cls, node: Node) -> HooksConfig:
        """The settings from the app's context (``-c stepflow:hooks=metrics,webhooks`` ...)."""
        hooks = _names(node.try_get_context(CONTEXT_KEYS["hooks"]))
        if hooks == [NO_HOOKS]:
            hooks = []
        elif not hooks:
            hooks = list(DEFAULT_HOOKS)
        position = str(
            node.try_get_context(CONTEXT_KEYS["starting_position"]) or DEFAULT_STARTING_POSITION
        ).upper()
        return cls(
            hooks=tuple(hooks),
            event_bus=str(node.try_get_context(CONTEXT_KEYS["event_bus"]) or ""),
            webhook_urls=tuple(_names(node.try_get_context(CONTEXT_KEYS["webhook_urls"]))),
            webhook_secret_arn=str(node.try_get_context(CONTEXT_KEYS["webhook_secret_arn"]) or ""),
            starting_position=cast(StartingPosition, position),
            event_source=str(node.try_get_context(CONTEXT_KEYS["event_source"]) or ""),
            settings=_mapping(node.try_get_context(CONTEXT_KEYS["settings"])),
        )


def _names(value: Any) -> list[str]:
    """A context list: a JSON list, a list, or comma-separated text (``-c`` gives text)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [str(item).strip() for item in value]
    raise ValueError(f"expected a list or comma-separated text, not {value!r}")


def _mapping(value: Any) -> dict[str, str]:
    """A context object: a mapping, or its JSON text (``-c`` gives text)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object of settings, not {value!r}")
    return {str(k): v for k, v in value.items()}
