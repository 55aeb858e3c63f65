"""The Lambda context ``stepflow local``'s pollers give each invocation of a handler.

Deployed, Lambda hands each invocation a context whose ``get_remaining_time_in_millis``
counts down to the function's timeout, and StepFlow's handlers read it: the runner
holds the tasks its own commit schedules "in place" and marks the head "held until"
its deadline (:mod:`stepflow.runtime.held_mark`), and starts a member of a task group
only if the time left covers it; the stepper starts another execution of its batch only
while a decision's budget and a margin are left, and sends the rest back to the queue
(:func:`stepflow.aws.stepper_lambda.time_left`). :class:`Invocation` is that context
here, one per invocation, so the local path runs the code the deployed path runs.

It keeps the fields Powertools' ``inject_lambda_context`` reads (``function_name``,
``memory_limit_in_mb``, ``invoked_function_arn``, ``aws_request_id``).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from stepflow.aws.sqs_bus import RUNNER_FUNCTION_TIMEOUT, STEPPER_FUNCTION_TIMEOUT

ACCOUNT = "000000000000"
REGION = "us-east-1"
MEMORY_MB = 512


@dataclass(frozen=True)
class Function:
    """A function the local stack emulates: its name and its deployed timeout (seconds)."""

    name: str
    timeout: float


STEPPER = Function("stepflow-stepper", STEPPER_FUNCTION_TIMEOUT)
"""The stepper Lambda, with the CDK stack's timeout for it (30 s)."""

RUNNER = Function("stepflow-runner", RUNNER_FUNCTION_TIMEOUT)
"""The task runner Lambda, with the CDK stack's timeout for it (900 s: Lambda's longest)."""


@dataclass(frozen=True)
class Invocation:
    """One emulated Lambda invocation's context: its deadline is ``deadline`` on ``clock``.

    Start one with :meth:`begin`. ``clock`` is a monotonic clock (seconds). The time
    left never goes below zero: a handler the pollers abandoned at its timeout runs on
    (a thread cannot be killed) and reads zero.
    """

    function_name: str
    deadline: float
    clock: Callable[[], float] = time.monotonic
    memory_limit_in_mb: int = MEMORY_MB
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def begin(
        cls, function_name: str, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> Invocation:
        """The context of an invocation of ``function_name`` starting now, ``timeout`` s long.

        Raises ValueError unless ``timeout`` is a positive finite number of seconds.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError(f"a function timeout is a number of seconds, not {timeout!r}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"a function timeout is positive and finite, not {timeout!r}")
        return cls(function_name, clock() + timeout, clock)

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN, as Lambda gives it (the local account and region)."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left until the invocation's deadline (0 once past it)."""
        left = self.deadline - self.clock()
        return max(0, int(left * 1000))
