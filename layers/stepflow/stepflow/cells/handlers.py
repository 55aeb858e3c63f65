"""Effect handlers: who performs each effect type, and what each call is told.

A handler is a callable ``handler(effect, call) -> result`` registered for an
effect type (:meth:`EffectHandlers.register`, or ``@handles(EffectType)`` in a
cells module). ``call`` carries the idempotency key, which the handler passes
on to targets that take one, and the task's AWS clients. A handler that
raises :class:`HandlerError` fails the effect with that error name; any other
exception is the effect's failure under its class name. Retries, timeouts and
circuit breaking are the handler's :class:`Policy` (see
:mod:`stepflow.cells.policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.runtime.clients import TaskClients

E = TypeVar("E", bound=Effect[Any])


@dataclass(frozen=True, slots=True)
class EffectCall:
    """What a handler is told about one effect request.

    ``key`` is its idempotency key; ``task`` the task message body it runs for
    (``role_arn``, ``execution_role``, ``resource``, ...); ``clients`` the task
    clients (the state machine's role), None where no AWS is configured.
    """

    key: IdempotencyKey
    task: dict[str, Any] = field(default_factory=dict)
    clients: TaskClients | None = None


class EffectHandler(Protocol):
    """Performs one effect type; returns its result (JSON data or the result model)."""

    def __call__(self, effect: Any, call: EffectCall, /) -> Any:
        """Perform ``effect`` once (idempotently under ``call.key``)."""
        ...


class HandlerError(Exception):
    """An effect failed for good with ``error`` (its name for Catch) and ``cause``."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class EffectFailure(Exception):
    """An effect's failure as performed or replayed: ``error`` and ``cause``."""

    def __init__(self, effect: str, error: str, cause: str) -> None:
        super().__init__(f"effect {effect} failed: {error}: {cause}")
        self.effect = effect
        self.error = error
        self.cause = cause


HANDLES_ATTRIBUTE = "__stepflow_handles__"


def handles(*effects: type[Effect[Any]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as the handler of ``effects`` in a cells module (no global registry)."""

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, HANDLES_ATTRIBUTE, tuple(effects))
        return function

    return mark


@dataclass(slots=True)
class EffectHandlers:
    """Handlers by effect type (a subclass uses its base's handler unless it has its own)."""

    handlers: dict[type[Any], EffectHandler] = field(default_factory=dict)

    def register(self, effect: type[Effect[Any]], handler: EffectHandler) -> None:
        """Make ``handler`` perform ``effect`` (replacing any before it)."""
        self.handlers[effect] = handler

    def find(self, effect: type[Effect[Any]]) -> EffectHandler | None:
        """The handler of ``effect``'s type, or None."""
        for klass in effect.__mro__:
            found = self.handlers.get(klass)
            if found is not None:
                return found
        return None

    def merged(self, other: EffectHandlers) -> EffectHandlers:
        """These handlers with ``other``'s added (``other`` wins on the same type)."""
        return EffectHandlers({**self.handlers, **other.handlers})

    def perform(self, effect: Effect[Any], call: EffectCall) -> Any:
        """Perform ``effect`` with its handler; its result as JSON data.

        Raises :class:`EffectFailure` when there is no handler or it failed.
        """
        name = effect.effect_name()
        handler = self.find(type(effect))
        if handler is None:
            raise EffectFailure(
                name,
                "StepFlow.Cell.NoEffectHandler",
                f"No handler is registered for effect {name}: register one with "
                "@handles(...) in the cells module, or EffectHandlers.register.",
            )
        try:
            result = handler(effect, call)
        except HandlerError as exc:
            raise EffectFailure(name, exc.error, exc.cause) from exc
        except Exception as exc:  # a handler's failure is the effect's failure
            raise EffectFailure(name, type(exc).__name__, str(exc)) from exc
        try:
            return type(effect).dump_result(result)
        except ValueError as exc:
            raise EffectFailure(
                name,
                "StepFlow.Cell.InvalidEffectResult",
                f"The handler of {name} returned a result that is not its declared type: {exc}",
            ) from exc
