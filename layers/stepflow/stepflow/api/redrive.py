"""Whether an execution can be redriven, and the redrive fields of DescribeExecution.

AWS's rules (``RedriveExecution``): a FAILED, TIMED_OUT or ABORTED Standard
execution can be redriven within 14 days of its stop
(``Limits.redrive_window_seconds``), if its history has room for the redrive.
The reasons are AWS's ``redriveStatusReason`` texts.
"""

from __future__ import annotations

from typing import Any

from stepflow.engine import ExecutionState
from stepflow.limits import Limits
from stepflow.runtime import ExecutionRecord

REDRIVABLE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")

PERIOD_EXCEEDED = "Execution redrivable period exceeded"
EVENT_LIMIT_EXCEEDED = "Execution history event limit exceeded"
MAP_RUN_CHILD = (
    "Execution is a child workflow execution of a Map Run: it is redriven by redriving"
    " its parent execution"
)


def not_redrivable_reason(
    record: ExecutionRecord, state: ExecutionState, now: float, limits: Limits
) -> str | None:
    """Why ``record`` cannot be redriven at ``now``, or None if it can."""
    if record.status not in REDRIVABLE_STATUSES:
        return f"Execution is {record.status} and cannot be redriven"
    if "#" in record.execution_arn:  # a Map's child execution: its parent is redriven
        return "Execution is a child of a Map state and cannot be redriven on its own"
    stopped = record.stop_date if record.stop_date is not None else record.start_date
    if now - stopped > limits.redrive_window_seconds:
        return PERIOD_EXCEEDED
    # ExecutionRedriven and at least one more event must fit under the cap (which does
    # not count a cell's effect events)
    if state.next_event_id - state.effect_events + 1 > limits.max_events_per_execution:
        return EVENT_LIMIT_EXCEEDED
    return None


def direct_redrive_refusal(
    record: ExecutionRecord, state: ExecutionState, now: float, limits: Limits
) -> str | None:
    """Why RedriveExecution refuses ``record`` (None: it redrives it).

    As :func:`not_redrivable_reason`, and a Map Run's child workflow execution (a
    distributed Map's child, an inline Map's iteration run in a map run) is refused:
    AWS redrives it only through its parent (``ExecutionNotRedrivable``), while its
    DescribeExecution's ``redriveStatus`` says whether the Map Run can redrive it.
    """
    reason = not_redrivable_reason(record, state, now, limits)
    if reason is None and state.parent is not None:
        return MAP_RUN_CHILD
    return reason


def redrive_fields(
    record: ExecutionRecord, state: ExecutionState, now: float, limits: Limits
) -> dict[str, Any]:
    """``redriveCount``, ``redriveDate``, ``redriveStatus`` and ``redriveStatusReason``."""
    fields: dict[str, Any] = {"redriveCount": state.redrive_count}
    if state.redrive_date is not None:
        fields["redriveDate"] = state.redrive_date
    reason = not_redrivable_reason(record, state, now, limits)
    if reason is None:
        fields["redriveStatus"] = "REDRIVABLE"
    else:
        fields["redriveStatus"] = "NOT_REDRIVABLE"
        fields["redriveStatusReason"] = reason
    return fields
