"""The hooks registry: the hooks ``STEPFLOW_HOOKS`` may name, and :func:`hooks_from_settings`.

Importing this module registers the built-in hooks (``metrics``, ``eventbridge``,
``webhooks``; built by :func:`stepflow.aws.hooks_wiring.builtin_factory`; and ``live``,
:mod:`stepflow.live.live_hook`) in
:data:`HOOK_FACTORIES`; other hooks register there by name. :mod:`stepflow.aws.wiring`
re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepflow.aws.settings import Settings
from stepflow.hooks import Hook

HookFactory = Callable[[Settings, Callable[[str], Any]], Hook]
"""Builds one hook from the settings and a boto3 client factory (``wiring.client``)."""

HOOK_FACTORIES: dict[str, HookFactory] = {}
"""The hooks ``STEPFLOW_HOOKS`` may name, by name: the built-in hooks register here."""


class UnknownHookError(ValueError):
    """``STEPFLOW_HOOKS`` names a hook nobody registered."""


def hooks_from_settings(settings: Settings, clients: Callable[[str], Any]) -> list[Hook]:
    """The hooks ``settings.hooks`` names, in its order (each once), built by their factories.

    Names are case-sensitive (``metrics``, not ``Metrics``), as in
    :class:`stepflow.aws.hook_settings.HookSettings` and the CDK stack's config. An
    unknown name raises :class:`UnknownHookError` (a cold start fails loudly rather
    than silently dropping a hook).
    """
    names = list(dict.fromkeys(n.strip() for n in settings.hooks.split(",") if n.strip()))
    unknown = [name for name in names if name not in HOOK_FACTORIES]
    if unknown:
        known = ", ".join(sorted(HOOK_FACTORIES)) or "none"
        raise UnknownHookError(f"STEPFLOW_HOOKS names unknown hooks {unknown} (known: {known})")
    return [HOOK_FACTORIES[name](settings, clients) for name in names]


def _register_builtin_hooks() -> None:
    from stepflow.aws.hooks_wiring import HOOK_NAMES, builtin_factory  # it imports the settings

    for name in HOOK_NAMES:
        HOOK_FACTORIES.setdefault(name, builtin_factory(name))
    from stepflow.live.live_hook import live_hook_factory  # pushes to WebSocket subscribers

    HOOK_FACTORIES.setdefault("live", live_hook_factory)


_register_builtin_hooks()
