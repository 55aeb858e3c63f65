"""What a durable StepFlow execution costs in AWS requests, and in dollars per million transitions.

Runs two workflows through the real durable runtime (Stepper + DynamoDBLog on
moto, in process) and counts every AWS request it makes:

- DynamoDB: each request's items are sized with DynamoDB's rules (attribute
  names + values) and turned into write/read request units (1 KB per WRU,
  4 KB per RRU, transactions cost double);
- SQS: every message sent, plus one receive and one batch delete per batch
  (a standard queue behind a Lambda event source mapping, batches of 10);
- Lambda: one stepper invocation per batch, billed for a measured duration.

Prices are us-east-1 on-demand list prices (see PRICES). The user's own task
Lambdas are not counted, as Step Functions' $25 per million transitions does
not include them either.

    .venv/bin/python bench/cost.py [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import boto3
from moto import mock_aws
from stepflow.asl import parse
from stepflow.aws import DynamoDBLog, create_table
from stepflow.engine import RunTask
from stepflow.runtime import InMemoryBus, Message, Stepper, TaskOutcome
from stepflow.testing.handlers import run_handler

PRICES = {
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB request
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,  # x86
}
STEP_FUNCTIONS_PER_MILLION = 25.0
LAMBDA_MEMORY_GB = 0.25
BATCH_SIZE = 10  # the SQS event source mapping's default batch size
COMPRESS_ABOVE = int(os.environ.get("STEPFLOW_COMPRESS_ABOVE", "1024"))
FN = "arn:aws:lambda:us-east-1:123456789012:function:"
SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Bench"

COUNTER_LOOP = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.i", "NumericLessThan": 2000, "Next": "Increment"}],
            "Default": "Done",
        },
        "Increment": {
            "Type": "Pass",
            "Parameters": {
                "i.$": "States.MathAdd($.i, 1)",
                "label.$": "States.Format('iteration {}', $.i)",
            },
            "Next": "Mark",
        },
        "Mark": {"Type": "Pass", "Result": {"ok": True}, "ResultPath": "$.mark", "Next": "Check"},
        "Done": {"Type": "Succeed"},
    },
}

ORDER = {
    "StartAt": "Validate",
    "States": {
        "Validate": {
            "Type": "Task",
            "Resource": FN + "validate",
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Next": "Route",
        },
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.valid", "BooleanEquals": False, "Next": "Reject"}],
            "Default": "Fulfil",
        },
        "Reject": {"Type": "Fail", "Error": "InvalidOrder"},
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
            "Next": "Pack",
        },
        "Pack": {
            "Type": "Map",
            "ItemsPath": "$.lines",
            "ItemProcessor": {
                "StartAt": "PackLine",
                "States": {"PackLine": {"Type": "Task", "Resource": FN + "pack", "End": True}},
            },
            "ResultPath": "$.parcels",
            "Next": "Summary",
        },
        "Summary": {
            "Type": "Pass",
            "Parameters": {"order.$": "$.id", "parcels.$": "States.ArrayLength($.parcels)"},
            "End": True,
        },
    },
}
ORDER_INPUT = {
    "id": "ord-1",
    "valid": True,
    "lines": [{"sku": f"sku-{i}", "qty": i + 1} for i in range(10)],
}


def order_handlers() -> dict[str, Any]:
    calls = Counter[str]()

    class Flaky(Exception):
        pass

    def validate(payload: Any) -> Any:
        calls["validate"] += 1
        if calls["validate"] == 1:
            raise Flaky("transient")
        return payload

    return {
        "validate": validate,
        "reserve": lambda p: {"reserved": len(p["lines"])},
        "charge": lambda p: {"charged": 4200},
        "pack": lambda line: {"parcel": line["sku"]},
    }


def _size(value: dict[str, Any]) -> int:
    """DynamoDB's size of an attribute value (low-level wire shape)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(str(Decimal(v)).lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _size(x) + 1 for k, x in v.items())
    if kind == "L":
        return 3 + sum(_size(x) + 1 for x in v)
    return len(json.dumps(v))


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for an item: attribute names plus values."""
    return sum(len(name.encode()) + _size(value) for name, value in item.items())


class Meter:
    """Counts AWS requests and request units through botocore's event hooks."""

    def __init__(self) -> None:
        self.calls = Counter[str]()
        self.wru = 0.0
        self.rru = 0.0
        self.enabled = True

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        op = model.name
        self.calls[f"dynamodb:{op}"] += 1
        if op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                size = item_size(body["Item"]) if kind == "Put" else self._updated_size(body)
                self.wru += 2 * max(1, math.ceil(size / 1024))
        elif op == "PutItem":
            self.wru += max(1, math.ceil(item_size(params["Item"]) / 1024))
        elif op == "UpdateItem":
            self.wru += max(1, math.ceil(self._updated_size(params) / 1024))

    def _updated_size(self, body: dict[str, Any]) -> int:
        # an update is billed on the item's size after the update: key + every value written
        values = body.get("ExpressionAttributeValues", {})
        return item_size(body["Key"]) + sum(_size(v) + 8 for v in values.values())

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        op = model.name
        if op == "GetItem" and "Item" in parsed:
            self.rru += max(1, math.ceil(item_size(parsed["Item"]) / 4096))
        elif op == "Query":
            size = sum(item_size(i) for i in parsed.get("Items", []))
            self.rru += max(1, math.ceil(size / 4096))
        elif op == "GetItem":
            self.rru += 1


