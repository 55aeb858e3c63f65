"""How a handler is called: retries with backoff and jitter, timeouts, a circuit breaker.

Each handler registration (:meth:`stepflow.cells.handlers.EffectHandlers.register`)
has a :class:`Policy`; :class:`Guard` applies it to every call of that handler
in the process. An effect request is performed as::

    breaker closed? -> call(timeout=min(per call, time left)) -> ok: result
                                                        -> transient: sleep, again
                                                        -> permanent: fail

- **Retries** (tenacity): up to ``attempts`` calls, exponential backoff from
  ``base_delay`` (doubling, capped at ``max_delay``) plus up to ``jitter``
  seconds of random jitter, never past ``total_timeout`` since the first call.
  Only *transient* failures are retried: :class:`TransientError`, timeouts, and
  any exception that is not a :class:`~stepflow.cells.handlers.HandlerError`.
  A ``HandlerError`` is permanent (a 4xx, a failed DynamoDB condition): the
  target has answered and would answer the same again.
- **Timeouts**: Python cannot kill a call in flight (a thread-based timeout
  would leave it running and perhaps still performing the effect), so the
  policy passes the time a call may take down to the handler as
  ``call.timeout`` (the HTTP handler gives it to httpx; a custom handler must
  honour it). A handler that gives up raises :class:`EffectTimeout` (or Python's
  ``TimeoutError``): the effect's error is ``StepFlow.Effect.Timeout`` once the
  retries are spent. A call that returns late still counts: its effect happened.
- **Circuit breaker** (one per registration and process): after
  ``breaker_failures`` consecutive transient failures it opens, and for
  ``breaker_reset`` seconds every request fails at once with
  ``StepFlow.Effect.CircuitOpen`` without calling the target (recorded like any
  failure); then one trial call is let through (half-open): success closes it,
  failure opens it again. Permanent errors do not count. pybreaker was
  considered and not used: its ``CircuitBreaker.call`` holds the breaker's lock
  for the whole call, which would serialise every concurrent call of a handler
  in a process, and it reads the wall clock, which tests cannot move.

Sleeping happens only here, through the policy's injectable ``sleep`` and
``clock`` (tests pass fakes and take no real time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState as _RetryState
from tenacity import Retrying, retry_if_exception, wait_exponential_jitter

T = TypeVar("T")

TIMEOUT = "StepFlow.Effect.Timeout"
"""The error of an effect whose calls timed out."""
CIRCUIT_OPEN = "StepFlow.Effect.CircuitOpen"
"""The error of an effect refused by its handler's open circuit breaker."""
TRANSIENT = "StepFlow.Effect.Transient"
"""The default error name of a :class:`TransientError`."""


