"""The order workload as the deployed stack runs it, metered on the wire: $ per million transitions.

bench/cost.py runs tasks inline in the stepper. The deployed stack does not
(docs/architecture.md, the long-task mechanism): StartExecution commits through
the API's stepper (a repair message only after a failed send since round 11;
``--repair-before-commit`` for one before each commit, as before), the stepper Lambda consumes
the transition queue in batches of 10 and sends each task to the tasks queue,
and the runner Lambda claims, runs and answers the tasks of its batch (one per
invocation before issue 18, up to ten since, read from the code measured; since
issue 18's round 2 it commits their results itself, one commit per execution; since
round 3 one commit's tasks are one message under one claim). This
bench drives those three ``Stepper`` s (built as :mod:`stepflow.aws.wiring`
builds them) over one ``DynamoDBLog`` on moto and meters every request:

- DynamoDB write units from the real item sizes with bench/map_meter.py's
  ``KeyMeter`` (1 KB per unit, x2 in a transaction, an update billed on the
  larger of the item before and after, the listing index's copy of the head,
  the running index), read units (4 KB per unit);
- SQS: every message sent, one receive and one delete per Lambda batch;
- Lambda: one request per stepper batch and per runner invocation (duration
  measured on moto, at 0.25 GB).

Scheduling is deterministic: every due task runs (runners in parallel) before
the stepper receives the next batch of up to 10 due messages, and the virtual
clock jumps to the next delayed message when nothing is due. Each write is
listed by who made it (api, stepper, runner), the request and the item kind.

    .venv/bin/python bench/order_cost.py [--json] [--writes] [--runner-seconds 900]

``--writes`` lists every write request in order: who made it, its units, and each item's
billed size with its largest attributes (the figures behind docs/benchmarks.md's
"Cost: what $1.00 needs").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from moto import mock_aws
from stepflow.asl import parse
from stepflow.aws import DynamoDBLog, create_table, sqs_bus
from stepflow.aws.settings import REPAIR_DELAY_SECONDS, Settings
from stepflow.runtime import InMemoryBus, Message, Stepper
from stepflow.testing.handlers import task_invoker

from bench.cost import (
    LAMBDA_MEMORY_GB,
    ORDER,
    ORDER_INPUT,
    PRICES,
    STEP_FUNCTIONS_PER_MILLION,
    CountingBus,
    order_handlers,
)
from bench.map_meter import KeyMeter, _key_of

BATCH_SIZE = 10
"""The transition queue's event source mapping batch size."""
RUNNER_BATCH = int(getattr(sqs_bus, "RUNNER_BATCH_SIZE", 1))
DEFAULT_REPAIR_DELAY = int(Settings.model_fields["repair_delay_seconds"].default)
"""The API's repair message before each commit, as deployed by default (0 since round 11)."""
"""The tasks queue's, as the code measured deploys it (1 before the runner took batches)."""


class SqsBus(CountingBus):
    """The counting bus with SQS's SendMessageBatch: ten messages (256 KB) a request."""

    def send_batch(self, messages: Sequence[tuple[Message, int]]) -> None:
        sizes = [len(json.dumps(m.to_json()).encode()) for m, _ in messages]
        requests, entries, size = 0, 0, 0
        for length in sizes:
            if entries == 0 or entries == 10 or size + length > 262_144:
                requests, entries, size = requests + 1, 0, 0
            entries, size = entries + 1, size + length
        for message, delay in messages:
            InMemoryBus.send(self, message, delay)
        self.requests += requests


class WriteLog(KeyMeter):
    """A ``KeyMeter`` that also lists each write request: who, which request, items, units."""

    def __init__(self) -> None:
        super().__init__()
        self.who = "api"
        self.requests: list[tuple[str, str, str, float]] = []
        self.items: list[tuple[str, str, float, list[tuple[str, int, list[tuple[str, int]]]]]] = []
        """Each write request in order: who, request, units, its items (see ``_item``)."""
        self.reads: Counter[str] = Counter()

    def charge(self, op: str, params: dict[str, Any]) -> None:
        before = self.wru
        super().charge(op, params)
        entries = list(params["TransactItems"]) if op == "TransactWriteItems" else [{op: params}]
        kinds = "+".join(_kind(entry) for entry in entries)
        self.requests.append((self.who, op, kinds, self.wru - before))
        if self.enabled and op in _WRITES:
            self.items.append((self.who, op, self.wru - before, [self._item(e) for e in entries]))

    def _item(self, entry: dict[str, Any]) -> tuple[str, int, list[tuple[str, int]]]:
        """An item of a write as now stored: its kind, size in bytes and largest attributes."""
        ((_op, body),) = entry.items()
        key = _key_of(body.get("Item") or body["Key"])
        attrs = self._attrs.get(key, {})
        largest = sorted(attrs.items(), key=lambda kv: -kv[1])[:4]
        return _kind(entry), sum(attrs.values()), largest

    def _after(self, model: Any, parsed: dict[str, Any], **kwargs: Any) -> None:
        before = self.rru
        super()._after(model, parsed, **kwargs)
        if self.enabled and self.rru > before:
            self.reads[f"{self.who} {model.name}"] += int(self.rru - before)


