"""Task states: scheduling work, recording its progress, and taking its result."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from stepflow.asl.states.task import TaskState
from stepflow.data.template import Template
from stepflow.engine import dataflow, waits
from stepflow.engine.effects import emit_effects
from stepflow.engine.model import (
    ExecutionState,
    Frame,
    PollTask,
    RunTask,
    TaskFailed,
    TaskPending,
    TaskSucceeded,
)
from stepflow.engine.resources import ParameterCheck, ResourceInfo, describe
from stepflow.errors import StatesError, StatesErrorName

if TYPE_CHECKING:
    from stepflow.engine.step_context import StepContext


def run_task(d: StepContext, frame: Frame, node: TaskState) -> None:
    """Schedule the resource on the effective input (and arm its timeout)."""
    s = d.state
    info = describe(node.resource)
    role_arn = task_role(d, frame, node)
    task_id = d.new_id("t")
    # A .sync task has a token too (``$$.Task.Token``): SendTaskSuccess may end it, as on AWS.
    deferred = info.wait_for_token or info.kind == "activity" or info.pattern in ("sync", "sync2")
    token = task_token(d, task_id) if deferred else None
    token_context = {"task_token": token} if token is not None else {}
    frame.effective = dataflow.effective_input(
        d, frame, node, template=node.parameters, **token_context
    )
    if info.kind != "activity":
        problem = parameters_problem(d.check_parameters, node.resource, frame.effective)
        if problem is not None:  # AWS refuses them before scheduling: no Task* event
            raise StatesError(
                StatesErrorName.RUNTIME,
                f"The Parameters '{d.encode(frame.effective)}' could not be used to start "
                f"the Task: [{problem}]",
            )
    timeout = waits.seconds(
        d, frame, node, node.timeout_seconds, node.timeout_seconds_path, "TimeoutSeconds"
    )
    heartbeat = waits.seconds(
        d, frame, node, node.heartbeat_seconds, node.heartbeat_seconds_path, "HeartbeatSeconds"
    )
    s.tasks[task_id] = frame.id
    frame.task_id = task_id
    frame.started = False
    frame.submitted = False
    frame.early = None  # a result an earlier attempt held is that attempt's: never this one's
    frame.handle = None
    frame.poll_round = 0
    frame.phase = "task"
    if info.kind == "service":
        details = _details(info, region=info.region, parameters=d.encode(frame.effective))
    else:
        details = {
            "resource": node.resource,
            "input": d.encode(frame.effective),
            "inputDetails": {"truncated": False},
        }
    if timeout is not None:
        details["timeoutInSeconds"] = timeout
    if heartbeat is not None:
        details["heartbeatInSeconds"] = heartbeat
    d.emit(frame, f"{info.prefix}Scheduled", _key(info, "Scheduled"), details)
    d.commands.append(
        RunTask(
            task_id,
            node.resource,
            frame.effective,
            node.name,
            timeout,
            heartbeat,
            token,
            role_arn,
            s.role_arn,
            frame.id,
        )
    )
    if timeout is not None:
        d.start_timer(frame, f"timeout:{task_id}", d.now + timeout)
    frame.heartbeat_at = d.now
    if heartbeat is not None:
        d.start_timer(frame, f"heartbeat:{task_id}", d.now + heartbeat)


def parameters_problem(check: ParameterCheck | None, resource: str, parameters: Any) -> str | None:
    """What ``check`` finds wrong with a task's effective parameters (None: nothing).

    The check is the edge's (the integration registry's), given the parameters
    themselves, never a copy: it must only read them. A check that raises is a
    defect of the check, not of the workflow: it counts as no problem, and the
    integration judges the parameters when it runs (as it does without a check);
    failing the execution instead would fail workflows AWS runs. A problem that
    is not a non-empty string counts as none too.
    """
    if check is None:
        return None
    try:
        problem = check(resource, parameters)
    except Exception:
        return None
    return problem if isinstance(problem, str) and problem else None


def task_role(d: StepContext, frame: Frame, node: TaskState) -> str:
    """The role the task's call runs with: ``Credentials.RoleArn``, else the execution's.

    ``RoleArn`` is a literal, a ``RoleArn.$`` path or intrinsic (JSONPath) or a
    JSONata expression, evaluated on the state's input (before ``InputPath``),
    with the context object and variables. A value that is not a non-empty string
    fails the state with ``States.Runtime``. The engine only names the role; the
    edge that makes the call assumes it.
    """
    credentials = node.credentials
    if credentials is None:
        return d.state.role_arn
    if dataflow.is_jsonata(node):
        value = dataflow.evaluate(d, frame, credentials, "Credentials")
    else:
        value = Template(dict(credentials)).evaluate(dataflow.scope(d, frame, frame.input))
    role = value.get("RoleArn") if isinstance(value, dict) else None
    if not isinstance(role, str) or not role:
        raise StatesError(
            StatesErrorName.RUNTIME,
            f"The Credentials field of state '{node.name}' must give RoleArn as a non-empty "
            f"string, got {role!r}.",
        )
    return role


def task_token(d: StepContext, task_id: str) -> str:
    """The callback token of a task attempt (see :func:`token_for`)."""
    return token_for(d.state, task_id)


def token_for(state: ExecutionState, task_id: str) -> str:
    """``<where, base64url>.<task id>.<HMAC-SHA256>``: locatable, unforgeable.

    ``where`` is the execution's ARN, a map run child's own record's ARN or, for
    another child execution, its parent's log ARN and the child id joined by
    ``|``. The HMAC is keyed by the execution's secret ``token_key`` (the seed
    where there is none), so only the holder of the token can report on the attempt.
    """
    key = (state.token_key or str(state.seed)).encode()
    parent = state.parent
    if parent is None:
        location = state.execution_arn
    elif "record_arn" in parent:  # a map run's child: an execution with its own record
        location = str(parent["record_arn"])
    else:
        location = f"{parent['arn']}|{parent['child_id']}"
    signature = hmac.new(key, f"{location}:{task_id}".encode(), hashlib.sha256).hexdigest()
    where = base64.urlsafe_b64encode(location.encode()).decode().rstrip("=")
    return f"{where}.{task_id}.{signature}"


def task_started(d: StepContext, frame: Frame) -> None:
    """Record that the frame's task started (once per attempt)."""
    if frame.started:
        return
    frame.started = True
    node = d.node(frame)
    assert isinstance(node, TaskState)
    info = describe(node.resource)
    if info.kind == "service":
        d.emit(frame, "TaskStarted", _key(info, "Started"), _details(info))
    else:
        d.emit(frame, f"{info.prefix}Started")


