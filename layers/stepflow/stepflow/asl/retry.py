"""Retriers: the validated ``Retry`` policy of a Task, Parallel or Map state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JitterStrategy = Literal["FULL", "NONE"]

MAX_DELAY = 99_999_999.0
"""Longest retry delay in seconds: ASL's cap on any duration."""


@dataclass(frozen=True, slots=True)
class Retrier:
    """One entry of a state's ``Retry`` list.

    Attributes:
        error_equals: error names this retrier matches (``States.ALL`` matches all).
        interval_seconds: delay before the first retry.
        max_attempts: retries allowed (0 means never retry).
        backoff_rate: multiplier applied to the delay at each retry.
        max_delay_seconds: cap on the delay, if set.
        jitter_strategy: ``FULL`` randomises each delay in [0, delay].
    """

    error_equals: tuple[str, ...]
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None
    jitter_strategy: JitterStrategy = "NONE"

    def delay(self, retry_count: int, jitter: float | None = None) -> float:
        """The delay in seconds before retry number ``retry_count`` (0-based).

        ``jitter`` is a number in [0, 1) supplied by the caller (the engine is
        pure, so randomness comes from outside) and used for ``FULL`` jitter.
        """
        try:
            delay = min(self.interval_seconds * self.backoff_rate**retry_count, MAX_DELAY)
        except OverflowError:  # a long run of retries with a large BackoffRate
            delay = MAX_DELAY
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        if self.jitter_strategy == "FULL" and jitter is not None:
            delay *= jitter
        return float(delay)
