"""The API side of nested executions: a Task's StartExecution, in process.

:class:`ApiExecutionStarter` implements :class:`stepflow.runtime.nested.ExecutionStarter`
with the API's own StartExecution (:meth:`stepflow.api.executions.Executions.start`):
versions and aliases resolved, the name and input checked, the machine's roleArn,
``ExecutionAlreadyExists``. There is no HTTP hop and no API access policy: the
Task's role is the principal (recorded as the child's ``startedBy``). With a
:class:`~stepflow.api.pass_role.StartChecker` (the deployed stack's stepper and
runner: ``STEPFLOW_NESTED_START_CHECK=iam``) IAM decides, as on AWS, whether that
role may ``states:StartExecution`` on the target (SimulatePrincipalPolicy); a
denial fails the task with ``StepFunctions.AccessDeniedException`` and starts nothing.
The stepper Lambda, the API Lambda, ``stepflow local`` and
:class:`stepflow.testing.WorkflowEnvironment` all build one from their service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepflow.api import constraints
from stepflow.api.errors import ApiError
from stepflow.api.executions import STARTED_BY, Executions
from stepflow.api.pass_role import PassRoleCheckError, StartChecker
from stepflow.limits import Limits
from stepflow.runtime.nested import NestedStart, StartedExecution, StartRefusedError

STARTED_BY_EXECUTION = "startedByExecution"
"""Head attribute: the execution whose Task started this one."""
STARTED_BY_TASK = "startedByTask"
"""Head attribute: the task attempt (its id in that execution) that started this one."""
EXISTS = "ExecutionAlreadyExists"
NESTING_DEPTH = "nestingDepth"
"""Head attribute: how many Task starts separate this execution from one a user started."""

MAX_NESTING_DEPTH = 1000
"""The deepest chain of executions starting executions (a workflow that starts itself).

AWS has no such guard, only its quotas on open executions; a cycle there runs until
one is hit (``StepFunctions.ExecutionLimitExceeded``). StepFlow refuses the start
with that error once a chain is this deep, so a cycle ends instead of filling the log."""


class ApiExecutionStarter:
    """Starts a Task's executions through ``executions`` (given lazily: built after the tasks).

    ``limits`` bound the request as the API bounds one (sizes of the ARN, name and input);
    ``check`` (None: not checked) decides whether the task's role may start the target.
    """

    def __init__(
        self,
        executions: Callable[[], Executions],
        limits: Callable[[], Limits],
        check: StartChecker | None = None,
    ) -> None:
        self._executions = executions
        self._limits = limits
        self._check = check

    def start(self, request: NestedStart) -> StartedExecution:
        """StartExecution for ``request``; :class:`StartRefusedError` with the API's error."""
        executions = self._executions()
        params: dict[str, Any] = {
            "stateMachineArn": request.state_machine_arn,
            "input": request.input,
        }
        if request.name is not None:
            params["name"] = request.name
        try:
            constraints.check("StartExecution", params, self._limits())
            self._authorize(request)
            attributes = self._attributes(executions, request)
            record = executions.start(params, attributes=attributes, caller=request.caller)
        except ApiError as exc:
            found = self._started_before(executions, request) if exc.code == EXISTS else None
            if found is not None:
                return found
            raise StartRefusedError(exc.code, exc.message) from None
        return StartedExecution(record.execution_arn, record.start_date)

    def _authorize(self, request: NestedStart) -> None:
        """AccessDeniedException unless the task's role may StartExecution on the target.

        A check that cannot be made (IAM down or throttled) never allows: it fails the
        task with ``StepFunctions.ServiceUnavailableException`` (a state's Retry may retry it).
        """
        if self._check is None:
            return
        action, target, who = "states:StartExecution", request.state_machine_arn, request.principal
        try:
            allowed = bool(who) and self._check.may_start(who, target)
        except PassRoleCheckError as exc:
            if not exc.denied:
                raise ApiError("ServiceUnavailable", f"could not check {action}: {exc}") from None
            allowed = False
        if not allowed:
            raise ApiError(
                "AccessDeniedException",
                f"User: {who or 'a task with no role'} is not authorized to perform: {action} "
                f"on resource: {target} because no identity-based policy allows the {action} "
                "action",
            )

    @staticmethod
    def _started_before(executions: Executions, request: NestedStart) -> StartedExecution | None:
        """The child this very task attempt started already (it ran again after a crash).

        StartExecution refuses a closed execution's name; the attempt that started it
        gets it back instead, so a re-run never fails on its own child. Another attempt
        (a retry, a redrive) is refused, as on AWS.
        """
        if not (request.name and request.parent_arn and request.task_id):
            return None
        try:
            machine = executions.scope.parse_machine(request.state_machine_arn)[0]
        except ApiError:
            return None
        record = executions.log.get(executions.scope.execution_arn(machine, request.name))
        if record is None:
            return None
        mine = (request.parent_arn, request.task_id)
        if (
            record.attributes.get(STARTED_BY_EXECUTION),
            record.attributes.get(STARTED_BY_TASK),
        ) != mine:
            return None
        return StartedExecution(record.execution_arn, record.start_date)

    @staticmethod
    def _attributes(executions: Executions, request: NestedStart) -> dict[str, Any]:
        """Who started the child (the Task's role, its execution) and how deep it nests."""
        depth = 1
        if request.parent_arn:
            parent = executions.log.get(request.parent_arn)
            if parent is not None:
                depth = int(parent.attributes.get(NESTING_DEPTH, 0)) + 1
        if depth > MAX_NESTING_DEPTH:
            raise ApiError(
                "ExecutionLimitExceeded",
                f"Execution Limit Exceeded: executions nested more than {MAX_NESTING_DEPTH} deep "
                f"(a workflow that starts itself?), started by '{request.parent_arn}'",
            )
        attributes: dict[str, Any] = {NESTING_DEPTH: depth}
        if request.principal:
            attributes[STARTED_BY] = request.principal
        if request.parent_arn:
            attributes[STARTED_BY_EXECUTION] = request.parent_arn
            attributes[STARTED_BY_TASK] = request.task_id
        return attributes
