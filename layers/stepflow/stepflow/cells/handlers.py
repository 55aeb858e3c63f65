"""Effect handlers: who performs each effect type, and what each call is told.

A handler is a callable ``handler(effect, call) -> result`` registered for an
effect type (:meth:`EffectHandlers.register`, or ``@handles(EffectType)`` in a
cells module). ``call`` carries the idempotency key, which the handler passes
on to targets that take one, and the task's AWS clients. A handler that
raises :class:`HandlerError` fails the effect with that error name; any other
exception is the effect's failure under its class name. Retries, timeouts and
circuit breaking are the handler's :class:`Policy` (see
:mod:`stepflow.cells.policy`).

A failure also says whether the effect may have been performed
(:attr:`EffectFailure.performed`, recorded in the journal): ``"yes"`` when the
handler returned a result that is not its declared type or cannot be stored (it
ran), ``"unknown"`` when any of its calls raised :class:`OutcomeUnknown` or
timed out (:class:`~stepflow.cells.policy.EffectTimeout`, ``TimeoutError``) and
did not say it was never sent, else ``"no"``. An exception may set its own
``performed`` attribute (``HandlerError(..., performed="unknown")``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from stepflow.cells.effects import Effect, IdempotencyKey
from stepflow.cells.journal import PERFORMED, most_performed
from stepflow.cells.policy import (
    CIRCUIT_OPEN,
    DEFAULT_POLICY,
    CircuitOpenError,
    Guard,
    Policy,
    TransientError,
    error_of,
)
from stepflow.data.serialize import dumps, storable_problem
from stepflow.runtime.clients import TaskClients

E = TypeVar("E", bound=Effect[Any])

UNSTORABLE_RESULT = "StepFlow.Cell.UnstorableEffectResult"
INVALID_RESULT = "StepFlow.Cell.InvalidEffectResult"
OUTCOME_UNKNOWN = "StepFlow.Effect.OutcomeUnknown"


@dataclass(frozen=True, slots=True)
class EffectCall:
    """What a handler is told about one effect request.

    ``key`` is its idempotency key; ``task`` the task message body it runs for
    (``role_arn``, ``execution_role``, ``resource``, ...); ``clients`` the task
    clients (the state machine's role), None where no AWS is configured.
    ``timeout`` is how long this call may take, in seconds (the handler's
    :class:`~stepflow.cells.policy.Policy`: per call, capped by what is left of
    the request's total); a handler passes it down to its target's client and
    raises :class:`~stepflow.cells.policy.EffectTimeout` when it runs out
    (None: no limit set).
    """

    key: IdempotencyKey
    task: dict[str, Any] = field(default_factory=dict)
    clients: TaskClients | None = None
    timeout: float | None = None


class EffectHandler(Protocol):
    """Performs one effect type; returns its result (JSON data or the result model)."""

    def __call__(self, effect: Any, call: EffectCall, /) -> Any:
        """Perform ``effect`` once (idempotently under ``call.key``)."""
        ...


class HandlerError(Exception):
    """An effect failed for good with ``error`` (its name for Catch) and ``cause``.

    ``performed``: ``"no"`` (the default: nothing happened), ``"unknown"`` or ``"yes"``.
    """

    def __init__(self, error: str, cause: str = "", performed: str = "no") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.performed = performed


class OutcomeUnknown(TransientError):
    """The request may have been performed, and whether it was is unknown.

    A custom handler raises it when its target stopped answering after the
    request was sent (a read timeout, a dropped connection). Retried like any
    transient failure (under the same idempotency key); once retries are spent
    the failure is recorded with ``performed="unknown"`` and the effect's
    :meth:`~stepflow.cells.Effect.compensation_unknown` is registered.
    """

    def __init__(self, cause: str = "", error: str = OUTCOME_UNKNOWN) -> None:
        super().__init__(error, cause, "unknown")


class EffectFailure(Exception):
    """An effect's failure as performed or replayed: ``error`` and ``cause``.

    ``performed`` says whether the effect may have happened (see the module docstring).
    """

    def __init__(self, effect: str, error: str, cause: str, performed: str = "no") -> None:
        super().__init__(f"effect {effect} failed: {error}: {cause}")
        self.effect = effect
        self.error = error
        self.cause = cause
        self.performed = performed


def performed_of(exc: BaseException) -> str:
    """Whether a handler's failure ``exc`` may have been performed: no, unknown or yes."""
    value = getattr(exc, "performed", None)
    if isinstance(value, str) and value in PERFORMED:
        return value
    return "unknown" if isinstance(exc, TimeoutError) else "no"


class CircuitOpenFailure(EffectFailure):
    """The effect was not performed: its endpoint's circuit breaker is open.

    Never recorded: the run stops (:attr:`stepflow.cells.context.CellContext.stopped`)
    and its attempt is delivered again under the same keys, as after a journal outage.
    """


def breaker_endpoint(effect: Effect[Any]) -> str:
    """The endpoint whose breaker guards ``effect``: its ``breaker_endpoint()``, else ``""``.

    An effect type may define ``breaker_endpoint(self) -> str`` (the built-in ones
    do: ``scheme://host:port``, ``aws:<service>:<region>``) so that one failing
    endpoint does not open the breaker of every other its handler calls.
    """
    method = getattr(effect, "breaker_endpoint", None)
    if not callable(method):
        return ""
    try:
        endpoint = method()
    except Exception:  # a user's method that fails: the registration's shared breaker
        return ""
    return endpoint if isinstance(endpoint, str) else ""


HANDLES_ATTRIBUTE = "__stepflow_handles__"
POLICY_ATTRIBUTE = "__stepflow_policy__"


def handles(
    *effects: type[Effect[Any]], policy: Policy | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a function as the handler of ``effects`` in a cells module (no global registry).

    ``policy``: its retries, timeouts and circuit breaker (default: :data:`DEFAULT_POLICY`).
    """

    def mark(function: Callable[..., Any]) -> Callable[..., Any]:
        setattr(function, HANDLES_ATTRIBUTE, tuple(effects))
        if policy is not None:
            setattr(function, POLICY_ATTRIBUTE, policy)
        return function

    return mark


@dataclass(slots=True)
class EffectHandlers:
    """Handlers by effect type (a subclass uses its base's handler unless it has its own).

    Each registration has its :class:`~stepflow.cells.policy.Guard` (its policy
    and its circuit breakers, one per endpoint) in ``guards``; :meth:`merged` keeps
    them, so a breaker is shared by every merged set that holds its registration.
    """

    handlers: dict[type[Any], EffectHandler] = field(default_factory=dict)
    guards: dict[type[Any], Guard] = field(default_factory=dict)

    def register(
        self, effect: type[Effect[Any]], handler: EffectHandler, policy: Policy | None = None
    ) -> None:
        """Make ``handler`` perform ``effect`` under ``policy`` (replacing any before it).

        ``policy`` defaults to the one ``@handles(..., policy=...)`` gave the
        handler, else :data:`~stepflow.cells.policy.DEFAULT_POLICY`.
        """
        if policy is None:
            marked = getattr(handler, POLICY_ATTRIBUTE, None)
            policy = marked if isinstance(marked, Policy) else DEFAULT_POLICY
        self.handlers[effect] = handler
        self.guards[effect] = Guard(policy)

    def find(self, effect: type[Effect[Any]]) -> EffectHandler | None:
        """The handler of ``effect``'s type, or None."""
        found = self._registration(effect)
        return None if found is None else found[0]

    def guard(self, effect: type[Effect[Any]]) -> Guard | None:
        """The policy and breaker of ``effect``'s handler, or None."""
        found = self._registration(effect)
        return None if found is None else found[1]

    def _registration(self, effect: type[Effect[Any]]) -> tuple[EffectHandler, Guard] | None:
        for klass in effect.__mro__:
            found = self.handlers.get(klass)
            if found is not None:
                guard = self.guards.get(klass)
                if guard is None:  # set into ``handlers`` directly: the default policy
                    guard = self.guards[klass] = Guard(DEFAULT_POLICY)
                return found, guard
        return None

    def merged(self, other: EffectHandlers) -> EffectHandlers:
        """These handlers with ``other``'s added (``other`` wins on the same type)."""
        for handlers in (self, other):
            for klass in handlers.handlers:
                handlers.guards.setdefault(klass, Guard(DEFAULT_POLICY))
        return EffectHandlers({**self.handlers, **other.handlers}, {**self.guards, **other.guards})

    def perform(self, effect: Effect[Any], call: EffectCall) -> Any:
        """Perform ``effect`` with its handler under its policy; its result as JSON data.

        Raises :class:`EffectFailure` when there is no handler or it failed (for
        good, or on its last retry), :class:`CircuitOpenFailure` when the breaker
        of the effect's endpoint is open (the handler was not called).
        """
        name = effect.effect_name()
        found = self._registration(type(effect))
        if found is None:
            raise EffectFailure(
                name,
                "StepFlow.Cell.NoEffectHandler",
                f"No handler is registered for effect {name}: register one with "
                "@handles(...) in the cells module, or EffectHandlers.register.",
            )
        handler, guard = found
        performed = "no"

        def attempt(timeout: float) -> Any:
            nonlocal performed
            try:
                return handler(effect, replace(call, timeout=timeout))
            except Exception as exc:  # an earlier call that may have happened still may have
                performed = most_performed(performed, performed_of(exc))
                raise

        try:
            result = guard.run(attempt, breaker_endpoint(effect))
        except CircuitOpenError as exc:  # not recorded: performed again later, same key
            raise CircuitOpenFailure(name, CIRCUIT_OPEN, exc.cause) from exc
        except Exception as exc:  # a handler's failure is the effect's failure
            error, cause = error_of(exc)
            raise EffectFailure(name, error, cause, performed) from exc
        try:
            dumped = type(effect).dump_result(result)
        except ValueError as exc:
            raise EffectFailure(
                name,
                INVALID_RESULT,
                f"The handler of {name} returned a result that is not its declared type: {exc}",
                "yes",
            ) from exc
        problem = storable_problem(dumped)
        if problem is not None:  # the same answer on every log, and the same on a replay
            raise EffectFailure(
                name,
                UNSTORABLE_RESULT,
                f"The handler of {name} returned a result the log cannot store: {problem}.",
                "yes",
            )
        # What the first run sees is what a replay reads back: the stored JSON.
        return json.loads(dumps(dumped))
