"""A durable runtime on a virtual clock with activities: in-memory log, bus and task queue."""

from __future__ import annotations

import itertools
from typing import Any

from stepflow.activities import ActivityRouter, ActivityService
from stepflow.asl import parse
from stepflow.engine.resources import describe
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime import InMemoryBus, InMemoryLog, Stepper
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.task_queue import InMemoryTaskQueue

REGION, ACCOUNT = "us-east-1", "123456789012"
SM = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Jobs"


def activity(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:activity:{name}"


def task_machine(resource: str, **task: Any) -> dict[str, Any]:
    """One Task on ``resource`` (``task`` adds fields), caught into a Failed state."""
    return {
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": resource,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": True,
                **task,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


class Harness:
    """Everything in memory; ``now`` only moves when a test says so."""

    def __init__(
        self,
        definition: dict[str, Any],
        *,
        lease_seconds: int = 60,
        max_deliveries: int = 5,
        invoker: Any = None,
        sqs: Any = None,
        child_limit: int | None = 40,
    ) -> None:
        self.bus = InMemoryBus(now=1_000_000.0)
        self.log = InMemoryLog()
        self.queue = InMemoryTaskQueue(clock=lambda: self.bus.now)
        machine = parse(definition)
        inner = invoker or (lambda body: TaskOutcome.succeeded({"inline": body["input"]}))
        self.stepper = Stepper(
            log=self.log,
            bus=self.bus,
            definitions=lambda _arn: machine,
            clock=lambda: self.bus.now,
            invoker=_sqs_first(inner, sqs),
            router=ActivityRouter(self.queue, self.bus, signer=self.bus.signer),
            child_limit=child_limit,
        )
        self.service = ActivityService(
            stepper=self.stepper,
            queue=self.queue,
            signer=self.bus.signer,
            clock=lambda: self.bus.now,
            lease_seconds=lease_seconds,
            max_deliveries=max_deliveries,
        )
        self._names = itertools.count(1)

    @property
    def now(self) -> float:
        return self.bus.now

    def start(self, input: Any = None) -> str:
        record = self.stepper.start_execution(
            state_machine_arn=SM, name=f"run-{next(self._names)}", input=input or {}, seed=7
        )
        self.advance(0)
        return record.execution_arn

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead, delivering every bus message due by then."""
        until = self.bus.now + seconds
        while len(self.bus) and self.bus._queue[0][0] <= until:
            batch = self.bus.receive_batch(10)
            failed = {id(m) for m, _ in self.stepper.handle_batch(batch)}
            for message in batch:
                if id(message) not in failed:
                    self.bus.ack(message)
        self.bus.now = max(self.bus.now, until)

    def poll(self, name: str, worker: str = "w") -> dict[str, Any]:
        return self.service.get_activity_task(
            {"activityArn": activity(name), "workerName": worker, "waitSeconds": 0}
        )

    def poll_arn(self, arn: Any) -> dict[str, Any]:
        return self.service.get_activity_task({"activityArn": arn, "waitSeconds": 0})

    def status(self, arn: str) -> str:
        record = self.log.get(arn)
        assert record is not None
        return record.status

    def output(self, arn: str) -> Any:
        record = self.log.get(arn)
        assert record is not None
        return self.stepper._load_state(record).output

    def history(self, arn: str) -> list[dict[str, Any]]:
        return self.log.history(arn, limit=10_000).events

    def types(self, arn: str) -> list[str]:
        return [event["type"] for event in self.history(arn)]


def _sqs_first(inner: TaskInvoker, sqs: Any) -> TaskInvoker:
    """SQS tasks through the SQS integration on ``sqs``, the others on ``inner``."""
    integrations = IntegrationInvoker(default_registry(), FixedClients(sqs=sqs))

    def invoke(body: dict[str, Any]) -> TaskOutcome:
        if describe(str(body.get("resource", ""))).service == "sqs":
            return integrations(body)
        return inner(body)

    return invoke
