"""The head item's layout: small (issue 18's cost goal), and heads written before still run.

A head is rewritten by every commit and billed per KB (twice in a transaction), so
its size is counted here on the deployed path (API stepper, tasks queue, runner,
transition queue) on the DynamoDB log (moto): every head a write leaves behind is
read back raw and measured as DynamoDB counts it (names plus values).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.data.serialize import dumps
from stepflow.engine import ExecutionState
from stepflow.engine.codec import decode_state
from stepflow.engine.model import Fanout
from stepflow.runtime import InMemoryBus, Stepper
from stepflow.testing.handlers import task_invoker

from tests.moto_env import offline_aws

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.aws.log_items import item_size  # noqa: E402
from stepflow.aws.log_pending import PENDING_ATTRIBUTES  # noqa: E402

TABLE = "stepflow-heads"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
ORDER = {
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": FN + "validate",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}],
            "Next": "Fulfil",
        },
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
            "ResultPath": "$.fulfilment",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "End": True},
    },
}
INPUT = {"id": "ord-7", "lines": [{"sku": f"sku-{i}", "qty": i + 1} for i in range(8)]}
HANDLERS = {
    "validate": lambda p: p,
    "reserve": lambda p: {"reserved": len(p["lines"])},
    "charge": lambda p: {"charged": 4200},
}

HEAD_LIMIT = 1024
"""One write unit: every head of this workflow fits in it (the former layout: 1.1-1.5 KB)."""


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


class Run:
    """The deployed path's three steppers over one log, driven until nothing is due."""

    def __init__(self, log: DynamoDBLog) -> None:
        self.log = log
        self.bus, self.tasks = InMemoryBus(1_700_000_000.0), InMemoryBus(1_700_000_000.0)
        machine = parse(ORDER)

        def stepper() -> Stepper:
            return Stepper(
                log=log,
                bus=self.bus,
                definitions=lambda _arn: machine,
                clock=lambda: max(self.bus.now, self.tasks.now),
                invoker=task_invoker(HANDLERS),
                inline_tasks=False,
                tasks_bus=self.tasks,
            )

        self.api, self.transitions, self.runner = stepper(), stepper(), stepper()

    def start(self) -> str:
        record = self.api.start_execution(state_machine_arn=SM, name="o7", input=INPUT, seed=1)
        return record.execution_arn

    def step(self) -> bool:
        """Run one due batch (tasks first); False when nothing is due."""
        for queue, handler in ((self.tasks, self.runner), (self.bus, self.transitions)):
            due = queue.next_due()
            if due is None:
                continue
            queue.now = max(queue.now, due)
            batch = queue.receive_batch(10)
            assert handler.handle_batch(batch) == []
            for message in batch:
                queue.ack(message)
            return True
        return False


def _head(client: Any, arn: str) -> dict[str, Any]:
    """The stored head without the events of its commit it carries (log_pending)."""
    key = {"pk": {"S": f"EX#{arn}"}, "sk": {"S": "HEAD"}}
    item: dict[str, Any] = client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    return {k: v for k, v in item.items() if k not in PENDING_ATTRIBUTES}


def test_every_head_of_the_order_workflow_fits_in_one_write_unit(dynamodb: Any) -> None:
    sizes: list[int] = []
    arns: list[str] = []

    def measure(model: Any, **_: Any) -> None:
        if model.name in ("TransactWriteItems", "UpdateItem", "PutItem") and arns:
            sizes.append(item_size(_head(dynamodb, arns[0])))

    log = DynamoDBLog(TABLE, client=dynamodb)
    run = Run(log)
    arns.append(run.start())
    sizes.append(item_size(_head(dynamodb, arns[0])))
    dynamodb.meta.events.register("after-call.dynamodb.*", measure)
    while run.step():
        pass
    final = log.get(arns[0])
    assert final is not None and final.status == "SUCCEEDED"
    assert final.state["output"]["fulfilment"] == [{"reserved": 8}, {"charged": 4200}]
    # every head written (a commit with its outbox, the outbox cleared unless the runner
    # ran its tasks in place, the final one)
    assert len(sizes) >= 5
    assert max(sizes) < HEAD_LIMIT, sizes


def _format1(state: ExecutionState) -> dict[str, Any]:
    """The state as the codec's format 1 wrote it: every field of every frame."""

    def full(obj: Any) -> dict[str, Any]:
        return {f.name: getattr(obj, f.name) for f in fields(obj)}

    data = full(state)
    frames = {}
    for key, frame in state.frames.items():
        encoded = full(frame)
        encoded["retries"] = list(frame.retries)
        if isinstance(frame.fanout, Fanout):
            encoded["fanout"] = full(frame.fanout)
        frames[key] = encoded
    data["frames"] = frames
    data["timers"] = {key: list(ref) for key, ref in state.timers.items()}
    data["format"] = 1
    return data


def _old_head(item: dict[str, Any], log: DynamoDBLog) -> dict[str, Any]:
    """``item`` rewritten in the layout of the heads written before (plain zlib, full docs)."""
    record = log.head_record(item)
    old = {
        name: value
        for name, value in item.items()
        if not name.startswith(("input", "state", "outbox", "attributes"))
        or name == "state_machine_arn"
    }
    docs = {
        "input": record.input,
        "state": _format1(decode_state(record.state)),
        "outbox": [m.to_json() for m in record.outbox],
        "attributes": record.attributes,
    }
    for name, value in docs.items():
        text = dumps(value).encode()
        packed = zlib.compress(text, 6)
        if len(text) > 256 and len(packed) < len(text):
            old[f"{name}_z"] = {"B": packed}
        else:
            old[name] = {"S": text.decode()}
    return old


def test_a_head_written_in_the_former_layout_loads_the_same_and_runs_to_the_end(
    dynamodb: Any,
) -> None:
    log = DynamoDBLog(TABLE, client=dynamodb)
    run = Run(log)
    arn = run.start()
    while run.tasks.next_due() is None:  # until the first task is queued, its outbox pending
        assert run.step()
    item = _head(dynamodb, arn)
    before = log.get(arn)
    assert before is not None
    # GIVEN the head rewritten as the code before this layout wrote it, outbox pending
    old = _old_head(item, log)
    assert old["state_z"]["B"][1] & 0x20 == 0  # no preset dictionary
    assert "attributes" in old and "~h" not in str(decode_state(before.state))
    dynamodb.put_item(TableName=TABLE, Item=old)
    # WHEN it is read: THEN it is the same record
    loaded = log.get(arn)
    assert loaded is not None
    assert loaded.outbox == before.outbox and loaded.input == before.input
    assert (loaded.seq, loaded.status, loaded.name) == (before.seq, before.status, before.name)
    assert loaded.state["format"] == 1
    assert decode_state(loaded.state) == decode_state(before.state)
    # WHEN the execution goes on from it
    while run.step():
        pass
    # THEN it finishes as a fresh one does, and its head is in the new layout
    final = log.get(arn)
    assert final is not None and final.status == "SUCCEEDED"
    assert final.state["output"]["fulfilment"] == [{"reserved": 8}, {"charged": 4200}]
    assert final.state["execution_arn"] == arn and final.state["input"] == INPUT
    head = _head(dynamodb, arn)
    assert head["state_z"]["B"][1] & 0x20  # compressed with the preset dictionary
    assert "attributes" not in head
