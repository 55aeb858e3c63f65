"""``.sync`` of a polled service on the durable runtime: the DynamoDB log on moto,
every message through the stepper Lambda's handler, the job on moto's Glue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.testing import WorkflowEnvironment
from stepflow.testing.durable import moto_environment

pytest.importorskip("moto")


class CountingClients(FixedClients):
    """moto clients made inside the environment's mock, their API calls counted."""

    def __init__(self) -> None:
        import boto3

        glue = boto3.client("glue", region_name="us-east-1")
        super().__init__(glue=glue)
        self.calls: list[str] = []
        glue.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.append(model.name)


MACHINE = {
    "StartAt": "Job",
    "States": {
        "Job": {
            "Type": "Task",
            "Resource": "arn:aws:states:::glue:startJobRun.sync",
            "Parameters": {"JobName": "etl"},
            "ResultSelector": {"State.$": "$.JobRunState", "Name.$": "$.JobName"},
            "End": True,
        }
    },
}


@contextmanager
def glue_on_moto() -> Iterator[tuple[WorkflowEnvironment, CountingClients]]:
    """The durable environment whose tasks call moto's Glue (a job ``etl``), calls counted."""
    with moto_environment() as env:
        clients = CountingClients()
        clients.clients["glue"].create_job(
            Name="etl", Role="r", Command={"Name": "glueetl", "ScriptLocation": "s3://x"}
        )
        env.tasks.inner = _integrations(clients)
        env.tasks.integrations = _integrations(clients)
        clients.calls.clear()
        yield env, clients


def test_glue_sync_runs_to_the_end_on_the_durable_runtime() -> None:
    with glue_on_moto() as (env, clients):
        arn = env.start(MACHINE)
        env.run(arn)
        result = env.result(arn)
        assert result.status == "SUCCEEDED", result.cause
        assert result.result == {"State": "SUCCEEDED", "Name": "etl"}
        assert clients.calls.count("StartJobRun") == 1
        polls = clients.calls.count("GetJobRun")
        assert polls >= 1
        types = [e["type"] for e in env.history(arn)]
        assert types.count("TaskSubmitted") == 1 and types.count("TaskSucceeded") == 1
        env.advance(3600)
        env.run_until_idle()
        assert clients.calls.count("GetJobRun") == polls


def test_stopping_on_the_durable_runtime_stops_the_run_once() -> None:
    with glue_on_moto() as (env, clients):
        arn = env.start(MACHINE)
        env.run_until_idle()
        env.stop(arn)
        env.run(arn)
        env.advance(3600)
        env.run_until_idle()
        assert env.result(arn).status == "ABORTED"
        assert clients.calls.count("BatchStopJobRun") == 1
        assert clients.calls.count("GetJobRun") == 0


def test_a_run_started_after_the_stop_is_stopped_once_on_the_durable_runtime() -> None:
    with glue_on_moto() as (env, clients):
        arn = env.start(MACHINE)

        def stop_execution(**_: Any) -> None:  # StopExecution lands while StartJobRun is out
            env.stop(arn)

        glue = clients.clients["glue"]
        glue.meta.events.register("after-call.glue.StartJobRun", stop_execution)
        env.run(arn)
        env.advance(3600)
        env.run_until_idle()
        assert env.result(arn).status == "ABORTED"
        # Stopped once, never polled (moto has no BatchStopJobRun: the failure is logged).
        assert clients.calls == ["StartJobRun", "BatchStopJobRun"]


def _integrations(clients: FixedClients) -> IntegrationInvoker:
    return IntegrationInvoker(default_registry(), clients)
