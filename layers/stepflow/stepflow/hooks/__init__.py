"""Hooks: metrics, EventBridge status-change events and webhooks, fed from the change stream.

No hook runs inside a commit (DESIGN.md section 8): the dispatcher reads the
coordination log's stream (deployed: a Lambda on the DynamoDB table stream;
``stepflow local``: a stream poller) and hands committed events to hooks.
"""

from stepflow.hooks.events import (
    EXECUTION_KINDS,
    ExecutionInfo,
    HookEvent,
    HookKind,
    hook_events,
    kind_of,
)
from stepflow.hooks.protocol import Dispatcher, Hook, HookFailedError

__all__ = [
    "EXECUTION_KINDS",
    "Dispatcher",
    "ExecutionInfo",
    "Hook",
    "HookEvent",
    "HookFailedError",
    "HookKind",
    "hook_events",
    "kind_of",
]
