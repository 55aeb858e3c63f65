"""The Step Functions service: every supported operation over the runtime's ports."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.activities import ActivityError, ActivityRouter, ActivityService
from stepflow.activities.service import DEFAULT_LEASE_SECONDS
from stepflow.api import constraints
from stepflow.api.access import AccessControl, Caller, bound_caller, guard
from stepflow.api.aliases import Aliases
from stepflow.api.arns import Scope
from stepflow.api.errors import ApiError
from stepflow.api.executions import Executions
from stepflow.api.machines import Machines
from stepflow.api.map_runs import MapRunApi
from stepflow.api.protocol import Operation, Response, handle
from stepflow.api.sync import Synchronous
from stepflow.api.tags import Tags, check_tags
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime import CoordinationLog, MessageBus, Stepper, TaskInvoker
from stepflow.runtime.registry import DefinitionCache, StateMachineRegistry
from stepflow.runtime.signing import MessageSigner
from stepflow.runtime.task_queue import TaskQueue

OPERATIONS = (
    "CreateStateMachine",
    "DescribeStateMachine",
    "UpdateStateMachine",
    "DeleteStateMachine",
    "ListStateMachines",
    "StartExecution",
    "DescribeExecution",
    "DescribeStateMachineForExecution",
    "ListExecutions",
    "GetExecutionHistory",
    "StopExecution",
    "RedriveExecution",
    "ValidateStateMachineDefinition",
    "PublishStateMachineVersion",
    "ListStateMachineVersions",
    "DeleteStateMachineVersion",
    "CreateStateMachineAlias",
    "DescribeStateMachineAlias",
    "UpdateStateMachineAlias",
    "DeleteStateMachineAlias",
    "ListStateMachineAliases",
    "StartSyncExecution",
    "TestState",
    "ListMapRuns",
    "DescribeMapRun",
    "UpdateMapRun",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)
"""The operations StepFlow answers; any other is an ``UnknownOperationException``."""

ACTIVITY_OPERATIONS = (
    "CreateActivity",
    "DescribeActivity",
    "ListActivities",
    "DeleteActivity",
    "GetActivityTask",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
    "ReleaseTask",
)
"""Answered when the service has a task queue (see :mod:`stepflow.activities`).

``ReleaseTask(taskToken)`` is StepFlow's own: a stopping worker gives a task back.
"""

ACTIVITY_POLL_SECONDS = 25
"""GetActivityTask's long poll behind API Gateway, whose integrations time out at 29 s."""


