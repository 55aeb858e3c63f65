"""What a handler gets besides its input: the task's identity and a way to report progress."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TaskContext:
    """One task in a worker's hands.

    ``idempotency_key`` is the same for every hand-out of one task attempt
    (a redelivery after a lost lease gets the same key, a Retry gets a new
    one): use it to make side effects idempotent. ``lost`` is set when the
    lease is gone (a heartbeat was refused, or the worker released the task on
    shutdown); the handler's result will be refused, so it may stop early.
    """

    token: str
    idempotency_key: str
    activity_arn: str
    worker_name: str
    lost: threading.Event = field(default_factory=threading.Event)
    _beat: Callable[[TaskContext], bool] | None = None
    reporting: bool = False
    """Set once the handler returned: its result is on the way, heartbeats stop."""

    def heartbeat(self) -> bool:
        """Report progress now (the worker also does it on its own); False if the lease is lost."""
        return self._beat(self) if self._beat is not None else not self.lost.is_set()


def idempotency_key(token: str) -> str:
    """A key per task attempt: the token without its delivery part, hashed.

    StepFlow activity tokens are ``<where>.<task>.<sig>.<delivery>.<sig>``; any
    other token (Step Functions itself) is hashed whole.
    """
    parts = token.split(".")
    attempt = ".".join(parts[:3]) if len(parts) == 5 else token
    return hashlib.sha256(attempt.encode()).hexdigest()[:32]


class TaskFailure(Exception):
    """Raised by a handler to fail its task with this ``error`` and ``cause`` (SendTaskFailure).

    Any other exception fails the task with its class name as the error.
    """

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause
