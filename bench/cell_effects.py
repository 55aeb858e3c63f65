"""The overhead of a recorded effect: coordination-log writes, reads and latency per effect.

A cell requests N effects (N = 0, 1, 10, 100 by default) whose handler does
nothing, so what is measured is the recording: each effect reads its journal
record (a strongly consistent ``GetItem`` on DynamoDB) and, finding none,
performs the effect and writes the record (one conditional ``PutItem``, a
lease record of the coordination log; see stepflow/cells/journal.py). The
cell is run as the stepper runs an inline task: ``CellRuntime(body)`` with a
task message body, a fresh attempt each run.

Three arms per N, alternating run by run:

* ``cell``: the cell, effects performed and recorded;
* ``replay``: the same attempt run again (a crash and re-delivery): every
  effect is replayed from its record, no handler is called;
* ``lambda``: the same N no-op calls made by a Lambda-style Python task
  (``task_invoker`` with a handler, what ``--handlers`` runs), nothing recorded;
* ``raw`` (DynamoDB only): N pairs of a strongly consistent ``GetItem`` and a
  conditional ``PutItem`` made directly with boto3 on the same client: the
  floor any journal of one record per effect pays; cell - raw is what
  StepFlow's journal adds on top of the two calls.

Logs: the in-memory log, and the DynamoDB log (``DynamoDBLog``) on moto in
process (``mock_aws``) and on a moto server over HTTP (what ``stepflow local``
uses). Writes and reads are counted at the journal (``put_lease``/``lease``
calls) and, on DynamoDB, as requests and request units from the items' sizes
(bench/cost.py's :class:`Meter`: 1 KB per WRU, 4 KB per strongly consistent
RRU). The added latency per effect is (cell - lambda) / N, of the medians and
of the p95s; on AWS each GetItem/PutItem takes a few milliseconds more than on
moto, so the counts are the figures that carry over.

Run: ``.venv/bin/python bench/cell_effects.py [--runs 50] [--only memory|inproc|server]
[--json]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.cells import (  # noqa: E402
    Cell,
    CellContext,
    CellRegistry,
    CellRuntime,
    EffectCall,
    EffectHandlers,
    IdempotencyKey,
    LogJournal,
    handles,
)
from stepflow.cells.effects import Effect  # noqa: E402
from stepflow.local import free_port  # noqa: E402
from stepflow.runtime import InMemoryLog  # noqa: E402
from stepflow.runtime.leases import LeaseLog, TaskLease  # noqa: E402
from stepflow.testing.handlers import task_invoker  # noqa: E402

from bench.cost import Meter  # noqa: E402

REGION = "us-east-1"
TABLE = "stepflow-bench-cells"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:bench:cells"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:noop"
WARMUP = 5
ARMS = ("cell", "replay", "lambda", "raw")


class Done(BaseModel):
    """A no-op effect's result."""

    i: int


class Nop(Effect[Done]):
    """An effect whose handler does nothing."""

    kind: Literal["nop"] = "nop"
    i: int


class Count(BaseModel):
    """How many effects to request."""

    n: int


class Nothing(BaseModel):
    """No business error."""


class NopCell(Cell[Count, Count, Nothing, Nop]):
    """Requests ``n`` no-op effects."""

    name = "nops"

    def run(self, ctx: CellContext[Nop], data: Count) -> Count:
        for i in range(data.n):
            ctx.effect(Nop(i=i))
        return data


@handles(Nop)
def nop(effect: Nop, call: EffectCall) -> Done:
    """The no-op handler (``@handles``: bench/cell_effects_local.py loads this module as cells)."""
    return Done(i=effect.i)


@dataclass
class CountingLeases:
    """A lease log that counts the journal's reads (``lease``) and writes (``put_lease``)."""

    log: LeaseLog
    reads: int = 0
    writes: int = 0

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        self.reads += 1
        return self.log.lease(execution_arn, task_id)

    def put_lease(self, lease: TaskLease) -> None:
        self.writes += 1
        self.log.put_lease(lease)


@dataclass
class Arm:
    """One arm's samples (ms per task) and what it cost in total."""

    ms: list[float] = field(default_factory=list)
    writes: int = 0
    reads: int = 0
    wru: float = 0.0
    rru: float = 0.0
    requests: int = 0