class CountingBus(InMemoryBus):
    """The in-memory bus, counting what an SQS queue would bill."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self.requests = 0

    def send(self, message: Message, delay_seconds: int = 0) -> None:
        size = len(json.dumps(message.to_json()).encode())
        self.requests += max(1, math.ceil(size / 65536))
        super().send(message, delay_seconds)


def run(definition: dict[str, Any], value: Any, handlers: dict[str, Any]) -> dict[str, Any]:
    """Run one execution durably on moto and return the counts and the price."""
    machine = parse(definition)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-bench")
        meter = Meter()
        meter.attach(client)
        log = DynamoDBLog("stepflow-bench", client=client, compress_above=COMPRESS_ABOVE)
        bus = CountingBus(1_700_000_000.0)

        def invoke(body: dict[str, Any]) -> TaskOutcome:
            command = RunTask(body["task_id"], body["resource"], body["input"], body["state_name"])
            return run_handler(handlers, command)

        stepper = Stepper(
            log=log, bus=bus, definitions=lambda _: machine, clock=lambda: bus.now, invoker=invoke
        )
        record = stepper.start_execution(state_machine_arn=SM, name="bench", input=value, seed=1)
        messages = batches = 0
        busy = 0.0
        while batch := bus.receive_batch(BATCH_SIZE):
            started = time.perf_counter()
            failures = stepper.handle_batch(batch)
            busy += time.perf_counter() - started
            assert not failures, failures
            for message in batch:
                bus.ack(message)
            messages += len(batch)
            batches += 1
        meter.enabled = False  # reading the history back below is not part of the run
        final = log.get(record.execution_arn)
        assert final is not None and final.status == "SUCCEEDED", final
        history: list[dict[str, Any]] = []
        token = None
        while True:
            page = log.history(record.execution_arn, next_token=token)
            history += page.events
            if (token := page.next_token) is None:
                break
    transitions = sum(1 for e in history if e["type"].endswith("StateEntered"))
    sqs_requests = bus.requests + 2 * batches  # sends, plus a receive and a batch delete per batch
    lambda_seconds = busy  # measured on moto; real DynamoDB calls take ~5-20 ms each
    dollars = {
        "dynamodb_writes": meter.wru * PRICES["dynamodb_wru"],
        "dynamodb_reads": meter.rru * PRICES["dynamodb_rru"],
        "sqs": sqs_requests * PRICES["sqs_request"],
        "lambda_requests": batches * PRICES["lambda_request"],
        "lambda_duration": lambda_seconds * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second"],
    }
    total = sum(dollars.values())
    return {
        "transitions": transitions,
        "history_events": len(history),
        "messages": messages,
        "dynamodb_calls": dict(meter.calls),
        "dynamodb_wru": meter.wru,
        "dynamodb_rru": meter.rru,
        "sqs_requests": sqs_requests,
        "lambda_invocations": batches,
        "lambda_seconds_measured": round(lambda_seconds, 4),
        "dollars": {k: round(v, 8) for k, v in dollars.items()},
        "dollars_total": round(total, 8),
        "dollars_per_million_transitions": round(total / transitions * 1e6, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    results = {
        "counter_loop": run(COUNTER_LOOP, {"i": 0}, {}),
        "order_workflow": run(ORDER, ORDER_INPUT, order_handlers()),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    cpus = os.cpu_count()
    print(f"machine: {platform.machine()} cpus={cpus} python={sys.version.split()[0]}")
    print(f"prices (us-east-1 on-demand): {PRICES}; Lambda billed at {LAMBDA_MEMORY_GB} GB")
    for name, r in results.items():
        print(f"\n{name}: {r['transitions']} transitions, {r['history_events']} history events")
        print(f"  messages: {r['messages']} in {r['lambda_invocations']} stepper invocations")
        print(f"  DynamoDB: {sum(r['dynamodb_calls'].values())} calls {r['dynamodb_calls']}")
        print(f"            {r['dynamodb_wru']:.0f} WRU, {r['dynamodb_rru']:.0f} RRU")
        seconds = r["lambda_seconds_measured"]
        print(f"  SQS: {r['sqs_requests']} requests; Lambda: {seconds} s measured")
        per_million = r["dollars_per_million_transitions"]
        print(
            f"  cost: ${r['dollars_total']:.6f} = ${per_million:.2f} per million transitions "
            f"(Step Functions Standard: ${STEP_FUNCTIONS_PER_MILLION:.2f}, "
            f"{STEP_FUNCTIONS_PER_MILLION / per_million:.1f}x more)"
        )
    print("\nreproduce: .venv/bin/python bench/cost.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
