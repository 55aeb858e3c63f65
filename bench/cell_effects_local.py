"""Recorded effects through ``stepflow local``: an execution of a cell with N effects.

bench/cell_effects.py measures a cell task alone; this runs whole executions
through boto3 against the local stack (moto server, SQS pollers, the real
stepper and runner handlers), as a user would: a one-state machine whose Task
is the cell ``nops`` (bench/cell_effects.py, loaded as the stack's cells
module) against the same machine whose Task is a Lambda-style Python handler
making the same N no-op calls (``--handlers``). The two machines alternate,
one execution at a time. Per execution: the wall time from StartExecution to
the status read back (DescribeExecution polled every 10 ms), and the DynamoDB
write requests and write units the stack made (metered on its own client; the
polling reads are the test's, so reads are not reported here: see
bench/cell_effects.py for the journal's reads).

Run: ``.venv/bin/python bench/cell_effects_local.py [--runs 10] [--effects 0,10,100]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF lines in the table
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stepflow.local import LocalStack, demo  # noqa: E402

from bench.cell_effects import FUNCTION, machine  # noqa: E402
from bench.cost import Meter  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/StepFlowLocal"
WARMUP = 2
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")


def noop_task(payload: Any) -> Any:
    """The Lambda-style arm: N no-op calls, nothing recorded."""
    for _ in range(int(payload["n"])):
        pass
    return payload


def _machine(sfn: Any, name: str, resource: str) -> str:
    state = {"Type": "Task", "Resource": resource, "Parameters": {"n.$": "$.n"}, "End": True}
    definition = {"StartAt": "Nops", "States": {"Nops": state}}
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    return str(created["stateMachineArn"])


def _execute(sfn: Any, arn: str, n: int) -> float:
    started = time.perf_counter()
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"n": n}))
    while True:
        status = sfn.describe_execution(executionArn=execution["executionArn"])["status"]
        if status != "RUNNING":
            break
        time.sleep(0.01)
    if status != "SUCCEEDED":
        raise RuntimeError(f"{arn} n={n}: {status}")
    return (time.perf_counter() - started) * 1000


def _writes(meter: Meter) -> tuple[int, float]:
    return sum(meter.calls[f"dynamodb:{op}"] for op in WRITES), meter.wru


def main(argv: list[str] | None = None) -> int:
    """Run the executions and print one row per N."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed executions per arm and N")
    parser.add_argument("--effects", default="0,10,100", help="the Ns, comma-separated")
    args = parser.parse_args(argv)
    demo.quiet()
    cells = str(ROOT / "bench" / "cell_effects.py")
    rows = []
    with LocalStack(port=0, cells=cells, handlers={"noop": noop_task}) as stack:
        assert stack.wiring is not None
        meter = Meter()
        meter.attach(stack.wiring.client("dynamodb"))
        sfn = stack.stepfunctions()
        arns = {
            "cell": _machine(sfn, "bench-cell", "arn:aws:states:::stepflow:cell:nops"),
            "lambda": _machine(sfn, "bench-lambda", FUNCTION),
        }
        for n in [int(x) for x in args.effects.split(",")]:
            ms: dict[str, list[float]] = {"cell": [], "lambda": []}
            writes: dict[str, list[float]] = {"cell": [], "lambda": []}
            for i in range(-WARMUP, args.runs):
                for arm in ("cell", "lambda") if i % 2 else ("lambda", "cell"):
                    before = _writes(meter)
                    took = _execute(sfn, arns[arm], n)
                    after = _writes(meter)
                    if i >= 0:
                        ms[arm].append(took)
                        writes[arm].append(after[0] - before[0])
                        writes[f"{arm}_wru"] = [*writes.get(f"{arm}_wru", []), after[1] - before[1]]
            rows.append((n, ms, writes))
    print(f"machine: {machine()}")
    print(f"{args.runs} executions per arm and N (after {WARMUP}), through stepflow local\n")
    print(
        "| N | cell execution median / p90 ms | lambda execution median / p90 ms "
        "| added per effect (medians) ms | DynamoDB writes (WRU) per execution: cell / lambda "
        "| extra writes per effect |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n, ms, writes in rows:
        cell, lam = (statistics.median(ms[a]) for a in ("cell", "lambda"))
        p90 = {a: sorted(ms[a])[int(0.9 * (len(ms[a]) - 1))] for a in ms}
        w = {a: statistics.median(writes[a]) for a in ("cell", "lambda")}
        wru = {a: statistics.median(writes[f"{a}_wru"]) for a in ("cell", "lambda")}
        added = f"{(cell - lam) / n:.2f}" if n else f"{cell - lam:+.1f} per execution"
        extra = f"{(w['cell'] - w['lambda']) / n:.2f}" if n else f"{w['cell'] - w['lambda']:+.0f}"
        print(
            f"| {n} | {cell:.0f} / {p90['cell']:.0f} | {lam:.0f} / {p90['lambda']:.0f} | {added} "
            f"| {w['cell']:.0f} ({wru['cell']:.0f}) / {w['lambda']:.0f} ({wru['lambda']:.0f}) "
            f"| {extra} |"
        )
    print(
        "\nreproduce: .venv/bin/python bench/cell_effects_local.py "
        f"--runs {args.runs} --effects {args.effects}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
