"""Task tokens: where they point, and whether they are genuine and current.

A callback token (``.waitForTaskToken``) is the engine's token for the attempt
(:func:`stepflow.engine.tasks.token_for`): the execution's location, the task
id and an HMAC under the execution's secret key (128 random bits). An
activity task is handed out once per delivery; its token adds the delivery
number and an HMAC over it, so the token of an earlier delivery of the same
attempt is refused once the task was handed to another worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from stepflow.activities.errors import invalid_token
from stepflow.engine.model import ExecutionState
from stepflow.engine.tasks import token_for
from stepflow.runtime.stepper import child_arn

MAX_TOKEN_LENGTH = 1024
"""Step Functions' limit on a task token's length."""


@dataclass(frozen=True, slots=True)
class TaskToken:
    """A parsed token: the log ARN of its execution, its attempt and (activities) delivery."""

    text: str
    execution_arn: str
    task_id: str
    delivery: int | None


def parse(text: object) -> TaskToken:
    """Read a token's parts; :func:`~stepflow.activities.errors.invalid_token` if malformed."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TOKEN_LENGTH:
        raise invalid_token("a task token is a string of 1 to 1024 characters")
    parts = text.split(".")
    if len(parts) not in (3, 5):
        raise invalid_token("malformed token")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        location = base64.urlsafe_b64decode(padded.encode()).decode()
        delivery = int(parts[3]) if len(parts) == 5 else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_token("malformed token") from None
    parent, bar, child_id = location.partition("|")
    arn = child_arn(parent, child_id) if bar else location
    if not arn.startswith("arn:") or (delivery is not None and delivery < 1):
        raise invalid_token("malformed token")
    return TaskToken(text, arn, parts[1], delivery)


def delivery_token(state: ExecutionState, task_id: str, delivery: int) -> str:
    """The token of the ``delivery``-th hand-out of an activity attempt to a worker."""
    base = token_for(state, task_id)
    return f"{base}.{delivery}.{_sign(state, f'{base}:{delivery}')}"


def genuine(token: TaskToken, state: ExecutionState) -> bool:
    """True if ``state``'s key signed ``token`` (compared in constant time)."""
    if token.delivery is None:
        expected = token_for(state, token.task_id)
    else:
        expected = delivery_token(state, token.task_id, token.delivery)
    return hmac.compare_digest(expected.encode(), token.text.encode())


def _sign(state: ExecutionState, text: str) -> str:
    key = (state.token_key or str(state.seed)).encode()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]
