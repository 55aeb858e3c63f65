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
- **Circuit breaker** (one per registration, endpoint and process: an effect
  type names its endpoint with ``breaker_endpoint()``, e.g. ``https://host:443``
  or ``aws:sqs:us-east-1``; the rest share the registration's): after
  ``breaker_failures`` consecutive transient failures it opens, and for
  ``breaker_reset`` seconds every request fails at once with
  :class:`CircuitOpenError` without calling the target. That refusal is NOT an
  effect failure: nothing is recorded, and the task's attempt is delivered
  again later under the same keys (see :class:`stepflow.cells.context.CellContext`).
  Then one trial call is let through (half-open): success closes it, failure
  opens it again; a call that began before the breaker last changed state
  cannot change it (no flapping). Permanent errors do not count. pybreaker was
  considered and not used: its ``CircuitBreaker.call`` holds the breaker's lock
  for the whole call, which would serialise every concurrent call of a handler
  in a process, and it reads the wall clock, which tests cannot move.

Sleeping happens only here, through the policy's injectable ``sleep`` and
``clock`` (tests pass fakes and take no real time).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
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
    """A failure worth retrying (throttled, unavailable, timed out): ``error`` and ``cause``.

    ``performed``: whether the call may have been performed anyway (``"no"``: refused
    before it was sent; ``"unknown"``: sent, no answer), recorded with the failure.
    """

    def __init__(self, error: str = TRANSIENT, cause: str = "", performed: str = "no") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.performed = performed


class EffectTimeout(TransientError):
    """A call gave up after the time it was given (``call.timeout``).

    Its outcome is unknown unless the handler knows the request was never sent
    (``performed="no"``: no connection was made).
    """

    def __init__(self, cause: str = "", performed: str = "unknown") -> None:
        super().__init__(TIMEOUT, cause, performed)


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


@dataclass(frozen=True, slots=True)
class Admission:
    """A call let through by a :class:`CircuitBreaker`.

    ``generation``: the breaker's then; ``trial``: the half-open trial. Its end is
    reported with it, so that a call that began before the breaker changed state
    cannot change it again.
    """

    generation: int
    trial: bool = False


class CircuitBreaker:
    """Counts consecutive transient failures; refuses calls while open (see module doc).

    Thread-safe; the lock guards the state only, never a call. Every change of state
    (open, close) starts a new generation: the end of a call admitted in an earlier
    one is ignored (a success in flight when it opened does not close it, a failure
    in flight when the trial closed it does not count against the closed breaker).
    """

    def __init__(self, failures: int, reset: float, clock: Clock) -> None:
        self.failures = failures
        self.reset = reset
        self.clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None
        self._generation = 0

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (a trial call may go)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "open" if self.clock() < self._opened_at + self.reset else "half-open"

    def admit(self) -> Admission:
        """Let a call go (its :class:`Admission`), or raise :class:`CircuitOpenError`."""
        with self._lock:
            now = self.clock()
            if self.failures == 0 or self._opened_at is None:
                return Admission(self._generation)
            # half-open: one call alone tries the target (another once a trial is stale)
            trial_free = self._trial_at is None or now >= self._trial_at + self.reset
            if now >= self._opened_at + self.reset and trial_free:
                self._trial_at = now
                return Admission(self._generation, trial=True)
            left = max(0.0, self._opened_at + self.reset - now)
        raise CircuitOpenError(
            f"The circuit breaker is open after {self.failures} consecutive failures; the "
            f"target is not called for {left:.1f} more seconds."
        )

    def succeeded(self, admission: Admission) -> None:
        """A call ended well (or failed for good, which says the target answers).

        Resets the count of a closed breaker; closes an open one only when the call
        was its trial.
        """
        with self._lock:
            if admission.generation != self._generation:
                return  # began before the breaker last changed: says nothing of now
            if self._opened_at is None:
                self._count = 0
            elif admission.trial:
                self._change(opened_at=None)

    def failed(self, admission: Admission) -> None:
        """A call failed transiently: count it; open at the limit (or when the trial failed)."""
        if self.failures == 0:
            return
        with self._lock:
            if admission.generation != self._generation:
                return
            if self._opened_at is None:
                self._count += 1
                if self._count >= self.failures:
                    self._change(opened_at=self.clock())
            elif admission.trial:
                self._change(opened_at=self.clock())

    def released(self, admission: Admission) -> None:
        """A call ended saying nothing of the target (a crash): a trial lets another go."""
        with self._lock:
            if admission.trial and admission.generation == self._generation:
                self._trial_at = None

    def _change(self, opened_at: float | None) -> None:
        self._opened_at, self._trial_at, self._count = opened_at, None, 0
        self._generation += 1


MAX_BREAKERS = 1024
"""Breakers one :class:`Guard` keeps (one per endpoint); the least recently used goes first."""


@dataclass(slots=True)
class Guard:
    """A :class:`Policy` and its circuit breakers.

    One guard per handler registration and process, one breaker per endpoint the
    handler calls (see :meth:`breaker`).
    """

    policy: Policy = DEFAULT_POLICY
    _breakers: OrderedDict[str, CircuitBreaker] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._breakers = OrderedDict()
        self._lock = threading.Lock()

    def breaker(self, endpoint: str = "") -> CircuitBreaker:
        """The breaker of ``endpoint`` (``""``: an effect that names none), made on first use.

        At most :data:`MAX_BREAKERS` are kept, least recently used dropped first (an
        endpoint seen again after it was dropped starts closed).
        """
        with self._lock:
            found = self._breakers.get(endpoint)
            if found is not None:
                self._breakers.move_to_end(endpoint)
                return found
            p = self.policy
            made = self._breakers[endpoint] = CircuitBreaker(
                p.breaker_failures, p.breaker_reset, p.clock
            )
            while len(self._breakers) > MAX_BREAKERS:
                self._breakers.popitem(last=False)
            return made

    def run(self, call: Callable[[float], T], endpoint: str = "") -> T:
        """``call(timeout)`` under the policy and ``endpoint``'s breaker.

        Returns its result, or raises the last failure; raises
        :class:`CircuitOpenError` when the breaker refuses a call (never retried).
        Exceptions that are not ``Exception`` (a crash) pass at once.
        """
        policy = self.policy
        breaker = self.breaker(endpoint)
        start = policy.clock()

        def attempt() -> T:
            admission = breaker.admit()
            left = policy.total_timeout - (policy.clock() - start)
            try:
                result = call(max(min(policy.timeout, left), 0.001))
            except Exception as exc:
                if is_transient(exc):
                    breaker.failed(admission)
                else:
                    breaker.succeeded(admission)
                raise
            except BaseException:
                breaker.released(admission)  # the process dying says nothing of the target
                raise
            breaker.succeeded(admission)
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
