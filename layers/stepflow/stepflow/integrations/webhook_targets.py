"""Webhook targets from settings text: :func:`parse_targets` (``STEPFLOW_WEBHOOK_URLS``).

Comma-separated URLs sharing the kinds and state machines filters, or a JSON
list of URLs (the form for a URL holding a comma; the filters apply to them too)
and objects ``{"url", "kinds", "stateMachines", "secretArn" | "secret"}``.
``kinds`` and ``stateMachines`` are lists of strings or one comma-separated
string. Anything else is refused (ValueError): a URL that is not http(s), an
unknown hook kind (a misspelled kind would silently filter everything out).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, get_args
from urllib.parse import urlsplit

from stepflow.hooks.events import HookKind
from stepflow.integrations.webhooks import WebhookTarget, site_of

HOOK_KINDS: frozenset[str] = frozenset(get_args(HookKind))
"""Every hook kind a target may name."""


def parse_targets(
    urls: str,
    kinds: str = "",
    state_machines: str = "",
    secret_of: Callable[[str], bytes] | None = None,
) -> list[WebhookTarget]:
    """The targets ``urls`` names (module doc); ``secret_of`` reads a ``secretArn``."""
    text = urls.strip()
    shared_kinds = _kinds(_names(kinds))
    machines = _names(state_machines)
    if not text.startswith("["):
        return [WebhookTarget(_url(url), shared_kinds, machines) for url in _names(text) or ()]
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"STEPFLOW_WEBHOOK_URLS is not a JSON list: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("STEPFLOW_WEBHOOK_URLS is not a JSON list")
    return [
        WebhookTarget(_url(t), shared_kinds, machines)
        if isinstance(t, str)
        else _target(t, secret_of)
        for t in items
    ]


def _url(url: Any) -> str:
    """``url`` if it is an http(s) URL with a host, else ValueError."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook target is not an http(s) URL: {site_of(str(url))}")
    return str(url)


def _listed(value: Any, what: str) -> frozenset[str] | None:
    """A JSON target's ``kinds`` or ``stateMachines``: a list, or one comma-separated string."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, str):
        return _names(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(v.strip() for v in value if v.strip()) or None
    raise ValueError(f"a webhook target's {what} must be a list of strings")


def _kinds(kinds: frozenset[str] | None) -> frozenset[str] | None:
    """``kinds`` if every one is a hook kind, else ValueError."""
    unknown = sorted((kinds or frozenset()) - HOOK_KINDS)
    if unknown:
        raise ValueError(f"unknown webhook kinds {unknown}; the kinds are {sorted(HOOK_KINDS)}")
    return kinds


def _target(item: Any, secret_of: Callable[[str], bytes] | None) -> WebhookTarget:
    """One object of the JSON list."""
    if not isinstance(item, dict) or "url" not in item:
        raise ValueError("a webhook target must be a URL or an object with a url")
    secret: bytes | None = None
    if item.get("secretArn"):
        if secret_of is None:
            raise ValueError("a webhook target's secretArn needs Secrets Manager")
        secret = secret_of(str(item["secretArn"]))
    elif item.get("secret"):
        secret = str(item["secret"]).encode()
    return WebhookTarget(
        _url(item["url"]),
        _kinds(_listed(item.get("kinds"), "kinds")),
        _listed(item.get("stateMachines"), "stateMachines"),
        secret,
    )


def _names(text: str) -> frozenset[str] | None:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    return names or None
