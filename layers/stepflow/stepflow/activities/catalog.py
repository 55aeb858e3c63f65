"""CreateActivity, DescribeActivity, ListActivities, DeleteActivity over the task queues.

An activity *is* its task queue: the queue's tags carry the activity's name
and creation date, so there is no second store to keep in step with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepflow.activities.errors import ActivityError, activity_does_not_exist, validation
from stepflow.activities.names import activity_arn, check_name, name_of, queue_name
from stepflow.runtime.task_queue import TaskQueue

TAG_NAME = "stepflow:activity"
TAG_CREATED = "stepflow:created"

MAX_RESULTS = 1000


class ActivityCatalog:
    """The activity operations; mixed into :class:`~stepflow.activities.ActivityService`."""

    queue: TaskQueue
    region: str
    account: str
    clock: Callable[[], float]

    def create_activity(self, p: dict[str, Any]) -> dict[str, Any]:
        """CreateActivity: idempotent by name (returns the existing activity).

        Its ``tags`` are the API's to keep (:mod:`stepflow.api.tags`), not the queue's.
        """
        name = check_name(p.get("name"))
        arn = activity_arn(self.region, self.account, name)
        found = self.queue.tags(queue_name(name))
        if found is not None and found.get(TAG_NAME) == name:
            return {"activityArn": arn, "creationDate": float(found[TAG_CREATED])}
        if found is not None:
            raise ActivityError("ActivityAlreadyExists", f"'{name}' clashes with another activity")
        now = self.clock()
        tags = {TAG_NAME: name, TAG_CREATED: repr(now)}
        self.queue.create(queue_name(name), tags)
        return {"activityArn": arn, "creationDate": now}

    def describe_activity(self, p: dict[str, Any]) -> dict[str, Any]:
        """DescribeActivity."""
        arn = p.get("activityArn")
        name = name_of(arn, self.region, self.account)
        found = self.queue.tags(queue_name(name))
        if found is None or found.get(TAG_NAME) != name:
            raise activity_does_not_exist(str(arn))
        return {"activityArn": arn, "name": name, "creationDate": float(found[TAG_CREATED])}

    def delete_activity(self, p: dict[str, Any]) -> dict[str, Any]:
        """DeleteActivity: its queue and the tasks in it go (a missing one is no error)."""
        name = name_of(p.get("activityArn"), self.region, self.account)
        self.queue.delete(queue_name(name))
        return {}

    def list_activities(self, p: dict[str, Any]) -> dict[str, Any]:
        """ListActivities, by name, paged (``maxResults`` up to 1000, default 100)."""
        limit = p.get("maxResults") or 100
        if not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
            raise validation(f"maxResults must be between 1 and {MAX_RESULTS}")
        token = p.get("nextToken")
        names = self.queue.names()
        try:
            start = int(token) if token is not None else 0
        except (TypeError, ValueError):
            start = -1
        if not 0 <= start <= len(names):
            raise ActivityError("InvalidToken", f"Invalid Token: '{token}'")
        activities = []
        for queue in names[start : start + limit]:
            tags = self.queue.tags(queue)
            if tags is None or TAG_NAME not in tags:
                continue  # deleted meanwhile, or not an activity's queue
            name = tags[TAG_NAME]
            activities.append(
                {
                    "activityArn": activity_arn(self.region, self.account, name),
                    "name": name,
                    "creationDate": float(tags[TAG_CREATED]),
                }
            )
        result: dict[str, Any] = {"activities": activities}
        if start + limit < len(names):
            result["nextToken"] = str(start + limit)
        return result
