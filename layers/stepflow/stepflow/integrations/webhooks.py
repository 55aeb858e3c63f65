"""The webhooks hook: each hook event POSTed as JSON, HMAC-signed, retried, dead-lettered.

Every hook event a target wants (its kinds and state machines) is POSTed to the
target's URL with these headers:

- ``X-StepFlow-Delivery``: the event's dedup key (``<execution ARN>#<event id>``),
  the same on every retry and redelivery: receivers drop repeats by it;
- ``X-StepFlow-Event``: the hook kind (``ExecutionSucceeded``, ``StateExited``, ...);
- ``X-StepFlow-Timestamp``: seconds since the epoch when signed;
- ``X-StepFlow-Signature``: ``v1=<hex HMAC-SHA256(secret, "<timestamp>.<delivery>." + body)>``.

A receiver verifies with :func:`verify` (recompute the HMAC over the timestamp,
a dot, the delivery id, a dot and the raw body; compare in constant time; refuse
an old timestamp), then drops a delivery id it has seen: the delivery id is
signed, so a replay under a new id fails verification. (The split is unambiguous:
the timestamp is digits and the body starts with ``{``, which no delivery id holds.)
Each target may have its own secret (:attr:`WebhookTarget.secret`); the hook's
``secret`` signs for the others.

A delivery succeeds on a 2xx answer. A connection problem, a timeout, 408, 429
or a 5xx is retried with exponential backoff (tenacity), ``attempts`` times in
all; any other answer, a refused URL, or the last failure sends the delivery to
the dead letter (:class:`DeadLetter`: an SQS queue deployed, a list in memory)
instead of blocking the stream. Only a dead letter that cannot be written fails
the batch. The stream never waits long on webhooks:

- a target whose retries all failed is *down* for ``cooldown`` seconds (kept on
  the hook across batches and records): its deliveries go straight to the dead
  letter without a request; after the cool-down one attempt probes it;
- sending (requests and backoff, all targets) may take at most ``budget``
  seconds per ``window`` seconds; a delivery that does not fit goes to the dead
  letter, each attempt's timeout is cut to what is left of the budget.

So a dead target costs one round of retries per cool-down, and webhooks delay
the stream by at most about ``budget`` seconds per ``window``. URLs are refused
exactly as HTTP tasks are (:class:`~stepflow.integrations.http_port.Urllib3Http`):
link-local and metadata addresses always, this machine when deployed, StepFlow's
own endpoints, and no redirect is followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from stepflow.hooks.events import HookEvent, HookKind
from stepflow.hooks.metrics import state_machine_name
from stepflow.hooks.support import RecentKeys
from stepflow.integrations.http_port import HttpPort, HttpProblem, HttpRequest

SIGNATURE_HEADER = "X-StepFlow-Signature"
TIMESTAMP_HEADER = "X-StepFlow-Timestamp"
DELIVERY_HEADER = "X-StepFlow-Delivery"
EVENT_HEADER = "X-StepFlow-Event"
_RETRIED_STATUSES = {408, 429}


def signature(secret: bytes, timestamp: str, delivery_id: str, body: bytes) -> str:
    """The signature header's value: ``v1=`` and the hex HMAC-SHA256 of ``timestamp.id.body``."""
    signed = timestamp.encode() + b"." + delivery_id.encode() + b"." + body
    return "v1=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    delivery_id: str,
    body: bytes,
    signature_value: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """Whether a delivery is authentic and fresh (a receiver's check; see the module doc).

    Any header text is accepted (False, never an exception, for a hostile one).
    """
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
        expected = signature(secret, timestamp, delivery_id, body).encode()
        given = signature_value.encode("utf-8", "surrogateescape")
    except (ValueError, UnicodeError):
        return False
    return age <= tolerance and hmac.compare_digest(expected, given)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL and what it wants: hook kinds and state machines (names or ARNs; None: all)."""

    url: str
    kinds: frozenset[str] | None = None
    state_machines: frozenset[str] | None = None
    secret: bytes | None = field(default=None, repr=False)
    """This target's signing secret (None: the hook's)."""

    def wants(self, event: HookEvent) -> bool:
        """Whether ``event`` goes to this target."""
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.state_machines is None:
            return True
        arn = event.execution.state_machine_arn
        return arn in self.state_machines or state_machine_name(arn) in self.state_machines


class DeadLetter(Protocol):
    """Where a delivery that could not be made goes (raises if it cannot be kept)."""

    def put(self, record: dict[str, Any]) -> None:
        """Keep ``record`` (the target URL, the body, the reason)."""
        ...


@dataclass(slots=True)
class MemoryDeadLetter:
    """A :class:`DeadLetter` in memory (the last ``capacity`` records; None: all)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    capacity: int | None = None

    def put(self, record: dict[str, Any]) -> None:
        """Keep ``record`` (the oldest dropped past ``capacity``)."""
        self.records.append(record)
        if self.capacity is not None and len(self.records) > self.capacity:
            del self.records[: len(self.records) - self.capacity]