@dataclass
class Case:
    """One log and one N: the three arms."""

    log: str
    n: int
    arms: dict[str, Arm] = field(default_factory=lambda: {k: Arm() for k in ARMS})


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_case(
    name: str, leases: CountingLeases, meter: Meter | None, client: Any, n: int, runs: int
) -> Case:
    """Measure the arms for ``n`` effects, ``runs`` times each, alternating."""
    cells = CellRegistry()
    cells.register(NopCell)
    handlers = EffectHandlers()
    handlers.register(Nop, nop)
    runtime = CellRuntime(cells, handlers, LogJournal(leases))

    def noop_task(payload: Any) -> Any:
        for i in range(payload["n"]):
            nop(Nop(i=i), EffectCall(_no_key()))
        return payload

    lam = task_invoker({"noop": noop_task})
    case = Case(name, n)

    def body(resource: str, attempt: str) -> dict[str, Any]:
        return {
            "resource": resource,
            "input": {"n": n},
            "execution_arn": EXECUTION,
            "state_name": "Nops",
            "task_id": attempt,
        }

    def raw(i: int) -> Any:
        for k in range(n):
            key = {"pk": {"S": f"raw#{name}#{n}"}, "sk": {"S": f"{i}#{k}"}}
            client.get_item(TableName=TABLE, Key=key, ConsistentRead=True)
            client.put_item(
                TableName=TABLE,
                Item={**key, "r": {"S": '{"effect":"Nop","ok":true,"result":{"i":0}}'}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        return lam(body(FUNCTION, "raw"))  # an ok outcome; its time is in the lambda arm

    cell_resource = "arn:aws:states:::stepflow:cell:nops"
    calls: dict[str, Callable[[int], Any]] = {
        "cell": lambda i: runtime(body(cell_resource, f"{name}-{n}-{i}")),
        "replay": lambda i: runtime(body(cell_resource, f"{name}-{n}-{i}")),
        "lambda": lambda i: lam(body(FUNCTION, f"{name}-{n}-{i}-lambda")),
        "raw": raw,
    }
    arms = [a for a in ARMS if client is not None or a != "raw"]
    clock = time.perf_counter_ns
    for i in range(-WARMUP, runs):
        order = arms if i % 2 else arms[::-1]
        order.sort(key=lambda a: a == "replay")  # a replay after the run it replays
        for arm_name in order:
            arm = case.arms[arm_name]
            before = (leases.reads, leases.writes, *_meter(meter))
            start = clock()
            outcome = calls[arm_name](i)
            took = (clock() - start) / 1e6
            if not outcome.ok:
                raise RuntimeError(f"{arm_name} n={n}: {outcome.error}: {outcome.cause}")
            if i < 0:
                continue
            after = (leases.reads, leases.writes, *_meter(meter))
            arm.ms.append(took)
            arm.reads += after[0] - before[0]
            arm.writes += after[1] - before[1]
            arm.wru += after[2] - before[2]
            arm.rru += after[3] - before[3]
            arm.requests += int(after[4] - before[4])
    return case


def _meter(meter: Meter | None) -> tuple[float, float, float]:
    if meter is None:
        return 0.0, 0.0, 0.0
    return meter.wru, meter.rru, float(sum(meter.calls.values()))


def _no_key() -> IdempotencyKey:
    return IdempotencyKey(EXECUTION, "Nops", "lambda", 0)


@contextmanager
def memory() -> Iterator[tuple[LeaseLog, Meter | None, Any]]:
    """The in-memory log (no request units)."""
    yield InMemoryLog(), None, None


@contextmanager
def dynamodb_inproc() -> Iterator[tuple[LeaseLog, Meter | None, Any]]:
    """The DynamoDB log on moto in process (``mock_aws``), metered."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, TABLE)
        meter = Meter()
        meter.attach(client)
        yield DynamoDBLog(TABLE, client=client), meter, client


@contextmanager
def dynamodb_server() -> Iterator[tuple[LeaseLog, Meter | None, Any]]:
    """The DynamoDB log on a moto server over HTTP (``stepflow local``'s transport), metered."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        client = boto3.client(
            "dynamodb", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}"
        )
        create_table(client, TABLE)
        meter = Meter()
        meter.attach(client)
        yield DynamoDBLog(TABLE, client=client), meter, client
    finally:
        server.stop()


LOGS: dict[str, Callable[[], Any]] = {
    "memory": memory,
    "inproc": dynamodb_inproc,
    "server": dynamodb_server,
}
LOG_NAMES = {
    "memory": "memory log",
    "inproc": "DynamoDB, moto in process",
    "server": "DynamoDB, moto server",
}


def summary(case: Case, runs: int) -> dict[str, Any]:
    """Per-task and per-effect figures of one case."""
    out: dict[str, Any] = {"log": case.log, "effects": case.n, "runs": runs}
    per = max(case.n, 1) * runs
    for name, arm in case.arms.items():
        if not arm.ms:
            continue
        out[name] = {
            "median_ms": round(statistics.median(arm.ms), 3),
            "p95_ms": round(_pct(arm.ms, 0.95), 3),
            "writes_per_effect": round(arm.writes / per, 3),
            "reads_per_effect": round(arm.reads / per, 3),
            "wru_per_effect": round(arm.wru / per, 3),
            "rru_per_effect": round(arm.rru / per, 3),
            "dynamodb_requests_per_task": round(arm.requests / runs, 2),
        }
    cell, lam = out["cell"], out["lambda"]
    if case.n:
        out["added_us_per_effect"] = {
            "median": round((cell["median_ms"] - lam["median_ms"]) * 1000 / case.n, 1),
            "p95": round((cell["p95_ms"] - lam["p95_ms"]) * 1000 / case.n, 1),
            "replay_median": round(out["replay"]["median_ms"] * 1000 / case.n, 1),
        }
        if "raw" in out:
            raw = out["raw"]["median_ms"] - lam["median_ms"]
            out["added_us_per_effect"]["raw_median"] = round(raw * 1000 / case.n, 1)
    else:
        out["added_us_per_task"] = round((cell["median_ms"] - lam["median_ms"]) * 1000, 1)
    return out


def render(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the summaries."""
    lines = [
        "| log | N | writes / reads per effect | WRU / RRU per effect | cell median / p95 ms "
        "| lambda median / p95 ms | added per effect median / p95 µs | raw GetItem+PutItem "
        "per effect µs | replay median ms (reads, writes per effect) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, lam, rep = r["cell"], r["lambda"], r["replay"]
        added = r.get("added_us_per_effect")
        per = (
            f"{added['median']:+.0f} / {added['p95']:+.0f}"
            if added
            else f"{r['added_us_per_task']:+.0f} per task"
        )
        units = f"{c['wru_per_effect']:g} / {c['rru_per_effect']:g}" if "raw" in r else "-"
        raw = f"{added['raw_median']:.0f}" if added and "raw_median" in added else "-"
        lines.append(
            f"| {LOG_NAMES[r['log']]} | {r['effects']} | {c['writes_per_effect']:g} / "
            f"{c['reads_per_effect']:g} | {units} | {c['median_ms']:.2f} / {c['p95_ms']:.2f} | "
            f"{lam['median_ms']:.2f} / {lam['p95_ms']:.2f} | {per} | {raw} | "
            f"{rep['median_ms']:.2f} ({rep['reads_per_effect']:g}, {rep['writes_per_effect']:g}) |"
        )
    return "\n".join(lines)


def machine() -> str:
    """One line describing the machine."""
    from importlib.metadata import version

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"boto3 {version('boto3')}, moto {version('moto')}"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every N on every log and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per arm and N")
    parser.add_argument("--effects", default="0,1,10,100", help="the Ns, comma-separated")
    parser.add_argument("--only", choices=sorted(LOGS), help="one log only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    ns = [int(n) for n in args.effects.split(",")]
    rows: list[dict[str, Any]] = []
    for name in [args.only] if args.only else list(LOGS):
        with LOGS[name]() as (log, meter, client):
            leases = CountingLeases(log)
            for n in ns:
                case = run_case(name, leases, meter, client, n, args.runs)
                rows.append(summary(case, args.runs))
    command = f".venv/bin/python bench/cell_effects.py --runs {args.runs} --effects {args.effects}"
    if args.only:
        command += f" --only {args.only}"
    if args.json:
        print(json.dumps({"machine": machine(), "command": command, "results": rows}, indent=2))
        return 0
    print(f"machine: {machine()}")
    print(f"{args.runs} timed runs per arm and N (after {WARMUP} untimed), arms alternating\n")
    print(render(rows))
    print(f"\nreproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
