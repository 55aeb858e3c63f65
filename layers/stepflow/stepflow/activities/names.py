"""Activity names and ARNs, and the task queue that holds an activity's tasks."""

from __future__ import annotations

import hashlib
import re

from stepflow.activities.errors import ActivityError, invalid_arn

CELL_ACTIVITY_PREFIX = "stepflow-cells-"
"""The activities of StepFlow's cell queues (:mod:`stepflow.cells.queues`): no workflow Task's."""

_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_QUEUE_SAFE = re.compile(r"[A-Za-z0-9_-]{1,60}")


def check_name(name: object) -> str:
    """An activity name as Step Functions accepts it (1-80 characters, no special ones)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 80 or _FORBIDDEN.search(name):
        raise ActivityError("InvalidName", f"Invalid Name: '{name}'")
    return name


def activity_arn(region: str, account: str, name: str) -> str:
    """``arn:aws:states:<region>:<account>:activity:<name>``."""
    return f"arn:aws:states:{region}:{account}:activity:{name}"


def name_of(arn: object, region: str, account: str) -> str:
    """The activity name in ``arn``; :func:`invalid_arn` unless it is one of ours."""
    if not isinstance(arn, str):
        raise invalid_arn(str(arn))
    parts = arn.split(":")
    if len(parts) != 7 or parts[:3] != ["arn", "aws", "states"] or parts[5] != "activity":
        raise invalid_arn(arn)
    if parts[3] != region or parts[4] != account:
        raise invalid_arn(arn)
    return check_name(parts[6])


def queue_name(activity: str) -> str:
    """The task queue of activity ``activity``: its name if SQS takes it, else a hashed one.

    Short enough for SQS's 80 characters with the deployment prefix.
    """
    if _QUEUE_SAFE.fullmatch(activity):
        return activity
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", activity)[:40]
    return f"{safe}-{hashlib.sha256(activity.encode()).hexdigest()[:16]}"


def is_cell_activity(resource: str) -> bool:
    """True if ``resource`` is a cell queue's activity ARN (``...:activity:stepflow-cells-*``).

    Only StepFlow's router puts tasks there: a workflow Task on one could hand a
    worker a forged cell task envelope (docs/cells-workers.md).
    """
    parts = resource.split(":", 6)
    return len(parts) == 7 and parts[5] == "activity" and parts[6].startswith(CELL_ACTIVITY_PREFIX)
