"""``.sync`` of the services whose jobs end without telling anyone: polled on durable timers.

``ecs:runTask.sync``, ``glue:startJobRun.sync``, ``athena:startQueryExecution.sync`` and
``batch:submitJob.sync`` start the job (the one call of :mod:`.boto_calls`) and return
:meth:`TaskOutcome.started` with the job's handle; the engine arms a durable timer and
asks for :meth:`PolledIntegration.poll` when it fires (a ``PollTask``), until the job
ends. Nothing sleeps. The job's end is reported as AWS reports it:

- the output is the job's description (ECS: the DescribeTasks task; Glue: GetJobRun's
  ``JobRun``; Athena: the GetQueryExecution response; Batch: the DescribeJobs job), in
  Step Functions' PascalCase;
- a job that ends badly fails the task with ``States.TaskFailed`` and that description,
  as JSON, for the cause (a Glue run stopped from outside ends the state as a success,
  as on AWS);
- a stopped or timed-out state stops the job (:meth:`PolledIntegration.cancel`: ECS
  StopTask, Glue BatchStopJobRun, Athena StopQueryExecution, Batch TerminateJob).

Polls follow AWS's schedule (:class:`PollSchedule`: once a minute for the first ten
polls, every five minutes after). A poll whose call fails unexpectedly (not an AWS
error: the network, a throttled client) is tried again at the next interval, up to
:data:`MAX_POLL_ERRORS` times in a row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stepflow.engine.resources import Pattern
from stepflow.errors import StatesErrorName
from stepflow.integrations.api_call import ONE_CALL, call_api
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.boto_calls import BotoIntegration
from stepflow.integrations.errors import ErrorNames
from stepflow.runtime.clients import TaskClients
from stepflow.runtime.outcome import TaskOutcome

LOG = logging.getLogger(__name__)

MAX_POLL_ERRORS = 10
"""Unexpected poll failures in a row after which the task fails (``States.TaskFailed``)."""

_POLLS = "StepFlowPolls"
_ERRORS = "StepFlowPollErrors"
"""Handle members StepFlow keeps for itself: polls so far, failed polls in a row."""


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """When to poll a job: ``first`` seconds apart for ``first_polls`` polls, then ``later``.

    The default is what Step Functions does for the jobs it polls (Glue: "once per minute
    for the first 10 minutes, and every 5 minutes thereafter").
    """

    first: float = 60.0
    later: float = 300.0
    first_polls: int = 10

    @classmethod
    def fixed(cls, seconds: float) -> PollSchedule:
        """Every ``seconds``, from the first poll on."""
        return cls(seconds, seconds, 0)

    def after(self, polls: int) -> float:
        """Seconds until the next poll, after ``polls`` polls."""
        return self.first if polls < self.first_polls else self.later


Verdict = tuple[str, Any]
"""``("running", None)``, ``("succeeded", output)`` or ``("failed", description)``."""


@dataclass(frozen=True, slots=True)
class Job:
    """How one action's job is identified, described, judged and stopped.

    ``handle(parameters, started)`` names the job from the start's parameters and
    response (None: nothing started); ``describe`` is the operation and its
    parameters for a handle; ``verdict`` judges the description (PascalCase);
    ``stop`` is the operation and parameters that stop it.
    """

    handle: Callable[[dict[str, Any], Any], dict[str, Any] | None]
    describe: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
    verdict: Callable[[Any], Verdict]
    stop: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
    keys: tuple[str, ...]
    """The handle members every handle must have (as strings)."""
    started: Callable[[dict[str, Any], Any], Any] | None = None
    """The start's response as the task shows it (None: as the API returns it)."""


@dataclass(slots=True)
class PolledIntegration:
    """A :class:`BotoIntegration` whose ``jobs`` also run ``.sync``, polled (``PollsJobs``)."""

    calls: BotoIntegration
    jobs: Mapping[str, Job]
    schedule: PollSchedule = field(default_factory=PollSchedule)
    service: str = field(init=False)
    patterns: frozenset[Pattern] = field(init=False)

    def __post_init__(self) -> None:
        self.service, self.patterns = self.calls.service, self.calls.patterns

    def check(self, action: str, pattern: Pattern) -> str | None:
        """Why ``action`` in ``pattern`` cannot run (None: it can; ``.sync`` for its jobs)."""
        if pattern == "sync" and action in self.jobs:
            return None
        return self.calls.check(action, pattern)

    def call(self, request: TaskRequest, clients: TaskClients) -> TaskOutcome:
        """Make the call; for ``.sync``, start the job and return its handle to poll."""
        outcome = self.calls.call(request, clients)
        job = self.jobs.get(request.action)
        if request.pattern != "sync" or job is None or not outcome.ok:
            return outcome
        parameters = request.parameters if isinstance(request.parameters, dict) else {}
        handle = job.handle(parameters, outcome.output)
        if handle is None:  # e.g. ECS placed no task: AWS fails the state with the response
            return TaskOutcome.failed(StatesErrorName.TASK_FAILED.value, _json(outcome.output))
        handle = {**handle, _POLLS: 0, _ERRORS: 0}
        output = outcome.output if job.started is None else job.started(parameters, outcome.output)
        return TaskOutcome.started(output, handle, self.schedule.after(0))

    def poll(
        self, request: TaskRequest, handle: dict[str, Any], clients: TaskClients
    ) -> TaskOutcome:
        """The job's end as AWS reports it, or :meth:`TaskOutcome.started` while it runs."""
        job = self.jobs.get(request.action)
        bad = _bad_handle(request, job, handle)
        if bad is not None or job is None:
            return bad or TaskOutcome.failed(StatesErrorName.RUNTIME.value, "no job")
        polls = _count(handle, _POLLS) + 1
        operation, parameters = job.describe(handle)
        client = request.client(clients, self.calls.client)  # a refused role fails the task
        try:
            described = call_api(request, client, operation, parameters, self._names(), ONE_CALL)
        except Exception as exc:  # the network, a throttle: not the job's end
            errors = _count(handle, _ERRORS) + 1
            LOG.warning(
                "%s: poll %d of task %s failed: %r",
                request.execution_arn,
                polls,
                request.task_id,
                exc,
            )
            if errors >= MAX_POLL_ERRORS:
                return TaskOutcome.failed(
                    StatesErrorName.TASK_FAILED.value,
                    f"StepFlow could not poll the job {errors} times in a row: {exc!r}",
                )
            again = {**handle, _POLLS: polls, _ERRORS: errors}
            return TaskOutcome.started(None, again, self.schedule.after(polls))
        if not described.ok:  # an AWS error names the job's failure (e.g. it is unknown)
            return described
        state, output = job.verdict(described.output)
        if state == "succeeded":
            return TaskOutcome.succeeded(output)
        if state == "failed":
            return TaskOutcome.failed(StatesErrorName.TASK_FAILED.value, _json(output))
        again = {**handle, _POLLS: polls, _ERRORS: 0}
        return TaskOutcome.started(None, again, self.schedule.after(polls))

    def cancel(self, request: TaskRequest, handle: dict[str, Any], clients: TaskClients) -> None:
        """Stop the job, once, as AWS does when the state is stopped or times out.

        A failure (a job that ended meanwhile, a garbage handle) is logged: nothing to retry.
        """
        job = self.jobs.get(request.action)
        if job is None or _bad_handle(request, job, handle) is not None:
            LOG.warning(
                "%s: task %s: no job to stop in %r", request.execution_arn, request.task_id, handle
            )
            return
        operation, parameters = job.stop(handle)
        client = request.client(clients, self.calls.client)
        stopped = call_api(request, client, operation, parameters, self._names(), ONE_CALL)
        if not stopped.ok:
            LOG.warning(
                "%s: task %s: %s failed: %s",
                request.execution_arn,
                request.task_id,
                operation,
                stopped.error,
            )

    def _names(self) -> ErrorNames:
        return ErrorNames(self.calls.prefix, self.calls.cause_service)


def _bad_handle(request: TaskRequest, job: Job | None, handle: Any) -> TaskOutcome | None:
    """The failure of a handle that names no job (None: it is well formed)."""
    if (
        job is not None
        and isinstance(handle, dict)
        and all(isinstance(handle.get(key), str) and handle[key] for key in job.keys)
    ):
        return None
    return TaskOutcome.failed(
        StatesErrorName.RUNTIME.value,
        f"StepFlow cannot poll the job of the Task resource {request.resource!r}: "
        f"its handle names no job.",
    )


def _count(handle: dict[str, Any], key: str) -> int:
    value = handle.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _member(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``, None where a step is missing."""
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- the four services ------------------------------------------------------------------


def _glue_handle(parameters: dict[str, Any], started: Any) -> dict[str, Any] | None:
    run_id, name = _text(_member(started, "JobRunId")), _text(parameters.get("JobName"))
    return None if run_id is None or name is None else {"JobName": name, "RunId": run_id}


def _glue_verdict(described: Any) -> Verdict:
    run = _member(described, "JobRun")
    state = _member(run, "JobRunState")
    if state in ("SUCCEEDED", "STOPPED"):  # a run stopped from outside ends the state well
        return "succeeded", run
    if state in ("FAILED", "ERROR", "TIMEOUT", "EXPIRED"):
        return "failed", run
    return "running", None


def _glue_started(parameters: dict[str, Any], started: Any) -> Any:
    """StartJobRun's response with the request's ``JobName``, as Step Functions shows it."""
    if not isinstance(started, dict):
        return started
    return {**started, "JobName": parameters.get("JobName")}


GLUE_JOB = Job(
    handle=_glue_handle,
    describe=lambda h: ("GetJobRun", {"JobName": h["JobName"], "RunId": h["RunId"]}),
    verdict=_glue_verdict,
    stop=lambda h: ("BatchStopJobRun", {"JobName": h["JobName"], "JobRunIds": [h["RunId"]]}),
    keys=("JobName", "RunId"),
    started=_glue_started,
)
"""Glue: GetJobRun until the run ends; the output is its ``JobRun`` (FAILED, ERROR,
TIMEOUT and EXPIRED fail the state; SUCCEEDED and STOPPED end it)."""


def _athena_verdict(described: Any) -> Verdict:
    state = _member(described, "QueryExecution", "Status", "State")
    if state == "SUCCEEDED":
        return "succeeded", described
    if state in ("FAILED", "CANCELLED"):
        return "failed", described
    return "running", None


ATHENA_QUERY = Job(
    handle=lambda _, out: (
        None
        if _text(_member(out, "QueryExecutionId")) is None
        else {"QueryExecutionId": out["QueryExecutionId"]}
    ),
    describe=lambda h: ("GetQueryExecution", {"QueryExecutionId": h["QueryExecutionId"]}),
    verdict=_athena_verdict,
    stop=lambda h: ("StopQueryExecution", {"QueryExecutionId": h["QueryExecutionId"]}),
    keys=("QueryExecutionId",),
)
"""Athena: GetQueryExecution until the query ends; the output is that response."""


def _batch_verdict(described: Any) -> Verdict:
    job = _member(described, "Jobs", 0)
    if job is None:  # AWS forgets jobs after a day or so: nothing will ever end it
        return "failed", described
    status = _member(job, "Status")
    if status == "SUCCEEDED":
        return "succeeded", job
    if status == "FAILED":
        return "failed", job
    return "running", None


BATCH_JOB = Job(
    handle=lambda _, out: None if _text(_member(out, "JobId")) is None else {"JobId": out["JobId"]},
    describe=lambda h: ("DescribeJobs", {"Jobs": [h["JobId"]]}),
    verdict=_batch_verdict,
    stop=lambda h: (
        "TerminateJob",
        {"JobId": h["JobId"], "Reason": "The Step Functions state was stopped"},
    ),
    keys=("JobId",),
)
"""Batch: DescribeJobs until the job is SUCCEEDED or FAILED; the output is the job."""


def _ecs_handle(_: dict[str, Any], started: Any) -> dict[str, Any] | None:
    task = _member(started, "Tasks", 0)
    arn, cluster = _text(_member(task, "TaskArn")), _text(_member(task, "ClusterArn"))
    return None if arn is None or cluster is None else {"Cluster": cluster, "TaskArn": arn}


def _ecs_verdict(described: Any) -> Verdict:
    task = _member(described, "Tasks", 0)
    if task is None:
        return "failed", described
    if _member(task, "LastStatus") != "STOPPED":
        return "running", None
    containers = _member(task, "Containers")
    codes = [_member(c, "ExitCode") for c in containers] if isinstance(containers, list) else []
    if _member(task, "StopCode") == "TaskFailedToStart" or any(
        code is not None and code != 0 for code in codes
    ):
        return "failed", task
    return "succeeded", task


ECS_TASK = Job(
    handle=_ecs_handle,
    describe=lambda h: ("DescribeTasks", {"Cluster": h["Cluster"], "Tasks": [h["TaskArn"]]}),
    verdict=_ecs_verdict,
    stop=lambda h: (
        "StopTask",
        {"Cluster": h["Cluster"], "Task": h["TaskArn"], "Reason": "Stopped by Step Functions"},
    ),
    keys=("Cluster", "TaskArn"),
)
"""ECS: DescribeTasks until the task is STOPPED; the output is the task. A container that
exited with a non-zero code (or a task that failed to start) fails the state."""