def site_of(url: str) -> str:
    """``url``'s scheme and host (and port): what may be logged of a target.

    A webhook URL's path and query may be its secret (Slack, Teams, ...).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def redacted(text: str, url: str) -> str:
    """``text`` with ``url``'s path and query (and user info) replaced by ``...``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, "(an invalid URL)")
    secrets = [url, url.split("#", 1)[0]]
    if parts.query:
        secrets += [f"{parts.path}?{parts.query}", parts.query]
    if parts.path not in ("", "/"):
        secrets.append(parts.path)
    if parts.username or parts.password:
        secrets.append(parts.netloc.rsplit("@", 1)[0])
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            replacement = site_of(url) + "/..." if secret.startswith(parts.scheme + ":") else "..."
            text = text.replace(secret, replacement)
    return text


DEAD_LETTER_LIMIT = 256 * 1024
"""The most bytes a dead-letter message may have (SQS's classic message size limit)."""
_REASON_LIMIT = 1024


def dead_letter_message(record: dict[str, Any], limit: int = DEAD_LETTER_LIMIT) -> str:
    """``record`` as JSON of at most ``limit`` bytes.

    A larger one keeps every field but the body (the reason cut to 1 KiB), and as
    much of the body as fits, with ``"truncated": true`` and the body's full size
    in ``bodyBytes``: the ``deliveryId`` still names the event to redeliver.
    """
    text = json.dumps(record)
    if len(text) <= limit:  # ASCII: characters are bytes
        return text
    body = str(record.get("body", ""))
    cut = {
        **record,
        "reason": str(record.get("reason", ""))[:_REASON_LIMIT],
        "body": "",
        "truncated": True,
        "bodyBytes": len(body.encode()),
    }
    room = max(0, limit - len(json.dumps(cut)))
    size = room
    while size > 0:
        excess = len(json.dumps(body[:size])) - 2 - room
        if excess <= 0:
            break
        size -= excess  # each character is at least one byte once escaped
    cut["body"] = body[: max(0, size)]
    return json.dumps(cut)


class _Retryable(Exception):
    """A delivery attempt that may succeed if tried again."""


class _OutOfTime(_Retryable):
    """The time budget ran out between attempts (not retried; the target counts as down)."""


class _Final(Exception):
    """A delivery that no retry would make (a refused URL, a 4xx)."""