def task_submitted(
    d: StepContext,
    frame: Frame,
    output: Any,
    handle: dict[str, Any] | None = None,
    poll_after: float | None = None,
) -> None:
    """Record that the task's request was sent (TaskStarted first if not yet), with the response.

    ``handle`` (what identifies the started job) is kept to poll and to cancel it;
    ``poll_after`` (seconds) arms the durable timer ``poll:<task_id>`` whose firing
    asks for a ``PollTask`` (see :func:`poll_due`).
    """
    if frame.submitted:
        return
    frame.handle = handle
    if poll_after is not None and handle is not None and frame.task_id is not None:
        _arm_poll(d, frame, frame.task_id, poll_after)
    task_started(d, frame)
    frame.submitted = True
    node = d.node(frame)
    assert isinstance(node, TaskState)
    info = describe(node.resource)
    details = _details(info, output=d.encode(output), outputDetails={"truncated": False})
    d.emit(frame, "TaskSubmitted", _key(info, "Submitted"), details)
    early, frame.early = frame.early, None
    if early is not None and frame.task_id is not None:
        result: TaskSucceeded | TaskFailed
        if "output" in early:
            result = TaskSucceeded(frame.task_id, early["output"], external=True)
        else:
            result = TaskFailed(frame.task_id, early.get("error"), early.get("cause"), True)
        task_finished(d, frame, result)


def held_back(d: StepContext, frame: Frame, event: TaskSucceeded | TaskFailed) -> bool:
    """Hold an external result that came before its task's ``TaskSubmitted`` (see ``early``).

    A callback or a ``.sync`` child can answer before the runner's report that the
    request was sent reaches the execution; AWS's history always shows TaskSubmitted
    first, so the result waits in the frame for it. The runner always reports after a
    successful send (a crashed runner's retry finds the same child or token), so the
    result is not held forever; a duplicate external result is ignored.
    """
    if frame.submitted or not event.external:
        return False
    node = d.node(frame)
    if not isinstance(node, TaskState):
        return False
    info = describe(node.resource)
    if info.kind != "service" or info.pattern not in ("wait-for-token", "sync", "sync2"):
        return False
    if frame.early is None:
        if isinstance(event, TaskSucceeded):
            frame.early = {"output": event.output}
        else:
            frame.early = {"error": event.error, "cause": event.cause}
    return True


def task_pending(d: StepContext, frame: Frame, event: TaskPending) -> None:
    """A poll found the submitted job still running: poll again ``poll_after`` seconds later.

    At most one poll is armed or in flight per attempt: a pending report that finds
    the poll timer armed already is a duplicate (a redelivered poll result) and is ignored.
    """
    task_id = event.task_id
    if frame.task_id != task_id or not frame.submitted or frame.handle is None:
        return
    if _poll_timer(d, task_id) is not None:
        return
    if event.handle is not None:
        frame.handle = event.handle
    _arm_poll(d, frame, task_id, event.poll_after)


def poll_due(d: StepContext, frame: Frame, task_id: str) -> None:
    """The poll timer of ``task_id`` fired: ask the runtime to poll its job (``PollTask``)."""
    if frame.task_id != task_id or task_id not in d.state.tasks or frame.handle is None:
        return
    node = d.node(frame)
    assert isinstance(node, TaskState)
    try:
        role_arn = task_role(d, frame, node)
    except StatesError:  # it named one when the task started; else the execution's
        role_arn = d.state.role_arn
    frame.poll_round += 1
    d.commands.append(
        PollTask(
            task_id,
            node.resource,
            dict(frame.handle),
            frame.poll_round,
            node.name,
            role_arn,
            d.state.role_arn,
        )
    )


