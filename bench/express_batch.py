"""EXPRESS item batches: items per second through ``stepflow.runtime.express.run_batch``.

Two item processors, each run over ``--items`` items in batches of ``--batch``:

* ``pass``: one Pass state (the engine's floor: state creation, one decision, result);
* ``lambda``: Pass -> Task ``arn:aws:states:::lambda:invoke`` -> Pass, the task run by the
  runtime's real task invoker (``IntegrationInvoker`` over the default registry) whose
  Lambda client is an in-process stand-in: ``Invoke`` runs a handler that returns its
  payload with a field added, as bytes, the way botocore hands a Lambda response back.
  What is measured is StepFlow's own cost per item, not a network round trip.

Each batch gets a ``ClockBudget`` of ``--budget`` seconds (a Lambda's time): the figure
includes the checks that make a batch stop in time. Printed: items per second and
microseconds per item for each processor, the slowest batch, and peak RSS.

Run: ``.venv/bin/python bench/express_batch.py [--items 10000] [--batch 1000] [--budget 600]``
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import sys
import time
from typing import Any

from stepflow.asl import StateMachine, parse
from stepflow.data.budget import ClockBudget
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.runtime.clients import FixedClients
from stepflow.runtime.express import run_batch

CONTEXT = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:bench:run",
        "Name": "run",
        "Input": {},
        "StartTime": "2026-01-01T00:00:00.000Z",
        "RoleArn": "arn:aws:iam::123456789012:role/bench",
    },
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:bench"},
}


class LambdaStandIn:
    """A Lambda client whose ``invoke`` runs the function in process."""

    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, **request: Any) -> dict[str, Any]:
        """Run the handler on the request's payload; answer as botocore does."""
        self.calls += 1
        event = json.loads(request["Payload"])
        body = json.dumps({**event, "seen": True}).encode()
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(body)}


def processor(states: dict[str, Any], start: str) -> StateMachine:
    """A parent whose one state is an EXPRESS distributed Map over ``states``."""
    item_processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": start,
        "States": states,
    }
    return parse(
        {
            "StartAt": "M",
            "States": {"M": {"Type": "Map", "ItemProcessor": item_processor, "End": True}},
        }
    )


PASS_ONLY = processor({"P": {"Type": "Pass", "End": True}}, "P")
THREE_STATES = processor(
    {
        "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id", "n.$": "$.n"}, "Next": "Call"},
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "work", "Payload.$": "$"},
            "ResultSelector": {"out.$": "$.Payload"},
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "OutputPath": "$.out", "End": True},
    },
    "Shape",
)


def measure(
    definition: StateMachine, items: int, batch: int, budget: float
) -> tuple[float, float, int]:
    """(seconds in all, slowest batch, items succeeded)."""
    client = LambdaStandIn()
    invoker = IntegrationInvoker(default_registry(), FixedClients(**{"lambda": client}))
    values = [(i, {"id": f"item-{i}", "n": i}) for i in range(items)]
    slowest, succeeded = 0.0, 0
    started = time.perf_counter()
    for first in range(0, items, batch):
        t0 = time.perf_counter()
        results = run_batch(
            definition,
            "/M",
            values[first : first + batch],
            context=CONTEXT,
            variables={},
            invoker=invoker,
            clock=time.time,
            batch_budget=ClockBudget(
                time.monotonic, expression_seconds=budget, decision_seconds=budget
            ),
        )
        slowest = max(slowest, time.perf_counter() - t0)
        succeeded += sum(1 for r in results if r.status == "SUCCEEDED")
    return time.perf_counter() - started, slowest, succeeded


def main() -> None:
    """Measure both processors and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--budget", type=float, default=600.0)
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}")
    print(f"date: {time.strftime('%Y-%m-%d')}  python {platform.python_version()}")
    for label, definition in (("1 Pass state", PASS_ONLY), ("Pass-Lambda-Pass", THREE_STATES)):
        seconds, slowest, succeeded = measure(definition, args.items, args.batch, args.budget)
        print(
            f"{label:18} {args.items} items in batches of {args.batch}: {seconds:.2f} s, "
            f"{args.items / seconds:,.0f} items/s, {seconds / args.items * 1e6:.0f} us/item, "
            f"slowest batch {slowest:.2f} s, succeeded {succeeded}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
