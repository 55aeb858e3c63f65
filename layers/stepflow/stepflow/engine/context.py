"""The context object (``$$``) and time formatting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepflow.engine.model import ExecutionState, Frame

_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()


def iso(epoch: float) -> str:
    """Epoch seconds as Step Functions prints timestamps: ``2024-01-01T00:00:00.000Z``.

    Times past year 9999 (a deadline no clock will reach) print as the last one.
    """
    when = datetime.fromtimestamp(min(max(epoch, 0.0), _LATEST), UTC)
    return when.isoformat(timespec="milliseconds")[:-6] + "Z"


def context_object(
    state: ExecutionState,
    frame: Frame,
    *,
    task_token: str | None = None,
    map_item: tuple[int, Any] | None = None,
) -> dict[str, Any]:
    """The ``$$`` object a state sees while it runs."""
    ctx: dict[str, Any] = {
        "Execution": {
            "Id": state.execution_arn,
            "Input": state.input,
            "StartTime": state.start_time,
            "Name": state.name,
            "RoleArn": state.role_arn,
            "RedriveCount": state.redrive_count,
        },
        "StateMachine": {"Id": state.state_machine_arn, "Name": state.state_machine_name},
        "State": {
            "EnteredTime": frame.entered_time,
            "Name": frame.state,
            "RetryCount": frame.retry_count,
        },
    }
    if task_token is not None:
        ctx["Task"] = {"Token": task_token}
    if map_item is not None:
        ctx["Map"] = {"Item": {"Index": map_item[0], "Value": map_item[1]}}
    return ctx
