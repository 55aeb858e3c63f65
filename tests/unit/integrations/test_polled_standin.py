"""``.sync`` of polled services with a stand-in client: what moto cannot make happen.

A fake Glue client (no botocore model: parameters and responses pass as they are)
scripts the run's states, fails, raises, and counts every call. Runs through
:class:`~stepflow.testing.WorkflowEnvironment` (the runtime's Stepper on its
virtual clock) and, for one delivery twice, through the task path directly.
"""

from __future__ import annotations

import json
from typing import Any

from stepflow.engine import PollTask, TaskSubmitted
from stepflow.engine.codec import decode_state
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.integrations.base import TaskRequest
from stepflow.integrations.glue import GLUE
from stepflow.integrations.polled import MAX_POLL_ERRORS
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.messages import Message, encode_event, poll_body
from stepflow.runtime.task_runs import TaskRuns
from stepflow.testing import WorkflowEnvironment

RESOURCE = "arn:aws:states:::glue:startJobRun.sync"


class FakeGlue:
    """Glue job runs whose states are scripted, one per GetJobRun; every call counted."""

    def __init__(self, states: list[str | Exception], *, stop_fails: bool = False) -> None:
        self.states = list(states)
        self.calls: list[str] = []
        self.stop_fails = stop_fails
        self.on_poll: Any = None

    def start_job_run(self, **params: Any) -> dict[str, Any]:
        self.calls.append("StartJobRun")
        return {"JobRunId": "jr_1"}

    def get_job_run(self, **params: Any) -> dict[str, Any]:
        self.calls.append("GetJobRun")
        assert params == {"JobName": "etl", "RunId": "jr_1"}
        if self.on_poll is not None:
            self.on_poll()
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, Exception):
            raise state
        return {"JobRun": {"Id": "jr_1", "JobName": "etl", "JobRunState": state}}

    def batch_stop_job_run(self, **params: Any) -> dict[str, Any]:
        self.calls.append("BatchStopJobRun")
        assert params == {"JobName": "etl", "JobRunIds": ["jr_1"]}
        if self.stop_fails:
            raise ConnectionError("the network is down")
        return {"SuccessfulSubmissions": [{"JobName": "etl", "JobRunId": "jr_1"}]}


def environment(glue: FakeGlue) -> WorkflowEnvironment:
    return WorkflowEnvironment(
        invoker=IntegrationInvoker(default_registry(), FixedClients(glue=glue))
    )


def machine(**state: Any) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": RESOURCE, "Parameters": {"JobName": "etl"}, **state}
    return {"StartAt": "Job", "States": {"Job": {**task, "End": True}}}


def test_a_failed_run_fails_the_state_with_the_run_as_cause() -> None:
    glue = FakeGlue(["RUNNING", "RUNNING", "FAILED"])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED"
    assert result.error == "States.TaskFailed"
    assert json.loads(result.cause or "") == {
        "Id": "jr_1",
        "JobName": "etl",
        "JobRunState": "FAILED",
    }
    assert glue.calls == ["StartJobRun", "GetJobRun", "GetJobRun", "GetJobRun"]
    types = [e["type"] for e in env.history(arn)]
    assert types.count("TaskSubmitted") == 1 and types.count("TaskFailed") == 1