class TransientError(Exception):
    """A failure worth retrying (throttled, unavailable, timed out): ``error`` and ``cause``."""

    def __init__(self, error: str = TRANSIENT, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class EffectTimeout(TransientError):
    """A call gave up after the time it was given (``call.timeout``)."""

    def __init__(self, cause: str = "") -> None:
        super().__init__(TIMEOUT, cause)


class CircuitOpenError(Exception):
    """The handler's circuit breaker is open: the target was not called."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.error = CIRCUIT_OPEN
        self.cause = cause


Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Policy:
    """Retry, timeout and circuit-breaker settings of one handler registration.

    ``attempts`` calls at most (1: no retry); ``base_delay`` seconds before the
    second call, doubling up to ``max_delay``, plus up to ``jitter`` random
    seconds; ``timeout`` seconds per call; ``total_timeout`` seconds for all the
    calls and waits of one effect request. The breaker opens after
    ``breaker_failures`` consecutive transient failures (0: no breaker) for
    ``breaker_reset`` seconds. ``sleep`` and ``clock`` (monotonic seconds) are
    injectable for tests.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    jitter: float = 0.1
    timeout: float = 10.0
    total_timeout: float = 30.0
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    sleep: Sleep = field(default=time.sleep, compare=False, repr=False)
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Policy.attempts must be at least 1")
        for name in ("base_delay", "max_delay", "jitter", "breaker_reset"):
            if getattr(self, name) < 0:
                raise ValueError(f"Policy.{name} must not be negative")
        if self.timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("Policy.timeout and Policy.total_timeout must be positive")
        if self.breaker_failures < 0:
            raise ValueError("Policy.breaker_failures must not be negative")


DEFAULT_POLICY = Policy()
"""3 calls, 0.2 s base delay, 10 s per call, 30 s in all, breaker after 5 failures for 30 s."""

NO_RETRY = Policy(attempts=1, breaker_failures=0)
"""One call, no breaker (a handler that must never be called twice, e.g. with no key)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth another: any ``Exception`` but a ``HandlerError``."""
    from stepflow.cells.handlers import HandlerError

    return isinstance(exc, Exception) and not isinstance(exc, HandlerError | CircuitOpenError)


class CircuitBreaker:
    """Counts consecutive transient failures; refuses calls while open (see module doc).

    Thread-safe; the lock guards the state only, never a call.
    """

    def __init__(self, failures: int, reset: float, clock: Clock) -> None:
        self.failures = failures
        self.reset = reset
        self.clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (a trial call may go)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self.clock() < self._opened_at + self.reset else "half-open"

    def admit(self) -> None:
        """Let a call go, or raise :class:`CircuitOpenError`."""
        if self.failures == 0:
            return
        with self._lock:
            if self._opened_at is None:
                return
            if self.clock() >= self._opened_at + self.reset and not self._trial:
                self._trial = True  # half-open: this call alone tries the target
                return
            left = max(0.0, self._opened_at + self.reset - self.clock())
        raise CircuitOpenError(
            f"The circuit breaker is open after {self.failures} consecutive failures; the "
            f"target is not called for {left:.1f} more seconds."
        )

    def succeeded(self) -> None:
        """A call ended well (or failed for good, which says the target answers): close."""
        with self._lock:
            self._count, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        """A call failed transiently: count it; open at the limit (or when the trial failed)."""
        if self.failures == 0:
            return
        with self._lock:
            self._count += 1
            if self._trial or self._count >= self.failures:
                self._opened_at, self._trial = self.clock(), False


@dataclass(slots=True)
class Guard:
    """A :class:`Policy` and its circuit breaker: one per handler registration and process."""

    policy: Policy = DEFAULT_POLICY
    breaker: CircuitBreaker = field(init=False)

    def __post_init__(self) -> None:
        p = self.policy
        self.breaker = CircuitBreaker(p.breaker_failures, p.breaker_reset, p.clock)

    def run(self, call: Callable[[float], T]) -> T:
        """``call(timeout)`` under the policy; its result, or the last failure raised.

        Raises :class:`CircuitOpenError` when the breaker refuses a call (never
        retried). Exceptions that are not ``Exception`` (a crash) pass at once.
        """
        policy = self.policy
        start = policy.clock()

        def attempt() -> T:
            self.breaker.admit()
            left = policy.total_timeout - (policy.clock() - start)
            try:
                result = call(max(min(policy.timeout, left), 0.001))
            except Exception as exc:
                if is_transient(exc):
                    self.breaker.failed()
                else:
                    self.breaker.succeeded()
                raise
            except BaseException:
                # A crash (the process dying) says nothing of the target, and ends the trial.
                self.breaker.succeeded()
                raise
            self.breaker.succeeded()
            return result

        def stop(state: _RetryState) -> bool:
            elapsed = policy.clock() - start
            return (
                state.attempt_number >= policy.attempts
                or elapsed + state.upcoming_sleep >= policy.total_timeout
            )

        retrying = Retrying(
            stop=stop,
            wait=wait_exponential_jitter(
                multiplier=policy.base_delay, max=policy.max_delay, jitter=policy.jitter
            ),
            retry=retry_if_exception(is_transient),
            sleep=policy.sleep,
            reraise=True,
        )
        result: T = retrying(attempt)
        return result


def error_of(exc: Exception) -> tuple[str, str]:
    """The error name and cause a failed call gives its effect.

    A :class:`~stepflow.cells.handlers.HandlerError`, :class:`TransientError` or
    :class:`CircuitOpenError` names its own; Python's ``TimeoutError`` is
    ``StepFlow.Effect.Timeout``; any other exception is its class name (as
    Lambda names a function's error) and message.
    """
    from stepflow.cells.handlers import HandlerError

    if isinstance(exc, HandlerError | TransientError | CircuitOpenError):
        return exc.error, exc.cause
    if isinstance(exc, TimeoutError):
        return TIMEOUT, str(exc) or "The call timed out"
    return type(exc).__name__, str(exc)
