"""The two handler signatures a worker accepts: ``handler(input)`` and ``handler(input, context)``.

``execute()``'s handlers take the task's input alone; a worker's may also take
the :class:`~stepflow.worker.context.TaskContext` (heartbeats, the idempotency
key). Which one a callable is gets decided once, when it is loaded, from its
signature: a callable that can take two positional arguments gets the context,
one that can take exactly one gets the input alone, anything else is refused
with :class:`HandlerSignatureError` naming the signature found.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from stepflow.worker.context import TaskContext

__all__ = ["SIGNATURES", "HandlerSignatureError", "as_handler"]

_ADAPTED = "_stepflow_adapted"
"""Set on the ``(input, context)`` adapter of a one-argument handler."""

SIGNATURES = "handler(input) or handler(input, context)"
"""The signatures a worker's handler may have, as error messages name them."""


class HandlerSignatureError(TypeError):
    """The callable given as a handler fits neither accepted signature."""


def as_handler(handler: object, name: str = "the handler") -> Callable[[Any, TaskContext], Any]:
    """``handler`` as an ``(input, context)`` callable, checked once, here.

    ``name`` names it in the error (for example ``module:function``).
    Callables whose signature cannot be read (some built-ins) are taken as
    ``(input, context)`` callables.
    """
    if not callable(handler):
        raise HandlerSignatureError(
            f"{name} is not callable ({type(handler).__name__}); it must be a function: "
            f"{SIGNATURES}"
        )
    if getattr(handler, _ADAPTED, False):
        return handler  # already adapted: its __wrapped__ signature is the original's
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - a callable object's coroutine __call__
    ):
        raise HandlerSignatureError(f"{name} is async; a worker runs plain functions: {SIGNATURES}")
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # no signature to read: the worker's own calling convention
        return handler
    if _accepts(signature, 2):
        return handler
    if _accepts(signature, 1):
        single: Callable[[Any], Any] = handler

        def with_context(task_input: Any, context: TaskContext) -> Any:
            return single(task_input)

        with_context.__wrapped__ = handler  # type: ignore[attr-defined]
        setattr(with_context, _ADAPTED, True)
        return with_context
    raise HandlerSignatureError(
        f"{name} takes {signature}; a worker calls {SIGNATURES} (extra parameters need defaults)"
    )


def _accepts(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