def test_a_failed_run_is_caught_by_name() -> None:
    glue = FakeGlue(["TIMEOUT"])
    env = environment(glue)
    catch = [{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]
    definition = machine(Catch=catch)
    definition["States"]["Job"].pop("End")
    definition["States"]["Job"]["Next"] = "Done"
    definition["States"]["Done"] = {"Type": "Succeed"}
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    arn = env.start(definition)
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert result.result["Error"] == "States.TaskFailed"


def test_polls_follow_aws_schedule_then_slow_down() -> None:
    glue = FakeGlue(["RUNNING"] * 12 + ["SUCCEEDED"])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert glue.calls.count("GetJobRun") == 13
    elapsed = env.now() - env.history(arn)[0]["timestamp"]
    assert 10 * 60 + 3 * 300 <= elapsed < 10 * 60 + 3 * 300 + 5


def test_a_poll_that_raises_is_tried_again_at_the_next_interval() -> None:
    glue = FakeGlue([ConnectionError("reset"), ConnectionError("reset"), "SUCCEEDED"])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert glue.calls.count("GetJobRun") == 3


def test_a_poll_that_always_raises_fails_the_task_after_a_bound() -> None:
    glue = FakeGlue([ConnectionError("reset")])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED"
    assert result.error == "States.TaskFailed"
    assert "could not poll" in (result.cause or "")
    assert glue.calls.count("GetJobRun") == MAX_POLL_ERRORS


def test_a_never_ending_run_times_out_and_is_stopped_once() -> None:
    glue = FakeGlue(["RUNNING"])
    env = environment(glue)
    arn = env.start(machine(TimeoutSeconds=3600))
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert glue.calls.count("BatchStopJobRun") == 1
    # 10 polls a minute apart, then every 5 minutes until the timeout at 3600 s (excluded).
    assert glue.calls.count("GetJobRun") == 10 + 9
    assert env.history(arn)[-2]["type"] == "TaskTimedOut"


def test_a_stop_that_fails_is_logged_not_retried() -> None:
    glue = FakeGlue(["RUNNING"], stop_fails=True)
    env = environment(glue)
    arn = env.start(machine())
    env.run_until_idle()
    env.stop(arn)
    env.run(arn)
    assert env.result(arn).status == "ABORTED"
    assert glue.calls.count("BatchStopJobRun") == 1
    env.advance(3600)
    env.run_until_idle()
    assert glue.calls.count("BatchStopJobRun") == 1
    assert glue.calls.count("GetJobRun") == 0


def test_stop_while_a_poll_is_in_flight_stops_once_and_polls_no_more() -> None:
    glue = FakeGlue(["RUNNING"])
    env = environment(glue)
    arn = env.start(machine())
    env.run_until_idle()
    stopped: list[str] = []

    def stop_now() -> None:  # StopExecution lands while the poll's call is out
        if not stopped:
            stopped.append(arn)
            env.stop(arn)

    glue.on_poll = stop_now
    env.run(arn)
    assert env.result(arn).status == "ABORTED"
    assert glue.calls.count("GetJobRun") == 1
    assert glue.calls.count("BatchStopJobRun") == 1
    env.advance(3600)
    env.run_until_idle()
    assert glue.calls.count("GetJobRun") == 1
    types = [e["type"] for e in env.history(arn)]
    assert types[-1] == "ExecutionAborted" and "TaskSucceeded" not in types


def test_a_duplicate_poll_delivery_polls_once() -> None:
    glue = FakeGlue(["RUNNING"])
    env = environment(glue)
    arn = env.start(machine())
    env.run_until_idle()
    record = env.log.get(arn)
    assert record is not None
    state = decode_state(record.state)
    (task_id,) = state.tasks
    handle = state.frames[""].handle
    assert handle is not None
    poll = PollTask(task_id, RESOURCE, handle, 1, "Job", state.role_arn, state.role_arn)
    message = Message(arn, f"{arn}#9#0", "task", poll_body(poll))
    runs = TaskRuns(env.log, env.bus, env.tasks, env.now, "w1", 60.0, None)
    first = runs.task_result(message)
    second = runs.task_result(message)
    assert first == second and first is not None and first["type"] == "TaskPending"
    assert glue.calls.count("GetJobRun") == 1
    later = Message(arn, f"{arn}#10#0", "task", poll_body(PollTask(task_id, RESOURCE, handle, 2)))
    runs.task_result(later)
    assert glue.calls.count("GetJobRun") == 2  # the next round is a poll of its own


def test_a_garbage_handle_fails_the_poll_without_a_call() -> None:
    glue = FakeGlue(["RUNNING"])
    request = TaskRequest.from_body({"resource": RESOURCE, "task_id": "t1"})
    clients = FixedClients(glue=glue)
    for handle in ({}, {"JobName": 7, "RunId": None}, {"RunId": "jr_1"}):
        outcome = GLUE.poll(request, handle, clients)
        assert (outcome.ok, outcome.error) == (False, "States.Runtime")
        GLUE.cancel(request, handle, clients)  # logged, not raised
    assert glue.calls == []
    invoker = IntegrationInvoker(default_registry(), clients)
    body = {"op": "poll", "resource": RESOURCE, "task_id": "t1", "handle": "garbage"}
    assert invoker(body).error == "States.Runtime"


def test_a_start_without_a_run_id_fails_the_task() -> None:
    class NoRunId(FakeGlue):
        def start_job_run(self, **params: Any) -> dict[str, Any]:
            self.calls.append("StartJobRun")
            return {}

    glue = NoRunId(["RUNNING"])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    result = env.result(arn)
    assert (result.status, result.error) == ("FAILED", "States.TaskFailed")
    assert glue.calls == ["StartJobRun"]


def test_the_poll_schedule_is_configurable() -> None:
    from stepflow.aws.settings import Settings
    from stepflow.integrations.catalog import with_poll_schedule
    from stepflow.integrations.polled import PollSchedule

    assert (
        Settings.from_environ({"TABLE_NAME": "t", "STEPFLOW_POLL_SECONDS": "2"}).poll_seconds == 2
    )
    glue = FakeGlue(["RUNNING"] * 3 + ["SUCCEEDED"])
    registry = with_poll_schedule(default_registry(), PollSchedule.fixed(2))
    env = WorkflowEnvironment(invoker=IntegrationInvoker(registry, FixedClients(glue=glue)))
    arn = env.start(machine())
    env.run(arn)
    assert env.result(arn).status == "SUCCEEDED"
    assert glue.calls.count("GetJobRun") == 4
    assert env.now() - env.history(arn)[0]["timestamp"] < 10


def test_each_service_judges_the_end_of_its_job_as_aws() -> None:
    from stepflow.integrations.polled import ATHENA_QUERY, BATCH_JOB, ECS_TASK, GLUE_JOB

    run = {"Id": "jr_1", "JobRunState": "STOPPED"}
    assert GLUE_JOB.verdict({"JobRun": run}) == ("succeeded", run)
    assert GLUE_JOB.verdict({"JobRun": {"JobRunState": "ERROR"}})[0] == "failed"
    assert GLUE_JOB.verdict({"JobRun": {"JobRunState": "STOPPING"}})[0] == "running"
    query = {"QueryExecution": {"Status": {"State": "CANCELLED"}}}
    assert ATHENA_QUERY.verdict(query) == ("failed", query)
    assert ATHENA_QUERY.verdict({"QueryExecution": {"Status": {"State": "QUEUED"}}})[0] == "running"
    job = {"JobId": "j", "Status": "FAILED", "StatusReason": "Essential container exited"}
    assert BATCH_JOB.verdict({"Jobs": [job]}) == ("failed", job)
    assert BATCH_JOB.verdict({"Jobs": [{"Status": "RUNNABLE"}]})[0] == "running"
    assert BATCH_JOB.verdict({"Jobs": []})[0] == "failed"  # forgotten: it will never end
    ok = {"LastStatus": "STOPPED", "Containers": [{"ExitCode": 0}, {"Name": "sidecar"}]}
    assert ECS_TASK.verdict({"Tasks": [ok]}) == ("succeeded", ok)
    bad = {"LastStatus": "STOPPED", "Containers": [{"ExitCode": 0}, {"ExitCode": 137}]}
    assert ECS_TASK.verdict({"Tasks": [bad]}) == ("failed", bad)
    unstarted = {"LastStatus": "STOPPED", "StopCode": "TaskFailedToStart", "Containers": []}
    assert ECS_TASK.verdict({"Tasks": [unstarted]})[0] == "failed"
    assert ECS_TASK.verdict({"Tasks": [{"LastStatus": "PROVISIONING"}]})[0] == "running"


def test_a_glue_run_stopped_from_outside_ends_the_state() -> None:
    glue = FakeGlue(["RUNNING", "STOPPED"])
    env = environment(glue)
    arn = env.start(machine())
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED"
    assert result.result["JobRunState"] == "STOPPED"
    assert glue.calls.count("BatchStopJobRun") == 0


def test_a_run_started_after_the_stop_is_stopped_once() -> None:
    class StopsFirst(FakeGlue):
        """StopExecution lands while StartJobRun is out: the run starts after it."""

        arn = ""
        task_ids: list[str] = []

        def start_job_run(self, **params: Any) -> dict[str, Any]:
            started = super().start_job_run(**params)
            record = env.log.get(self.arn)
            assert record is not None
            self.task_ids.extend(decode_state(record.state).tasks)
            env.stop(self.arn)
            return started

    glue = StopsFirst(["RUNNING"])
    env = environment(glue)
    glue.arn = arn = env.start(machine())
    env.run(arn)
    assert env.result(arn).status == "ABORTED"
    assert glue.calls == ["StartJobRun", "BatchStopJobRun"]
    env.advance(3600)  # repairs and timers come due: the run is neither polled nor stopped again
    env.run_until_idle()
    assert glue.calls == ["StartJobRun", "BatchStopJobRun"]
    assert "TaskSubmitted" not in [e["type"] for e in env.history(arn)]
    (task_id,) = glue.task_ids
    handle = {"JobName": "etl", "RunId": "jr_1", "StepFlowPolls": 0, "StepFlowPollErrors": 0}
    late = encode_event(TaskSubmitted(task_id, {"JobRunId": "jr_1"}, handle, 60.0, RESOURCE))
    for copy in ("a", "b"):  # the late start's result delivered again: stopped once all the same
        env.bus.send(Message(arn, f"{arn}#late/{copy}", "event", late))
    env.run_until_idle()
    assert glue.calls == ["StartJobRun", "BatchStopJobRun"]
