"""The writes of a fixed small workflow on the deployed path, counted (issue 18's cost goal).

A Parallel of two Lambda tasks, run as deployed: StartExecution through the API's
stepper, the tasks through the tasks queue and the runner, their results through
the transition queue to the stepper in one batch, on the DynamoDB log (moto). Every
write request is counted, by kind and item, so that a change that adds a write (or a
copy of the head in the listing index) fails here, not on the bill.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.runtime import InMemoryBus, Message, Stepper
from stepflow.testing.handlers import task_invoker

from bench.map_meter import KeyMeter
from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Fulfil"
PARALLEL = {
    "StartAt": "Fulfil",
    "States": {
        "Fulfil": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "Reserve",
                    "States": {
                        "Reserve": {"Type": "Task", "Resource": FN + "reserve", "End": True}
                    },
                },
                {
                    "StartAt": "Charge",
                    "States": {"Charge": {"Type": "Task", "Resource": FN + "charge", "End": True}},
                },
            ],
            "End": True,
        }
    },
}


class BatchBus(InMemoryBus):
    """The in-memory bus with SendMessageBatch: each batch call recorded."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self.batches: list[int] = []

    def send_batch(self, messages: Sequence[tuple[Message, int]]) -> None:
        self.batches.append(len(messages))
        for message, delay in messages:
            self.send(message, delay)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-writes")
        yield client


def test_two_parallel_tasks_cost_two_transactions_one_clear_and_two_lease_writes_each(
    dynamodb: Any,
) -> None:
    writes: list[tuple[str, list[str]]] = []

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        op = model.name
        if op == "TransactWriteItems":
            entries = [next(iter(entry.items())) for entry in params["TransactItems"]]
            writes.append((op, [f"{kind}:{_sk(body)}" for kind, body in entries]))
            for _kind, body in entries:
                item = body.get("Item", {})
                assert "gsi1pk" not in item or item["sk"]["S"] == "LIST"
        elif op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
            writes.append((op, [_sk(params)]))
            assert "gsi1pk" not in params.get("Item", {})

    dynamodb.meta.events.register("before-parameter-build.dynamodb.*", count)
    meter, units = KeyMeter(), []
    meter.attach(dynamodb)
    charge = meter.charge

    def billed(op: str, params: dict[str, Any]) -> None:
        before = meter.wru
        charge(op, params)
        if op in ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
            units.append(meter.wru - before)

    meter.charge = billed  # type: ignore[method-assign]
    log = DynamoDBLog("stepflow-writes", client=dynamodb)
    bus, tasks = BatchBus(1_700_000_000.0), BatchBus(1_700_000_000.0)
    machine = parse(PARALLEL)
    handlers = {"reserve": lambda p: {"reserved": 1}, "charge": lambda p: {"charged": 2}}

    def stepper() -> Stepper:
        return Stepper(
            log=log,
            bus=bus,
            definitions=lambda _arn: machine,
            clock=lambda: bus.now,
            invoker=task_invoker(handlers),
            inline_tasks=False,
            tasks_bus=tasks,
        )

    api, transitions, runner = stepper(), stepper(), stepper()
    # WHEN the execution starts through the API (its first decision schedules both tasks)
    arn = api.start_execution(state_machine_arn=SM, name="o1", input={}, seed=1).execution_arn
    # THEN both tasks went to the tasks queue in one batch
    assert tasks.batches == [2]
    # WHEN the runner runs each task (a batch of one) and the stepper gets both results at once
    for _ in range(2):
        (task,) = tasks.receive_batch(1)
        assert runner.handle_batch([task]) == []
        tasks.ack(task)
    results = bus.receive_batch(10)
    assert len(results) == 2
    assert transitions.handle_batch(results) == []
    # THEN the execution succeeded
    final = log.get(arn)
    assert final is not None and final.status == "SUCCEEDED"
    # AND it cost exactly these writes: the create (head, events, listing entry), the API's
    # clear of the sent outbox, a claim and a result per task, one commit of both results
    assert writes == [
        ("TransactWriteItems", ["Put:HEAD", "Put:EV#000000000001", "Put:LIST"]),
        ("UpdateItem", ["HEAD"]),
        ("PutItem", ["TK#t3"]),
        ("PutItem", ["TK#t3"]),
        ("PutItem", ["TK#t4"]),
        ("PutItem", ["TK#t4"]),
        ("TransactWriteItems", ["Update:HEAD", "Put:EV#000000000008"]),
    ]
    # AND these write units (bench/map_meter.py's KeyMeter: 1 KB a unit, twice in a
    # transaction, an update billed on the larger of the item before and after, the
    # indexes' own writes). The head fits in one unit (it took two before the smaller
    # head layout: 10, 2, 1, 1, 1, 1, 7): the create 8 (head 2, events 2, listing entry 2,
    # its index 1, the running index 1), the clear 1, the commit 5 (head 2, events 2, the
    # running index's delete 1)
    assert units == [8, 1, 1, 1, 1, 1, 5]


def _sk(body: dict[str, Any]) -> str:
    attrs = body.get("Item") or body.get("Key") or {}
    return str(attrs.get("sk", {}).get("S", "?"))
