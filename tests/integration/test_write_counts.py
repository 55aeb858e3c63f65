"""The writes of a fixed small workflow on the deployed path, counted (issue 18's cost goal).

A Parallel of two Lambda tasks and a Map of ten, run as deployed: StartExecution
through the API's stepper, the tasks through the tasks queue and the runner (a batch
of up to ten, run side by side), which commits their results itself (issue 18, round
2: no result recorded on the leases, no result message, no stepper invocation), on
the DynamoDB log (moto). Every write request is counted, by kind and item, so that a
change that adds a write (or a copy of the head in the listing index) fails here, not
on the bill.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.aws.sqs_bus import RUNNER_BATCH_SIZE
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


MAP = {
    "StartAt": "Lines",
    "States": {
        "Lines": {
            "Type": "Map",
            "ItemsPath": "$.lines",
            "ItemProcessor": {
                "StartAt": "Price",
                "States": {"Price": {"Type": "Task", "Resource": FN + "price", "End": True}},
            },
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


class Counted:
    """The DynamoDB write requests of a test, by request and item sort key."""

    def __init__(self, dynamodb: Any) -> None:
        self.writes: list[tuple[str, list[str]]] = []
        dynamodb.meta.events.register("before-parameter-build.dynamodb.*", self.count)
        # Write units as billed (bench/map_meter.py's KeyMeter), one entry per write request.
        meter = KeyMeter()
        meter.attach(dynamodb)
        charge = meter.charge
        self.units: list[float] = []

        def billed(op: str, params: dict[str, Any]) -> None:
            before = meter.wru
            charge(op, params)
            if op in ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem"):
                self.units.append(meter.wru - before)

        meter.charge = billed  # type: ignore[method-assign]

    def count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        op = model.name
        if op == "TransactWriteItems":
            entries = [next(iter(entry.items())) for entry in params["TransactItems"]]
            self.writes.append((op, [f"{kind}:{_sk(body)}" for kind, body in entries]))
            for _kind, body in entries:
                item = body.get("Item", {})
                assert "gsi1pk" not in item or item["sk"]["S"] == "LIST"
        elif op in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"):
            self.writes.append((op, [_sk(params)]))
            item = params.get("Item", {})
            assert "gsi1pk" not in item or item["sk"]["S"] == "LIST"


def deployed(
    dynamodb: Any, definition: dict[str, Any], handlers: dict[str, Any]
) -> tuple[DynamoDBLog, BatchBus, BatchBus, Stepper, Stepper, Counter[str]]:
    """The log, the transition and tasks queues, the API's stepper and the runner
    (as stepflow.aws.wiring builds them), and the handlers' calls."""
    log = DynamoDBLog("stepflow-writes", client=dynamodb)
    bus, tasks = BatchBus(1_700_000_000.0), BatchBus(1_700_000_000.0)
    machine = parse(definition)
    calls = Counter[str]()

    def counted(name: str) -> Any:
        def run(payload: Any) -> Any:
            calls[name] += 1
            return handlers[name](payload)

        return run

    def stepper(concurrency: int) -> Stepper:
        return Stepper(
            log=log,
            bus=bus,
            definitions=lambda _arn: machine,
            clock=lambda: bus.now,
            invoker=task_invoker({name: counted(name) for name in handlers}),
            inline_tasks=False,
            tasks_bus=tasks,
            task_concurrency=concurrency,
        )

    runner = stepper(RUNNER_BATCH_SIZE)
    runner.task_group_wait = 60.0  # one commit when the last task ends, whatever the load
    return log, bus, tasks, stepper(1), runner, calls