_WRITES = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem")
"""The write requests ``--writes`` lists (the order workload makes no BatchWriteItem)."""


def _kind(entry: dict[str, Any]) -> str:
    ((op, body),) = entry.items()
    attrs = body.get("Item") or body.get("Key") or {}
    sk = str(attrs.get("sk", {}).get("S", "?"))
    prefix = sk.split("#", 1)[0]
    return f"{op.removesuffix('Item')}:{prefix}"


def run(
    definition: dict[str, Any],
    value: Any,
    handlers: dict[str, Any],
    runner_seconds: float | None = None,
    repair_before_commit: bool = False,
) -> dict[str, Any]:
    """Run one execution through the API, stepper and runner steppers; the counts and price."""
    machine = parse(definition)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-bench")
        meter = WriteLog()
        meter.attach(client)
        log = DynamoDBLog("stepflow-bench", client=client)  # compression as deployed
        bus = SqsBus(1_700_000_000.0)
        tasks = SqsBus(bus.now)
        invoker = task_invoker(handlers)

        def clock() -> float:
            return max(bus.now, tasks.now)

        def stepper(**kwargs: Any) -> Stepper:
            return Stepper(
                log=log,
                bus=bus,
                definitions=lambda _arn: machine,
                clock=clock,
                invoker=invoker,
                inline_tasks=False,
                tasks_bus=tasks,
                **kwargs,
            )

        # as wiring.api_stepper builds it (repair_before_commit: STEPFLOW_REPAIR_DELAY_SECONDS=60)
        repair = REPAIR_DELAY_SECONDS if repair_before_commit else DEFAULT_REPAIR_DELAY
        api = stepper(repair_delay=repair, failed_send_repair=REPAIR_DELAY_SECONDS)
        transitions = stepper()
        runner = stepper(task_concurrency=RUNNER_BATCH, task_runner=True)
        record = api.start_execution(
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:order",
            name="bench",
            input=value,
            seed=1,
        )
        arn = record.execution_arn
        # the deployed runner passes its invocation's seconds left (from the Lambda context)
        seconds_left = None if runner_seconds is None else lambda: float(runner_seconds)
        invocations: Counter[str] = Counter()
        receives = 0
        busy = 0.0
        while True:
            due = [q for q in (tasks, bus) if q.next_due() is not None]
            if not due:
                break
            tasks.now = bus.now = clock()
            queue = min(due, key=lambda q: (q.next_due() or 0.0, q is bus))
            if queue is tasks:
                meter.who, handle, limit = "runner", runner, RUNNER_BATCH
            else:
                meter.who, handle, limit = "stepper", transitions, BATCH_SIZE
            batch: list[Message] = queue.receive_batch(limit)
            tasks.now = bus.now = clock()
            started = time.perf_counter()
            left = seconds_left if handle is runner else None
            failures = handle.handle_batch(batch, None, left)
            busy += time.perf_counter() - started
            assert not failures, failures
            for message in batch:
                queue.ack(message)
            invocations[meter.who] += 1
            receives += 1
        meter.enabled = False
        final = log.get(arn)
        assert final is not None and final.status == "SUCCEEDED", final
        history = log.history(arn, limit=10_000).events
    meter.fold()
    entered = sum(1 for e in history if str(e["type"]).endswith("StateEntered"))
    sqs_requests = bus.requests + tasks.requests + 2 * receives
    lambda_requests = sum(invocations.values())
    dollars = {
        "dynamodb_writes": meter.wru * PRICES["dynamodb_wru"],
        "dynamodb_reads": meter.rru * PRICES["dynamodb_rru"],
        "sqs": sqs_requests * PRICES["sqs_request"],
        "lambda_requests": lambda_requests * PRICES["lambda_request"],
        "lambda_duration": busy * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second"],
    }
    total = sum(dollars.values())
    kinds: Counter[str] = Counter()
    for (_pk, sk), units in meter.wru_per_key.items():
        kinds[sk.split("#", 1)[0]] += units
    for index, units in meter.index_wru.items():
        kinds[f"index {index}"] += units
    per_request: defaultdict[str, float] = defaultdict(float)
    count_request: Counter[str] = Counter()
    for who, op, items, wru in meter.requests:
        per_request[f"{who} {op} {items}"] += wru
        count_request[f"{who} {op} {items}"] += 1
    heaviest_first = sorted(per_request.items(), key=lambda kv: kv[1], reverse=True)
    return {
        "transitions": entered,
        "history_events": len(history),
        "dynamodb_calls": dict(meter.calls),
        "dynamodb_wru": meter.wru,
        "dynamodb_rru": meter.rru,
        "wru_by_kind": dict(kinds.most_common()),
        "wru_by_request": {k: {"requests": count_request[k], "wru": v} for k, v in heaviest_first},
        "rru_by_request": dict(meter.reads.most_common()),
        "writes": [
            {"who": who, "request": op, "wru": units, "items": items}
            for who, op, units, items in meter.items
        ],
        "sqs_requests": sqs_requests,
        "lambda_invocations": dict(invocations),
        "lambda_seconds_measured": round(busy, 4),
        "dollars": {k: round(v, 8) for k, v in dollars.items()},
        "dollars_per_million_transitions": round(total / entered * 1e6, 4),
        "dollars_per_million_counted": round(
            (total - dollars["lambda_duration"]) / entered * 1e6, 4
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--runner-seconds",
        type=float,
        default=None,
        help="the runner's invocation seconds left, as its Lambda context tells it "
        "(default: none, a context without a clock; the deployed runner and, since round 6, "
        "stepflow local's have 900 s: the counts are the same)",
    )
    parser.add_argument(
        "--writes", action="store_true", help="list every write: items, sizes, largest attributes"
    )
    parser.add_argument(
        "--repair-before-commit",
        action="store_true",
        help="the API sends a delayed repair message before each commit "
        "(STEPFLOW_REPAIR_DELAY_SECONDS=60; the default before round 11)",
    )
    args = parser.parse_args(argv)
    for name, default in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, default)
    r = run(ORDER, ORDER_INPUT, order_handlers(), args.runner_seconds, args.repair_before_commit)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    n = r["transitions"]
    print(f"order workload, deployed path: {n} transitions, {r['history_events']} events")
    lambdas = r["lambda_invocations"]
    print(
        f"per transition: {r['dynamodb_wru'] / n:.2f} WRU, {r['dynamodb_rru'] / n:.2f} RRU, "
        f"{r['sqs_requests'] / n:.2f} SQS requests, "
        f"{lambdas.get('stepper', 0) / n:.2f} stepper + {lambdas.get('runner', 0) / n:.2f} "
        "runner invocations"
    )
    print(f"DynamoDB: {r['dynamodb_calls']}")
    print(f"  {r['dynamodb_wru']:.0f} WRU by item kind: {r['wru_by_kind']}")
    print("  WRU by request (who, request, items: requests, units):")
    for key, row in r["wru_by_request"].items():
        print(f"    {key:<60} {row['requests']:>3} {row['wru']:>5.0f}")
    print(f"  {r['dynamodb_rru']:.0f} RRU by request: {r['rru_by_request']}")
    print(f"SQS: {r['sqs_requests']} requests; Lambda: {lambdas}, {r['lambda_seconds_measured']} s")
    per_million = r["dollars_per_million_transitions"]
    print(f"cost: {r['dollars']}")
    print(
        f"  = ${per_million:.2f} per million transitions "
        f"(Step Functions Standard: ${STEP_FUNCTIONS_PER_MILLION:.2f})"
    )
    print(
        f"  without the measured Lambda duration (deterministic): "
        f"${r['dollars_per_million_counted']:.2f} per million transitions"
    )
    if args.writes:
        print("every write, in order (who request units: item kind bytes [largest attributes]):")
        for write in r["writes"]:
            print(f"  {write['who']:<7} {write['request']:<18} {write['wru']:>3.0f}")
            for kind, size, largest in write["items"]:
                top = ", ".join(f"{name} {n}" for name, n in largest)
                print(f"      {kind:<12} {size:>5} B  [{top}]")
    options = " --writes" if args.writes else ""
    if args.runner_seconds is not None:
        options += f" --runner-seconds {args.runner_seconds:g}"
    print(f"reproduce: .venv/bin/python bench/order_cost.py{options}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
