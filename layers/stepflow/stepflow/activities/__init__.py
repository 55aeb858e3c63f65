"""Activities and callbacks: deferred tasks leased to workers through task queues.

:class:`ActivityService` implements CreateActivity, DescribeActivity,
ListActivities, DeleteActivity, GetActivityTask, SendTaskSuccess,
SendTaskFailure and SendTaskHeartbeat over the coordination log (through the
:class:`~stepflow.runtime.Stepper`) and a
:class:`~stepflow.runtime.task_queue.TaskQueue`. :class:`ActivityRouter` sends
activity tasks to their queues. The ``.waitForTaskToken`` requests are sent by
the integrations (:mod:`stepflow.integrations`); their answers come back here.
"""

from stepflow.activities.errors import ActivityError
from stepflow.activities.router import ActivityRouter
from stepflow.activities.service import ActivityService
from stepflow.activities.tasks import LEASE_EXPIRED
from stepflow.activities.tokens import TaskToken, parse

__all__ = [
    "LEASE_EXPIRED",
    "ActivityError",
    "ActivityRouter",
    "ActivityService",
    "TaskToken",
    "parse",
]