def test_two_parallel_tasks_cost_one_create_one_clear_one_claim_and_one_update(
    dynamodb: Any,
) -> None:
    handlers = {"reserve": lambda p: {"reserved": 1}, "charge": lambda p: {"charged": 2}}
    log, bus, tasks, api, runner, calls = deployed(dynamodb, PARALLEL, handlers)
    counted = Counted(dynamodb)
    # WHEN the execution starts through the API (its first decision schedules both tasks)
    arn = api.start_execution(state_machine_arn=SM, name="o1", input={}, seed=1).execution_arn
    # THEN both tasks went to the tasks queue as ONE message (a group: one send, no batch)
    assert tasks.batches == []
    batch = tasks.receive_batch(RUNNER_BATCH_SIZE)
    assert len(batch) == 1 and len(batch[0].body["group"]) == 2
    # WHEN the runner gets it
    assert runner.handle_batch(batch) == []
    # THEN the execution succeeded, each task ran once, and no message went to the
    # transition queue (no result message, so no stepper invocation)
    final = log.get(arn)
    assert final is not None and final.status == "SUCCEEDED"
    assert calls == {"reserve": 1, "charge": 1}
    assert bus.receive_batch(10) == [] and bus.batches == []
    # AND it cost exactly these writes: the create (the listing entry, then the head carrying
    # the first events), the API's clear of the sent outbox, ONE claim of the group (no
    # recorded result) that is also the copy of the first events to their item (the group's
    # record lives there: stepflow.aws.log_claims), one commit of both results: one
    # UpdateItem of the head carrying its events (stepflow.aws.log_pending), no copy
    assert counted.writes == [
        ("PutItem", ["LIST"]),
        ("PutItem", ["HEAD"]),
        ("UpdateItem", ["HEAD"]),
        ("UpdateItem", ["EV#000000000001"]),
        ("UpdateItem", ["HEAD"]),
    ]

    # AND these write units (bench/map_meter.py's KeyMeter: 1 KB a unit, twice in a
    # transaction, an update billed on the larger of the item before and after, the
    # indexes' own writes): the create 4 (the listing entry 1 and its index 1, the head
    # with the first events 1 and the running index 1), the clear 1, the group's claim with
    # the copy 1, the commit 2 (the head with its events 1, the running index's delete 1).
    # The claim and the copy were two items (1 each) until issue 18's round 10. The create
    # was a transaction of the head, the events and the listing entry until issue 18's
    # round 9: 8 units. As a transaction of the head and an event item (round
    # 7) the commit was 5; before the smaller head layout: 10, 2, ..., 7; before the
    # runner's own commit each task also had its result recorded (1 more each); before
    # the group claim (issue 18, round 3) each task had its own claim (1 each).
    assert counted.units == [2, 2, 1, 1, 2]


def test_a_map_of_ten_tasks_in_one_runner_batch_is_one_commit(dynamodb: Any) -> None:
    log, bus, tasks, api, runner, calls = deployed(
        dynamodb, MAP, {"price": lambda p: {"price": p * 2}}
    )
    counted = Counted(dynamodb)
    arn = api.start_execution(
        state_machine_arn=SM, name="m1", input={"lines": list(range(10))}, seed=1
    ).execution_arn
    # THEN the Map's ten tasks went to the tasks queue as ONE message
    assert tasks.batches == []
    batch = tasks.receive_batch(RUNNER_BATCH_SIZE)
    assert len(batch) == 1 and len(batch[0].body["group"]) == 10
    # WHEN the runner gets it
    assert runner.handle_batch(batch) == []
    # THEN the execution succeeded with every result, each task ran once
    final = log.get(arn)
    assert final is not None and final.status == "SUCCEEDED"
    assert final.state["output"] == [{"price": n * 2} for n in range(10)]
    assert calls == {"price": 10}
    assert bus.receive_batch(10) == []
    # AND the writes after the start: ONE claim of the group and one commit of the ten results
    after_start = counted.writes[1:]
    assert after_start[0] == ("UpdateItem", ["HEAD"])  # the API's clear
    assert after_start[1:] == [("PutItem", ["TK#tasks#1#0"]), ("UpdateItem", ["HEAD"])]

    # AND their units: the create 8, the clear 1, the group's claim 1, the commit of all ten 2
    # (a transaction before round 8: 5; before the group claim: ten claims of 1). The create
    # stays a transaction (head, events, listing entry): its head is 1 KB without the
    # events, so carried they would cost as much (log_pending.worth_carrying_at_create:
    # a put of 2, a clear of 2, a copy of 1, a commit of 3: 12 units, as now).
    assert counted.writes[0] == (
        "TransactWriteItems",
        ["Put:HEAD", "Put:EV#000000000001", "Put:LIST"],
    )
    assert counted.units == [8, 1, 1, 2]


def _sk(body: dict[str, Any]) -> str:
    attrs = body.get("Item") or body.get("Key") or {}
    return str(attrs.get("sk", {}).get("S", "?"))
