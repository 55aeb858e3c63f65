"""Matching an error against ``ErrorEquals`` lists (Retry and Catch)."""

from __future__ import annotations

from collections.abc import Sequence

from stepflow.errors import StatesErrorName

_NEVER_CAUGHT = frozenset({StatesErrorName.RUNTIME.value})
_UNCATCHABLE_BY_WILDCARD = frozenset(
    {StatesErrorName.RUNTIME.value, StatesErrorName.DATA_LIMIT_EXCEEDED.value}
)


def matches(error_equals: Sequence[str], error: str | None) -> bool:
    """Whether ``error`` is matched by a retrier's or catcher's ``ErrorEquals``.

    ``States.Runtime`` is never retried or caught. The wildcards do not match
    the terminal ``States.DataLimitExceeded`` (naming it does): ``States.ALL``
    matches every other error, ``States.TaskFailed`` every other one except
    ``States.Timeout``.
    """
    name = error or ""
    for candidate in error_equals:
        if candidate == name:
            return name not in _NEVER_CAUGHT
        if candidate == StatesErrorName.ALL and name not in _UNCATCHABLE_BY_WILDCARD:
            return True
        if candidate == StatesErrorName.TASK_FAILED and name not in (
            StatesErrorName.TIMEOUT,
            *_UNCATCHABLE_BY_WILDCARD,
        ):
            return True
    return False
