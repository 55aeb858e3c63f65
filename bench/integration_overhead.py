"""Overhead of an integration call against a direct boto3 call, on moto.

Three calls, each ``--calls`` times (default 2,000) per arm:

* ``dynamodb putItem``: ``arn:aws:states:::dynamodb:putItem`` against
  ``put_item`` (a new key each call);
* ``sqs sendMessage``: ``arn:aws:states:::sqs:sendMessage`` against
  ``send_message`` (both arms move to a new queue every 50 calls, untimed:
  moto's ``send_message`` slows down with every message already queued);
* ``s3 getObject via aws-sdk``: ``arn:aws:states:::aws-sdk:s3:getObject``
  against ``get_object`` with the body read (the integration reads it too).

The integration arm is the runtime's one task invoker,
``IntegrationInvoker(default_registry(), RoleClients(assume_roles=False, ...))``,
called with an inline task message body, as the runner calls it. The direct arm
calls the very client ``RoleClients`` hands out for the task, so the difference
is what the integration layer adds: reading the request, resolving the
registry, building the call, shaping the response (no client creation: both
arms reuse the cached client). The two arms alternate call by call (which goes
first alternates too), after an untimed warm-up, so drift on a shared machine
hits both alike. Reported per arm: median and p90 of the per-call time; the
overhead is the difference of the medians (and p90s), and the median of the
paired differences (call i of one arm against call i of the other).

Two transports: moto in process (``mock_aws``: botocore's HTTP layer is
patched, no socket) and a moto server (``ThreadedMotoServer`` on 127.0.0.1,
real HTTP: the path ``stepflow local`` takes). An arm whose integration is not
registered in this checkout is skipped with a printed line.

Run: ``.venv/bin/python bench/integration_overhead.py [--calls 2000]
[--only inproc|server] [--json]``
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
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from moto import mock_aws
from stepflow.aws.role_clients import RoleClients
from stepflow.integrations import IntegrationInvoker, default_registry
from stepflow.local import free_port

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/bench-integration-overhead"
WARMUP = 50
REFRESH_EVERY = 50
"""Calls between the untimed target refreshes of a case that has ``refresh``."""


@dataclass(frozen=True, slots=True)
class Case:
    """One call measured both ways."""

    name: str
    resource: str
    service: str
    setup: Callable[[Any], dict[str, Any]]
    """Creates the target on ``client``; returns the state's effective input template."""
    direct: Callable[[Any, dict[str, Any]], Any]
    """The boto3 call with the same request (``client``, request)."""
    vary: Callable[[dict[str, Any], int], dict[str, Any]] = lambda request, _i: request
    """The request of call ``i`` (a new DynamoDB key per call)."""
    refresh: Callable[[Any, int], dict[str, Any]] | None = None
    """Untimed, every ``REFRESH_EVERY`` calls: a fresh target (call ``k``); see ``_fresh_queue``."""