class StepFunctionsService:
    """The API: JSON-protocol requests in, responses out; state in a log and a registry.

    Its stepper commits and enqueues and never runs a task (``inline_tasks``
    off): whatever a request schedules is sent to the transition queue before
    the answer. :func:`stepflow.aws.wiring.build` passes the deployed one,
    which also leaves a delayed repair message after a failed send and before a
    commit that ends an execution.
    ``access`` is who may act on what (:mod:`stepflow.api.access`; default:
    nothing checked, IAM decides alone).
    """

    def __init__(
        self,
        *,
        log: CoordinationLog,
        bus: MessageBus,
        registry: StateMachineRegistry,
        invoker: TaskInvoker,
        scope: Scope | None = None,
        clock: Callable[[], float] = time.time,
        task_queue: TaskQueue | None = None,
        activity_poll_seconds: float = ACTIVITY_POLL_SECONDS,
        stepper: Stepper | None = None,
        limits: Limits | None = None,
        access: AccessControl | None = None,
        signer: MessageSigner | None = None,
        activity_lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        # Activity task messages are signed with the bus's key unless another is given.
        signer = signer or getattr(bus, "signer", None)
        self.signer = signer
        """Verifies activity task messages at hand-out (its ``forged`` counts refusals)."""
        if task_queue is not None and signer is None:
            raise ValueError("activity task messages need a signer (the bus's)")
        self.limits = limits or (stepper.limits if stepper is not None else DEFAULT_LIMITS)
        """What a request may carry (see :mod:`stepflow.api.constraints`)."""
        self.scope = scope or Scope.from_environment()
        # The API commits and enqueues; the stepper behind the transition queue runs tasks.
        self.stepper = stepper or Stepper(
            log=log,
            bus=bus,
            definitions=DefinitionCache(registry),
            clock=clock,
            invoker=invoker,
            inline_tasks=False,
            router=None
            if task_queue is None or signer is None
            else ActivityRouter(task_queue, bus, signer=signer),
            limits=self.limits,
        )
        self.machines = Machines(registry, self.scope, clock)
        self.executions = Executions(self.machines, log, self.stepper)
        """StartExecution and friends; a Task's nested start goes through it too."""
        activities = None
        if task_queue is not None and signer is not None:
            activities = ActivityService(
                stepper=self.stepper,
                queue=task_queue,
                signer=signer,
                region=self.scope.region,
                account=self.scope.account,
                clock=clock,
                lease_seconds=activity_lease_seconds,
                payloads=getattr(bus, "payloads", None),
            )
        self.tags = Tags(registry, self.scope, activities)
        """The tags of state machines and activities."""
        parts = (
            self.machines,
            self.executions,
            Synchronous(self.machines, invoker, clock, self.limits),
            Aliases(self.machines),
            MapRunApi(self.scope, log, self.stepper),
            self.tags,
        )
        self.operations: dict[str, Operation] = {}
        for name in OPERATIONS:
            method = _snake(name)
            (owner,) = (part for part in parts if hasattr(part, method))
            self.operations[name] = getattr(owner, method)
        if activities is not None:
            for name in ACTIVITY_OPERATIONS:
                operation = getattr(activities, _snake(name))
                poll = activity_poll_seconds if name == "GetActivityTask" else None
                self.operations[name] = _activity_operation(operation, poll)
            self.operations["CreateActivity"] = _create_activity(
                self.operations["CreateActivity"], self.tags
            )
            self.operations["DeleteActivity"] = _delete_activity(
                self.operations["DeleteActivity"], self.tags
            )
        self.access = access or AccessControl()
        self.operations = guard(self.operations, self.scope, self.access)

    def handle(
        self,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        on_error: Callable[[Exception], None] | None = None,
        caller: Caller | None = None,
    ) -> Response:
        """Answer one HTTP request of ``caller``: ``(status, headers, body)``."""
        with bound_caller(caller):
            return handle(
                self.operations,
                method=method,
                path=path,
                headers=headers,
                body=body,
                on_error=on_error,
                limits=self.limits,
            )

    def call(
        self, operation: str, params: dict[str, Any], *, caller: Caller | None = None
    ) -> dict[str, Any]:
        """Run one operation of ``caller`` on Python parameters (raises :class:`ApiError`).

        The members' constraints and limits are checked as for a request.
        """
        if operation not in self.operations:
            raise ApiError("UnknownOperationException", f"Unknown operation {operation!r}")
        constraints.check(operation, params, self.limits)
        with bound_caller(caller):
            return self.operations[operation](params)


def _activity_operation(operation: Operation, poll: float | None) -> Operation:
    """``operation`` with :class:`ActivityError` reported as :class:`ApiError`.

    ``poll`` caps GetActivityTask's long poll.
    """

    def call(params: dict[str, Any]) -> dict[str, Any]:
        if poll is not None:
            params = {**params, "waitSeconds": poll}
        try:
            return operation(params)
        except ActivityError as exc:
            raise ApiError(exc.code, exc.message, exc.status) from None

    return call


def _create_activity(create: Operation, tags: Tags) -> Operation:
    """CreateActivity with its ``tags`` checked first and stored beside the activity."""

    def call(params: dict[str, Any]) -> dict[str, Any]:
        given = check_tags(params.get("tags"))
        created = create({k: v for k, v in params.items() if k != "tags"})
        tags.activity_created(created["activityArn"], created["creationDate"], given)
        return created

    return call


def _delete_activity(delete: Operation, tags: Tags) -> Operation:
    """DeleteActivity, and its tags with it."""

    def call(params: dict[str, Any]) -> dict[str, Any]:
        result = delete(params)
        tags.activity_deleted(str(params["activityArn"]))
        return result

    return call


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
