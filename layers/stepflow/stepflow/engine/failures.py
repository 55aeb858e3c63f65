"""Matching an error against ``ErrorEquals`` lists (Retry and Catch)."""

from __future__ import annotations

from collections.abc import Sequence

from stepflow.errors import StatesErrorName

_UNCATCHABLE_BY_WILDCARD = frozenset({StatesErrorName.RUNTIME.value})


def matches(error_equals: Sequence[str], error: str | None) -> bool:
    """Whether ``error`` is matched by a retrier's or catcher's ``ErrorEquals``.

    ``States.ALL`` matches every error but ``States.Runtime`` (which the ASL
    says is never retried or caught); ``States.TaskFailed`` matches every
    error except ``States.Timeout``.
    """
    name = error or ""
    for candidate in error_equals:
        if candidate == name:
            return name not in _UNCATCHABLE_BY_WILDCARD
        if candidate == StatesErrorName.ALL and name not in _UNCATCHABLE_BY_WILDCARD:
            return True
        if candidate == StatesErrorName.TASK_FAILED and name not in (
            StatesErrorName.TIMEOUT,
            *_UNCATCHABLE_BY_WILDCARD,
        ):
            return True
    return False