def _arm_poll(d: StepContext, frame: Frame, task_id: str, poll_after: float) -> None:
    seconds = max(0.0, float(poll_after))
    d.start_timer(frame, f"poll:{task_id}", d.now + seconds)


def _poll_timer(d: StepContext, task_id: str) -> str | None:
    """The id of the armed poll timer of ``task_id`` (None: none is armed)."""
    kind = f"poll:{task_id}"
    for timer_id, (_, timer_kind) in d.state.timers.items():
        if timer_kind == kind:
            return timer_id
    return None


def task_finished(d: StepContext, frame: Frame, event: TaskSucceeded | TaskFailed) -> None:
    """Record a task's result and leave the state, or fail it."""
    node = d.node(frame)
    assert isinstance(node, TaskState)
    d.state.tasks.pop(event.task_id, None)
    d.drop_timers(task_id=event.task_id)
    frame.handle = None
    task_started(d, frame)
    info = describe(node.resource)
    emit_effects(d, frame, node.resource, event.effects)
    if isinstance(event, TaskFailed):
        details = _details(info)
        if event.error is not None:
            details["error"] = event.error
        if event.cause is not None:
            details["cause"] = event.cause
        d.emit(frame, f"{info.prefix}Failed", _key(info, "Failed"), details)
        # Only SendTaskFailure leaves both out; AWS then catches {"Error": null, "Cause": null}.
        unnamed = {"Error": None, "Cause": None} if event.error is event.cause is None else None
        d.fail_state(frame, node, event.error, event.cause, error_output=unnamed)
        return
    text = d.encode(event.output)
    too_large = d.over_payload_limit(text, "task's result")
    if too_large is not None:  # e.g. a callback's output (worker results are checked earlier)
        error = StatesErrorName.DATA_LIMIT_EXCEEDED.value
        details = {**_details(info), "error": error, "cause": too_large}
        d.emit(frame, f"{info.prefix}Failed", _key(info, "Failed"), details)
        d.fail_state(frame, node, error, too_large)
        return
    details = _details(info, output=text, outputDetails={"truncated": False})
    d.emit(frame, f"{info.prefix}Succeeded", _key(info, "Succeeded"), details)
    try:
        output, assigned = dataflow.result_output(d, frame, node, event.output)
    except StatesError as exc:
        d.state_error(frame, node, exc)
        return
    d.exit_state(frame, node, output, assigned=assigned)


def task_heartbeat(d: StepContext, frame: Frame) -> None:
    """The worker is alive: push the heartbeat deadline back (the timer re-arms itself)."""
    task_started(d, frame)
    frame.heartbeat_at = d.now


def heartbeat_due(d: StepContext, frame: Frame, task_id: str) -> None:
    """A heartbeat check is due: time the task out, or re-arm for the latest heartbeat."""
    if frame.task_id != task_id or task_id not in d.state.tasks:
        return
    node = d.node(frame)
    assert isinstance(node, TaskState)
    heartbeat = waits.seconds(
        d, frame, node, node.heartbeat_seconds, node.heartbeat_seconds_path, "HeartbeatSeconds"
    )
    assert heartbeat is not None
    deadline = frame.heartbeat_at + heartbeat
    if deadline > d.now:
        d.start_timer(frame, f"heartbeat:{task_id}", deadline)
        return
    task_timed_out(d, frame, task_id, StatesErrorName.HEARTBEAT_TIMEOUT)


def task_timed_out(
    d: StepContext, frame: Frame, task_id: str, error: str = StatesErrorName.TIMEOUT
) -> None:
    """The task's timeout (or heartbeat) passed before its result: fail the attempt."""
    if frame.task_id != task_id or task_id not in d.state.tasks:
        return
    d.cancel_task(task_id)
    d.state.tasks.pop(task_id, None)
    frame.handle = None
    d.drop_timers(task_id=task_id)
    node = d.node(frame)
    assert isinstance(node, TaskState)
    info = describe(node.resource)
    if info.kind != "activity":  # AWS starts a Lambda or service task when it schedules it
        task_started(d, frame)
    cause = (
        "The task timed out."
        if error == StatesErrorName.TIMEOUT
        else "No heartbeat arrived in time."
    )
    details = _details(info, error=str(error), cause=cause)
    d.emit(frame, f"{info.prefix}TimedOut", _key(info, "TimedOut"), details)
    d.fail_state(frame, node, error, cause)


def _details(info: ResourceInfo, **extra: Any) -> dict[str, Any]:
    if info.kind == "service":
        return {"resourceType": info.resource_type, "resource": info.resource, **extra}
    return dict(extra)


def _key(info: ResourceInfo, suffix: str) -> str:
    name = f"{info.prefix}{suffix}"
    return name[0].lower() + name[1:] + "EventDetails"
