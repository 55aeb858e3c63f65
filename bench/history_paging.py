"""GetExecutionHistory paging over a long history: forward, reverse, and reverse as it was.

Writes ``--events`` events (default 100,000, in commits of ``--per-commit``) straight
to the log, then pages the whole history through the service's GetExecutionHistory
(``maxResults`` ``--page``), oldest first and newest first, alternated ``--repeat``
times. "before" is the reverse paging this replaced (each page re-read the history
from event 1, forwards, up to its position), timed on the first, middle and last
pages only (all of them took minutes). Per direction it prints the total, the
first/middle/last page's time (median of the repeats, with the spread) and the items
each page read on DynamoDB (``ScannedCount``).

    nice .venv/bin/python bench/history_paging.py [--backend moto|local|memory|dynamodb-local]

``moto``: DynamoDBLog on moto in process; ``local``: ``stepflow local`` (boto3 to its API,
the log on its moto server; "before" then reads that log in process).

``dynamodb-local`` (Amazon's DynamoDB Local, ``make dynamodb-local``) runs this script
again inside a loopback-only network namespace, as tests/dynamodb_local does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.dynamodb_local.server starts DynamoDB Local

from stepflow.api import Scope, StepFunctionsService  # noqa: E402
from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.runtime import CoordinationLog, ExecutionRecord, InMemoryBus, InMemoryLog  # noqa: E402
from stepflow.runtime.registry import InMemoryRegistry  # noqa: E402

SCOPE = Scope("us-east-1", "000000000000")  # the local stack's account
MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:Long"
EXECUTION = "arn:aws:states:us-east-1:000000000000:execution:Long:e1"
TABLE = "stepflow-history-bench"


class Counting:
    """A DynamoDB client that adds up the items its Queries read (``ScannedCount``)."""

    def __init__(self, client: Any) -> None:
        self.client, self.items = client, 0

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self.client, operation)
        if operation != "query":
            return call

        def query(**kwargs: Any) -> Any:
            response = call(**kwargs)
            self.items += int(response.get("ScannedCount", 0))
            return response

        return query


def batches(events: int, per_commit: int) -> Iterator[list[dict[str, Any]]]:
    """``events`` events of a Pass-heavy run, ``per_commit`` to a commit."""
    for first in range(1, events + 1, per_commit):
        yield [
            {
                "id": n,
                "previousEventId": n - 1,
                "timestamp": 1_700_000_000.0 + n / 1000,
                "type": "PassStateExited",
                "stateExitedEventDetails": {"name": "Step", "output": f'{{"n":{n}}}'},
            }
            for n in range(first, min(first + per_commit, events + 1))
        ]


def record(seq: int) -> ExecutionRecord:
    return ExecutionRecord(EXECUTION, MACHINE, "e1", {}, "RUNNING", seq, {"format": 1})


def write(log: CoordinationLog, events: int, per_commit: int) -> None:
    """The history, one commit per batch (the in-memory log)."""
    for seq, batch in enumerate(batches(events, per_commit), start=1):
        if seq == 1:
            log.create(record(1), batch)
        else:
            log.commit(record(seq), seq - 1, batch)


def write_items(log: DynamoDBLog, client: Any, events: int, per_commit: int) -> None:
    """The history as the log's commits would store it, the event items batch-written.

    A commit per batch through moto takes ~60 ms; the same items, sealed by the
    log's own code and written 25 to a BatchWriteItem, take a fraction of that.
    """
    items: list[dict[str, Any]] = []
    for seq, batch in enumerate(batches(events, per_commit), start=1):
        if seq == 1:
            log.create(record(1), batch)
            continue
        drafts = log._history.event_drafts(EXECUTION, seq, batch)
        items.extend(log._items.seal(drafts, EXECUTION))
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {
            log.table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        }
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


Call = Callable[[dict[str, Any]], dict[str, Any]]
"""GetExecutionHistory with these parameters: the service in process, or boto3."""


class ItemsRead:
    """Adds up ``ScannedCount`` of the Queries a boto3 client makes on the execution's items."""

    def __init__(self, client: Any) -> None:
        self.items = 0
        self._mine = threading.local()
        client.meta.events.register("provide-client-params.dynamodb.Query", self._before)
        client.meta.events.register("after-call.dynamodb.Query", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        pk = params.get("ExpressionAttributeValues", {}).get(":pk")
        self._mine.yes = pk == {"S": f"EX#{EXECUTION}"}

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        if getattr(self._mine, "yes", False):
            self.items += int(parsed.get("ScannedCount", 0))


def service(log: CoordinationLog) -> Call:
    """GetExecutionHistory of a service on ``log``, in process."""
    bus = InMemoryBus(1_700_000_000.0)
    api = StepFunctionsService(
        log=log, bus=bus, registry=InMemoryRegistry(), invoker=_no_tasks, scope=SCOPE
    )
    return lambda params: api.call("GetExecutionHistory", params)


def _no_tasks(command: Any) -> Any:
    raise AssertionError("the benchmark runs no tasks")


def page_all(api: Call, page: int, reverse: bool) -> list[float]:
    """Seconds per page, paging the whole history."""
    times, token = [], None
    while True:
        params: dict[str, Any] = {"executionArn": EXECUTION, "maxResults": page}
        if reverse:
            params["reverseOrder"] = True
        if token:
            params["nextToken"] = token
        started = time.perf_counter()
        answer = api(params)
        times.append(time.perf_counter() - started)
        token = answer.get("nextToken")
        if token is None:
            return times


def legacy_reverse_page(log: CoordinationLog, end: int | None, limit: int) -> list[Any]:
    """The reverse page as it was read before: the history from event 1 up to ``end``."""
    events: list[dict[str, Any]] = []
    token = None
    while True:
        found = log.history(EXECUTION, next_token=token, limit=1000)
        events.extend(e for e in found.events if end is None or e["id"] < end)
        token = found.next_token
        if token is None or (end is not None and found.events and found.events[-1]["id"] >= end):
            break
    return events[::-1][:limit]


def spots(count: int) -> dict[str, int]:
    return {"first": 0, "middle": count // 2, "last": count - 1}


def items_per_page(api: Call, counter: Counting | ItemsRead, page: int, reverse: bool) -> list[int]:
    """Items each page reads on DynamoDB."""
    found, token = [], None
    while True:
        before = counter.items
        params: dict[str, Any] = {"executionArn": EXECUTION, "maxResults": page}
        if reverse:
            params["reverseOrder"] = True
        if token:
            params["nextToken"] = token
        answer = api(params)
        found.append(counter.items - before)
        token = answer.get("nextToken")
        if token is None:
            return found


def run(
    log: CoordinationLog,
    counter: Counting | ItemsRead | None,
    args: argparse.Namespace,
    *,
    client: Any = None,
    api: Call | None = None,
) -> None:
    """Write the history with ``client`` (DynamoDB) or the log, then page it with ``api``."""
    started = time.perf_counter()
    if isinstance(log, DynamoDBLog):
        write_items(log, client, args.events, args.per_commit)
    else:
        write(log, args.events, args.per_commit)
    print(
        f"wrote {args.events:,} events in commits of {args.per_commit} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    api = api or service(log)
    pages = -(-args.events // args.page)
    where = spots(pages)
    runs: dict[str, list[list[float]]] = {"forward": [], "reverse": [], "before": []}
    for _ in range(args.repeat):  # alternated, so a busy spell on the machine hits all three
        runs["forward"].append(page_all(api, args.page, reverse=False))
        runs["reverse"].append(page_all(api, args.page, reverse=True))
        before = []
        for index in where.values():  # reverse page ``index`` ends before event N - index * page
            end = None if index == 0 else args.events - index * args.page + 1
            began = time.perf_counter()
            legacy_reverse_page(log, end, args.page)
            before.append(time.perf_counter() - began)
        runs["before"].append(before)
    print(f"{pages} pages of {args.page}, {args.repeat} runs alternated; median (min-max)")
    for name in ("forward", "reverse"):
        totals = [sum(times) for times in runs[name]]
        cells = [f"total {_spread(totals, 's')}"] + [
            f"{label} {_spread([t[i] for t in runs[name]], 'ms', 1000)}"
            for label, i in where.items()
        ]
        print(f"  {name:8} " + ", ".join(cells))
    cells = [
        f"{label} {_spread([t[n] for t in runs['before']], 'ms', 1000)}"
        for n, label in enumerate(where)
    ]
    print("  before   " + ", ".join(cells))
    if counter is not None:
        forward = items_per_page(api, counter, args.page, reverse=False)
        backward = items_per_page(api, counter, args.page, reverse=True)
        for name, items in (("forward", forward), ("reverse", backward)):
            print(
                f"  items read per page, {name}: min {min(items)}, max {max(items)}, "
                f"total {sum(items):,}"
            )


def _spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    median = statistics.median(values)
    return f"{median:.1f} {unit} ({min(values):.1f}-{max(values):.1f})"


@contextmanager
def moto_log(endpoint: str | None) -> Iterator[tuple[DynamoDBLog, Counting]]:
    import boto3

    if endpoint is None:
        from moto import mock_aws

        context: Any = mock_aws()
    else:
        context = _nothing()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with context:
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        create_table(client, TABLE)
        counter = Counting(client)
        yield DynamoDBLog(TABLE, client=counter), counter


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=("moto", "local", "memory", "dynamodb-local"), default="moto"
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-commit", type=int, default=10)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.backend != "dynamodb-local" or _in_private_network():
        print(f"$ nice .venv/bin/python bench/history_paging.py {' '.join(argv or sys.argv[1:])}")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    if args.backend == "memory":
        run(InMemoryLog(), None, args)
    elif args.backend == "moto":
        with moto_log(None) as (log, counter):
            run(log, counter, args, client=counter.client)
    elif args.backend == "local":
        _on_local_stack(args)
    else:
        return _on_dynamodb_local(args, argv or sys.argv[1:])
    return 0


def _on_dynamodb_local(args: argparse.Namespace, argv: list[str]) -> int:
    from tests.dynamodb_local.server import dynamodb_local, only_loopback, unshare_command

    if not only_loopback():  # DynamoDB Local listens everywhere: run inside a private network
        prefix, why_not = unshare_command()
        if prefix is None:
            print(f"cannot run DynamoDB Local: {why_not}")
            return 1
        script = 'ip link set lo up && exec "$@"'
        command = [*prefix, "sh", "-c", script, "sh", sys.executable, __file__, *argv]
        return subprocess.run(command, check=False).returncode
    with dynamodb_local() as endpoint, moto_log(endpoint) as (log, counter):
        run(log, counter, args, client=counter.client)
    return 0


def _in_private_network() -> bool:
    from tests.dynamodb_local.server import only_loopback

    return only_loopback()


def _on_local_stack(args: argparse.Namespace) -> None:
    """Through ``stepflow local``: boto3 to its API, its log on its moto server."""
    from stepflow.local import LocalStack

    with LocalStack(port=0, repair_every=3600.0) as stack:
        assert stack.wiring is not None
        client = stack.wiring.client("dynamodb")
        sfn = stack.stepfunctions()
        run(
            stack.wiring.log,
            ItemsRead(client),
            args,
            client=client,
            api=lambda params: dict(sfn.get_execution_history(**params)),
        )


if __name__ == "__main__":
    raise SystemExit(main())
