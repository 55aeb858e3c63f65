"""The test environment's task side: callback and activity tasks waiting for an answer.

A ``.waitForTaskToken`` task or an activity task waits for SendTaskSuccess /
SendTaskFailure. In a :class:`~stepflow.testing.WorkflowEnvironment` a handler
bound to its resource answers it (through the same
:class:`~stepflow.activities.ActivityService` the API uses); otherwise it
stays open, listed by :meth:`WorkflowEnvironment.open_tasks`, for the test to answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stepflow.activities import ActivityError, ActivityService
from stepflow.activities.names import queue_name
from stepflow.activities.router import ActivityRouter
from stepflow.activities.tokens import parse
from stepflow.engine.resources import describe
from stepflow.runtime.messages import Message
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.payloads import PayloadStore
from stepflow.runtime.ports import MessageBus
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.task_queue import TaskQueue
from stepflow.testing.handlers import Handler, call_handler, find_handler
from stepflow.testing.timing import HandlerDelayedError


@dataclass(frozen=True, slots=True)
class OpenTask:
    """A callback or activity task waiting for SendTaskSuccess / SendTaskFailure.

    Attributes:
        kind: ``"callback"`` (a ``.waitForTaskToken`` resource) or ``"activity"``.
        token: the task token to answer with (an activity's is its delivery's).
        execution_arn: the execution (a child execution's own ARN) the task belongs to.
        task_id: the engine's id of the task attempt.
        state_name: the Task state.
        resource: the Task's resource.
        input: the task's input (for an activity, what GetActivityTask returned, parsed).
    """

    kind: Literal["callback", "activity"]
    token: str
    execution_arn: str
    task_id: str
    state_name: str
    resource: str
    input: Any


Report = tuple[str, TaskOutcome]
"""A handler's answer to a task: its token and outcome, sent after the current batch."""


class CallbackTasks:
    """The environment's task invoker: runs bound handlers, keeps callbacks open.

    An ordinary task runs on ``inner``. For a ``.waitForTaskToken`` resource
    a handler bound to the resource is called on its input and its outcome is
    queued as a report (sent as SendTaskSuccess / SendTaskFailure with the
    task's token once the current batch is committed). Without a handler the
    request is sent through ``integrations`` when the environment has them (its
    response is TaskSubmitted's output), and the task is recorded as open for
    the test (or the worker that received the request) to answer.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        inner: TaskInvoker,
        *,
        integrations: TaskInvoker | None = None,
        clock: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.handlers, self.inner, self.integrations = handlers, inner, integrations
        self.clock = clock
        self.open: dict[str, OpenTask] = {}
        self.reports: list[Report] = []
        self.later: list[tuple[float, Report]] = []
        """Reports of handlers that answered with ``Delay``: sent once their time is due."""
        self.unanswered: list[str] = []
        """Tokens of open tasks whose handler answered ``NO_ANSWER``: never answered."""

    def answer(self, token: str, call: Callable[[], TaskOutcome]) -> None:
        """Queue the report of a handler ``call`` for ``token``: now, later, or never."""
        try:
            outcome = call()
        except HandlerDelayedError as delayed:
            if delayed.outcome is None:
                self.unanswered.append(token)
            else:
                self.later.append((self.clock() + delayed.seconds, (token, delayed.outcome)))
            return
        self.reports.append((token, outcome))

    def free(self, is_open: Callable[[str, str], bool]) -> None:
        """Forget the unanswered tokens of attempts no longer open (``is_open(execution, id)``)."""
        still = []
        for token in self.unanswered:
            parsed = parse(token)
            if is_open(parsed.execution_arn, parsed.task_id):
                still.append(token)
        self.unanswered = still

    def due_reports(self) -> None:
        """Move the delayed reports due by now to :attr:`reports`."""
        now = self.clock()
        self.reports.extend(report for due, report in self.later if due <= now)
        self.later = [(due, report) for due, report in self.later if due > now]

    def next_due(self) -> float | None:
        """When the next delayed report is due (None: none waits)."""
        return min((due for due, _ in self.later), default=None)

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Run the task of an inline task message body."""
        resource = str(body.get("resource", ""))
        if not describe(resource).wait_for_token:
            return self.inner(body)
        token = str(body["task_token"])
        found = find_handler(self.handlers, resource, body.get("input"))
        if found is not None:
            handler, payload, _ = found
            self.answer(token, lambda: call_handler(handler, payload, resource, virtual_time=True))
            return TaskOutcome.succeeded(None)
        sent = TaskOutcome.succeeded(None)
        if self.integrations is not None:
            sent = self.integrations(body)
            if not sent.ok:
                return sent
        parsed = parse(token)
        self.open[token] = OpenTask(
            "callback",
            token,
            parsed.execution_arn,
            parsed.task_id,
            str(body.get("state_name", "")),
            resource,
            body.get("input"),
        )
        return sent


class AutoActivityRouter(ActivityRouter):
    """Routes activity tasks to their queues, creating a missing activity on first use.

    Remembers each activity's ARN by queue, so the environment can poll the
    queues whose activity has a handler.
    """

    def __init__(
        self,
        queue: TaskQueue,
        bus: MessageBus,
        activities: Callable[[], ActivityService],
        *,
        signer: MessageSigner,
        payloads: PayloadStore | None = None,
    ) -> None:
        super().__init__(queue, bus, signer=signer, payloads=payloads)
        self.activities = activities
        self.arns: dict[str, str] = {}

    def dispatch(self, message: Message) -> None:
        """Create the activity if needed, then enqueue.

        Only an activity of the environment's region and account is created;
        a task on another one fails as on a missing activity.
        """
        resource = str(message.body["resource"])
        parts = resource.split(":", 6)
        service = self.activities()
        if (parts[3], parts[4]) == (service.region, service.account):
            self.arns.setdefault(queue_name(parts[6]), resource)
            if self.queue.tags(queue_name(parts[6])) is None:
                with contextlib.suppress(ActivityError):  # an invalid name: the task fails
                    service.create_activity({"name": parts[6]})
        super().dispatch(message)