def body_of(event: HookEvent) -> bytes:
    """The JSON body POSTed for ``event``."""
    document = {
        "id": event.dedup_key,
        "kind": event.kind,
        "executionArn": event.execution.execution_arn,
        "stateMachineArn": event.execution.state_machine_arn,
        "name": event.execution.name,
        "executionType": event.execution.execution_type,
        "redriveCount": event.execution.redrive_count,
        "eventId": event.id,
        "stateName": event.state_name,
        "timestamp": event.timestamp,
        "event": event.event,
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


class WebhookHook:
    """:class:`~stepflow.hooks.Hook` POSTing hook events to ``targets`` (module doc)."""

    name = "webhooks"
    kinds: frozenset[HookKind] | None = None

    def __init__(
        self,
        targets: Iterable[WebhookTarget],
        *,
        secret: bytes,
        http: HttpPort,
        dead_letter: DeadLetter,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 10.0,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        cooldown: float = 300.0,
        budget: float = 60.0,
        window: float = 300.0,
    ) -> None:
        self.targets = list(targets)
        if not secret and not all(t.secret for t in self.targets):
            raise ValueError("webhooks need a signing secret")
        self.secret = secret
        self.http = http
        self.dead_letter = dead_letter
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._timer = timer
        self.cooldown = cooldown
        self.budget = budget
        self.window = window
        self._down: dict[str, float] = {}  # target URL -> when its cool-down ends (timer)
        self._window_start = timer()
        self._spent = 0.0  # seconds spent sending in the current window
        self._recent = RecentKeys()
        self.requests = 0
        """How many POSTs were sent (attempts included)."""

    def handle(self, events: Sequence[HookEvent]) -> None:
        """Deliver ``events`` to the targets that want them (repeats dropped)."""
        fresh = list(self._recent.fresh(events))
        for index, event in enumerate(fresh):
            try:
                for target in self.targets:
                    if target.wants(event):
                        self._deliver(target, event)
            except Exception:
                self._recent.forget(fresh[index:])  # the redelivery takes them from here
                raise

    def _left(self) -> float:
        """Seconds of sending left in this window (a new window starts a fresh budget)."""
        now = self._timer()
        if now - self._window_start >= self.window:
            self._window_start, self._spent = now, 0.0
        return self.budget - self._spent

    def _deliver(self, target: WebhookTarget, event: HookEvent) -> None:
        """Deliver with retries, within the budget; a down target only after its cool-down."""
        body = body_of(event)
        until = self._down.get(target.url)
        now = self._timer()
        if until is not None and now < until:
            self._dead(target, event, body, "the target is down (its last retries failed)")
            return
        if self._left() <= 0:
            self._dead(target, event, body, "the webhooks' time budget is spent")
            return

        retrying = Retrying(
            stop=stop_after_attempt(1 if until is not None else self.attempts),
            wait=wait_exponential(multiplier=self.base_delay, max=self.max_delay),
            retry=retry_if_exception(lambda exc: type(exc) is _Retryable),
            sleep=self._sleep,
            reraise=True,
        )
        started = self._timer()
        try:
            retrying(self._post, target, event, body, started)
            self._down.pop(target.url, None)
        except (_Retryable, _Final) as exc:
            if isinstance(exc, _Retryable):
                self._down[target.url] = self._timer() + self.cooldown
            self._dead(target, event, body, str(exc))
        finally:
            self._spent += max(0.0, self._timer() - started)

    def _dead(self, target: WebhookTarget, event: HookEvent, body: bytes, reason: str) -> None:
        self.dead_letter.put(
            {
                "url": target.url,
                "deliveryId": event.dedup_key,
                "kind": event.kind,
                "reason": redacted(reason, target.url),
                "body": body.decode(),
            }
        )

    def _post(self, target: WebhookTarget, event: HookEvent, body: bytes, started: float) -> None:
        left = self.budget - self._spent - (self._timer() - started)
        if left <= 0:
            raise _OutOfTime("the webhooks' time budget is spent")
        timestamp = str(int(self._clock()))
        key = event.dedup_key
        headers = (
            ("Content-Type", "application/json"),
            ("User-Agent", "StepFlow-Webhooks"),
            (DELIVERY_HEADER, event.dedup_key),
            (EVENT_HEADER, event.kind),
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, signature(target.secret or self.secret, timestamp, key, body)),
        )
        request = HttpRequest("POST", target.url, headers, body, min(self.timeout, left))
        self.requests += 1
        try:
            response = self.http.send(request)
        except HttpProblem as exc:
            if exc.kind == "invalid":
                raise _Final(exc.message) from exc
            raise _Retryable(f"{exc.kind}: {exc.message}") from exc
        if 200 <= response.status < 300:
            return
        reason = f"HTTP {response.status} {response.reason}".strip()
        if response.status >= 500 or response.status in _RETRIED_STATUSES:
            raise _Retryable(reason)
        raise _Final(reason)