def _table(client: Any) -> dict[str, Any]:
    client.create_table(
        TableName="bench",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {"TableName": "bench", "Item": {"pk": {"S": "k"}, "n": {"N": "1"}}}


def _item(request: dict[str, Any], i: int) -> dict[str, Any]:
    return {"TableName": request["TableName"], "Item": {"pk": {"S": f"k{i}"}, "n": {"N": str(i)}}}


def _queue(client: Any) -> dict[str, Any]:
    return _fresh_queue(client, 0)


def _fresh_queue(client: Any, k: int) -> dict[str, Any]:
    # moto's sendMessage slows down linearly with the messages already in the queue
    # (about +7 ms per 100 messages), so both arms move to a new queue every REFRESH_EVERY calls.
    url = client.create_queue(QueueName=f"bench-{k}")["QueueUrl"]
    return {"QueueUrl": url, "MessageBody": json.dumps({"order": 42, "items": ["a", "b"]})}


def _object(client: Any) -> dict[str, Any]:
    client.create_bucket(Bucket="bench")
    client.put_object(Bucket="bench", Key="doc.json", Body=json.dumps({"x": "y" * 512}).encode())
    return {"Bucket": "bench", "Key": "doc.json"}


CASES = (
    Case(
        "dynamodb putItem",
        "arn:aws:states:::dynamodb:putItem",
        "dynamodb",
        _table,
        lambda c, r: c.put_item(**r),
        _item,
    ),
    Case(
        "sqs sendMessage",
        "arn:aws:states:::sqs:sendMessage",
        "sqs",
        _queue,
        lambda c, r: c.send_message(**r),
        refresh=_fresh_queue,
    ),
    Case(
        "s3 getObject via aws-sdk",
        "arn:aws:states:::aws-sdk:s3:getObject",
        "s3",
        _object,
        lambda c, r: c.get_object(**r)["Body"].read(),
    ),
)


@dataclass(slots=True)
class Result:
    """Per-call microseconds of both arms of one case on one transport."""

    transport: str
    case: str
    direct_us: list[float] = field(default_factory=list)
    integration_us: list[float] = field(default_factory=list)
    skipped: str | None = None

    def summary(self) -> dict[str, Any]:
        """Median and p90 of each arm and the differences (microseconds)."""
        out: dict[str, Any] = {"transport": self.transport, "case": self.case}
        out["direct"] = _stats(self.direct_us)
        if self.skipped:
            out["skipped"] = self.skipped
            return out
        out["integration"] = _stats(self.integration_us)
        out["overhead_median_us"] = round(
            out["integration"]["median_us"] - out["direct"]["median_us"], 1
        )
        out["overhead_p90_us"] = round(out["integration"]["p90_us"] - out["direct"]["p90_us"], 1)
        paired = [b - a for a, b in zip(self.direct_us, self.integration_us, strict=True)]
        out["overhead_paired_median_us"] = round(statistics.median(paired), 1)
        return out


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median_us": round(statistics.median(ordered), 1), "p90_us": round(p90, 1)}


def body(case: Case, request: dict[str, Any], i: int) -> dict[str, Any]:
    """The inline task message body of call ``i``, as the runner hands it to the invoker."""
    return {
        "resource": case.resource,
        "input": request,
        "role_arn": ROLE,
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:bench:run",
        "state_name": case.name,
        "task_id": f"bench-{i}",
    }


def run_case(case: Case, clients: RoleClients, calls: int, transport: str) -> Result:
    """Measure ``case``: both arms alternating, after a warm-up."""
    result = Result(transport, case.name)
    client = clients.for_task(case.service, ROLE, REGION)
    current = [case.setup(client)]
    invoker = IntegrationInvoker(default_registry(), clients)
    registered = default_registry().find(case.resource) is not None
    if not registered:
        result.skipped = "integration not registered in this checkout"

    def integration(i: int) -> None:
        outcome = invoker(body(case, case.vary(current[0], i), i))
        if not outcome.ok:
            raise RuntimeError(f"{case.name}: {outcome.error}: {outcome.cause}")

    def direct(i: int) -> None:
        case.direct(client, case.vary(current[0], i))

    for i in range(WARMUP):
        direct(-i - 1)
        if registered:
            integration(-i - 1_000_000)
    clock = time.perf_counter_ns
    for i in range(calls):
        if case.refresh is not None and i % REFRESH_EVERY == 0:
            current[0] = case.refresh(client, i // REFRESH_EVERY + 1)
        arms: list[tuple[Callable[[int], None], list[float]]] = [(direct, result.direct_us)]
        if registered:
            arms.append((integration, result.integration_us))
            if i % 2:
                arms.reverse()
        for call, samples in arms:
            start = clock()
            call(i)
            samples.append((clock() - start) / 1000)
    return result


@contextmanager
def in_process() -> Iterator[RoleClients]:
    """RoleClients whose clients reach moto in process (mock_aws)."""
    with mock_aws():
        yield RoleClients(assume_roles=False, region=REGION)


@contextmanager
def moto_server() -> Iterator[RoleClients]:
    """RoleClients whose clients reach a moto server over HTTP on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield RoleClients(
            assume_roles=False, region=REGION, endpoint_url=f"http://127.0.0.1:{port}"
        )
    finally:
        server.stop()


TRANSPORTS: dict[str, Callable[[], Any]] = {"inproc": in_process, "server": moto_server}


def machine() -> str:
    """One line describing the machine."""
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"boto3 {_version('boto3')}, moto {_version('moto')}"
    )


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def render(results: list[Result]) -> str:
    """The results as a table (per-call microseconds)."""
    lines = [
        "| transport | call | direct median / p90 µs | integration median / p90 µs "
        "| overhead median / p90 µs | paired median µs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for result in results:
        s = result.summary()
        direct = f"{s['direct']['median_us']:.0f} / {s['direct']['p90_us']:.0f}"
        if result.skipped:
            lines.append(f"| {result.transport} | {result.case} | {direct} | skipped | - | - |")
            continue
        integ = f"{s['integration']['median_us']:.0f} / {s['integration']['p90_us']:.0f}"
        over = f"{s['overhead_median_us']:+.0f} / {s['overhead_p90_us']:+.0f}"
        paired = f"{s['overhead_paired_median_us']:+.0f}"
        lines.append(
            f"| {result.transport} | {result.case} | {direct} | {integ} | {over} | {paired} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure every case on the chosen transports and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per arm")
    parser.add_argument("--only", choices=sorted(TRANSPORTS), help="one transport only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    transports = [args.only] if args.only else ["inproc", "server"]
    results: list[Result] = []
    for transport in transports:
        with TRANSPORTS[transport]() as clients:
            for case in CASES:
                result = run_case(case, clients, args.calls, transport)
                if result.skipped:
                    print(
                        f"skip: {transport} {case.name} integration arm: {case.resource} is not "
                        "registered in this checkout (the lead re-runs after the merge)",
                        file=sys.stderr,
                    )
                results.append(result)
    if args.json:
        report = {"machine": machine(), "calls": args.calls}
        report["results"] = [r.summary() for r in results]
        print(json.dumps(report, indent=2))
    else:
        print(f"machine: {machine()}")
        print(f"calls per arm: {args.calls} (after {WARMUP} untimed), arms alternating\n")
        print(render(results))
        print(f"\nreproduce: .venv/bin/python bench/integration_overhead.py --calls {args.calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
