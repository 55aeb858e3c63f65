"""``.sync`` of Glue, Athena, Batch and ECS run to the job's end against moto.

moto moves Glue runs, Athena queries and ECS tasks on by one state per describe call
(its state manager, which a test can hold back: a job that never ends), and runs Batch
jobs without docker when configured so (they succeed at once).

Through :class:`~stepflow.testing.WorkflowEnvironment` on its virtual clock: the durable
poll timers fire without real waiting. Every API call is counted by operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.core.config import default_user_config
from moto.moto_api import state_manager
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment

from tests.moto_env import REGION, offline_aws

CLIENTS = ("athena", "glue", "batch", "ecs", "iam", "ec2")


class Counted:
    """moto clients whose API calls are counted by operation name."""

    def __init__(self) -> None:
        self.clients = {name: boto3.client(name, region_name=REGION) for name in CLIENTS}
        self.calls: list[str] = []
        for client in self.clients.values():
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)

    def env(self) -> WorkflowEnvironment:
        invoker = IntegrationInvoker(default_registry(), FixedClients(**self.clients))
        return WorkflowEnvironment(invoker=invoker)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    # moto runs Batch jobs without docker (they succeed at once) when told so.
    monkeypatch.setitem(default_user_config, "batch", {"use_docker": False})
    with offline_aws(monkeypatch):
        yield Counted()


def machine(resource: str, parameters: dict[str, Any], **state: Any) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **state}
    return {"StartAt": "Job", "States": {"Job": task}}


def types(env: WorkflowEnvironment, arn: str) -> list[str]:
    return [event["type"] for event in env.history(arn)]


def test_glue_start_job_run_sync_polls_until_the_run_succeeds(aws: Counted) -> None:
    glue = aws.clients["glue"]
    glue.create_job(Name="etl", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://x"})
    env = aws.env()
    arn = env.start(machine("arn:aws:states:::glue:startJobRun.sync", {"JobName": "etl"}))
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["JobName"] == "etl"
    assert result.result["JobRunState"] == "SUCCEEDED"
    assert isinstance(result.result["StartedOn"], int)  # epoch millis, as Step Functions
    assert aws.calls.count("StartJobRun") == 1
    polls = aws.calls.count("GetJobRun")
    assert polls >= 1
    events = types(env, arn)
    assert events[1:5] == ["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSubmitted"]
    assert events.count("TaskSubmitted") == 1 and events.count("TaskSucceeded") == 1
    submitted = env.history(arn)[4]["taskSubmittedEventDetails"]
    assert set(json.loads(submitted["output"])) == {"JobRunId", "JobName"}
    # Each poll waited for its timer: the clock moved by AWS's once-a-minute schedule.
    assert env.now() - env.history(arn)[0]["timestamp"] >= 60 * polls - 1


def test_athena_start_query_execution_sync_gives_get_query_execution(aws: Counted) -> None:
    env = aws.env()
    parameters = {
        "QueryString": "SELECT 1",
        "WorkGroup": "primary",
        "ResultConfiguration": {"OutputLocation": "s3://results/"},
    }
    arn = env.start(machine("arn:aws:states:::athena:startQueryExecution.sync", parameters))
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["QueryExecution"]["Status"]["State"] == "SUCCEEDED"
    assert result.result["QueryExecution"]["Query"] == "SELECT 1"
    assert aws.calls.count("StartQueryExecution") == 1
    assert aws.calls.count("GetQueryExecution") >= 1


def _batch_queue(aws: Counted) -> None:
    iam, batch = aws.clients["iam"], aws.clients["batch"]
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="ce1", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName="queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName="def",
        type="container",
        containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["true"]},
    )


def test_batch_submit_job_sync_gives_the_described_job(aws: Counted) -> None:
    _batch_queue(aws)
    env = aws.env()
    parameters = {"JobName": "j1", "JobQueue": "queue", "JobDefinition": "def"}
    arn = env.start(machine("arn:aws:states:::batch:submitJob.sync", parameters))
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["JobName"] == "j1"
    assert result.result["Status"] == "SUCCEEDED"
    assert aws.calls.count("SubmitJob") == 1
    assert aws.calls.count("DescribeJobs") >= 1


def _ecs_cluster(aws: Counted) -> None:
    ecs = aws.clients["ecs"]
    ecs.create_cluster(clusterName="c1")
    ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 64}]
    )


@pytest.fixture
def ecs_never_stops() -> Iterator[None]:
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10_000})
    yield
    state_manager.unset_transition("ecs::task")


def test_ecs_run_task_sync_runs_until_the_task_stops(aws: Counted) -> None:
    _ecs_cluster(aws)
    env = aws.env()
    parameters = {"Cluster": "c1", "TaskDefinition": "web", "LaunchType": "FARGATE"}
    arn = env.start(machine("arn:aws:states:::ecs:runTask.sync", parameters))
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["LastStatus"] == "STOPPED"
    assert result.result["ClusterArn"].endswith("cluster/c1")
    assert aws.calls.count("RunTask") == 1
    assert aws.calls.count("DescribeTasks") >= 2
    assert aws.calls.count("StopTask") == 0


@pytest.mark.usefixtures("ecs_never_stops")
def test_ecs_run_task_sync_that_never_stops_times_out_and_is_stopped_once(aws: Counted) -> None:
    _ecs_cluster(aws)
    env = aws.env()
    parameters = {"Cluster": "c1", "TaskDefinition": "web", "LaunchType": "FARGATE"}
    arn = env.start(machine("arn:aws:states:::ecs:runTask.sync", parameters, TimeoutSeconds=300))
    env.run(arn)
    result = env.result(arn)
    assert result.status == "FAILED"
    assert result.error == "States.Timeout"
    assert aws.calls.count("RunTask") == 1
    assert aws.calls.count("DescribeTasks") == 4  # at 60, 120, 180 and 240 s
    assert aws.calls.count("StopTask") == 1
    stopped = aws.clients["ecs"].list_tasks(cluster="c1", desiredStatus="STOPPED")["taskArns"]
    assert len(stopped) == 1
    assert types(env, arn)[-2:] == ["TaskTimedOut", "ExecutionFailed"]


@pytest.mark.usefixtures("ecs_never_stops")
def test_ecs_run_task_sync_ends_when_someone_stops_the_task(aws: Counted) -> None:
    _ecs_cluster(aws)
    env = aws.env()
    parameters = {"Cluster": "c1", "TaskDefinition": "web", "LaunchType": "FARGATE"}
    arn = env.start(machine("arn:aws:states:::ecs:runTask.sync", parameters))
    env.run_until_idle()
    assert aws.calls.count("DescribeTasks") == 0  # the first poll is a minute away
    env.advance(60)
    env.run_until_idle()
    assert aws.calls.count("DescribeTasks") == 1
    ecs = aws.clients["ecs"]
    (task_arn,) = ecs.list_tasks(cluster="c1")["taskArns"]
    ecs.stop_task(cluster="c1", task=task_arn, reason="done")  # someone ends it
    env.run(arn)
    result = env.result(arn)
    assert result.status == "SUCCEEDED", result.cause
    assert result.result["TaskArn"] == task_arn
    assert result.result["LastStatus"] == "STOPPED"
    assert aws.calls.count("DescribeTasks") == 2
    assert aws.calls.count("StopTask") == 1  # the test's own; none from StepFlow


def test_stopping_the_execution_stops_the_glue_run_once(aws: Counted) -> None:
    glue = aws.clients["glue"]
    glue.create_job(Name="etl", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://x"})
    env = aws.env()
    arn = env.start(machine("arn:aws:states:::glue:startJobRun.sync", {"JobName": "etl"}))
    env.run_until_idle()
    env.stop(arn)
    env.run(arn)
    assert env.result(arn).status == "ABORTED"
    assert aws.calls.count("BatchStopJobRun") == 1
    env.advance(3600)  # the outbox repair and any poll timer come due: none runs it again
    env.run_until_idle()
    assert aws.calls.count("BatchStopJobRun") == 1
    assert aws.calls.count("GetJobRun") == 0


def _glue_job(aws: Counted) -> None:
    glue = aws.clients["glue"]
    glue.create_job(Name="etl", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://x"})


RACES = {  # service: (set-up, resource, parameters, start operation, stop operation)
    "glue": (_glue_job, "glue:startJobRun", {"JobName": "etl"}, "StartJobRun", "BatchStopJobRun"),
    "athena": (
        lambda _: None,
        "athena:startQueryExecution",
        {"QueryString": "SELECT 1", "WorkGroup": "primary"},
        "StartQueryExecution",
        "StopQueryExecution",
    ),
    "batch": (
        _batch_queue,
        "batch:submitJob",
        {"JobName": "j1", "JobQueue": "queue", "JobDefinition": "def"},
        "SubmitJob",
        "TerminateJob",
    ),
    "ecs": (
        _ecs_cluster,
        "ecs:runTask",
        {"Cluster": "c1", "TaskDefinition": "web", "LaunchType": "FARGATE"},
        "RunTask",
        "StopTask",
    ),
}


@pytest.mark.parametrize("service", sorted(RACES))
def test_a_job_started_after_the_stop_is_stopped_once(aws: Counted, service: str) -> None:
    set_up, action, parameters, start, stop = RACES[service]
    set_up(aws)
    aws.calls.clear()
    env = aws.env()
    arn = env.start(machine(f"arn:aws:states:::{action}.sync", parameters))

    def stop_execution(**_: Any) -> None:  # StopExecution lands while the start is out
        env.stop(arn)

    aws.clients[service].meta.events.register(f"after-call.*.{start}", stop_execution)
    env.run(arn)
    assert env.result(arn).status == "ABORTED"
    env.advance(3600)  # repairs and poll timers come due: nothing polls or stops it again
    env.run_until_idle()
    assert aws.calls == [start, stop]  # stopped once, never polled
    assert "TaskSubmitted" not in types(env, arn)
