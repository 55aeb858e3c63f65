"""A Map over N items at scale: time, write units per item, the hottest key, $, peak memory.

Runs one Map state over N items through the same Stepper the deployment runs,
on the in-memory log (``--log memory``, write units metered as the DynamoDB log
would write the same records) or on the DynamoDB log on moto (``--log moto``,
every request metered on its boto3 client), and prints for each N, side by side:

- wall time (and the exponent of its growth between two N: 1 = linear);
- DynamoDB write request units per item (1 KB per unit, x2 in a transaction, an
  update billed on the larger of the item before and after) and read units;
- the parent's HEAD share of all write units, the most writes on one key in
  total and within any 1 s window (at the bench's own pace: the in-memory log is
  far faster than DynamoDB, moto far slower);
- $ per million transitions at bench/cost.py's prices (DynamoDB, SQS, Lambda);
  transitions = 1 (the Map) + 2 per item (the processor's two states);
- peak memory: the most one stepper batch allocates above what was live before it
  (tracemalloc), which must stay flat as N grows; and the process's max RSS.

``--map`` picks the Map: ``inline`` (today's: remote children past 40 items),
``standard`` / ``express`` (``ProcessorConfig`` DISTRIBUTED with that
ExecutionType). A mode the code does not run yet ends with a clear message.
``--local`` runs a distributed Map through boto3 against ``stepflow local``
started in process, reading a CSV from S3 (ItemReader) and writing results to S3
(ResultWriter): see bench/map_local.py.

    .venv/bin/python bench/map_scale.py                       # short default run
    .venv/bin/python bench/map_scale.py --log memory --items 1000,10000,100000 --map express
    .venv/bin/python bench/map_scale.py --log moto --items 1000,10000 --map inline
    .venv/bin/python bench/map_scale.py --local --items 10000 --map express
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import itertools
import math
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stepflow.asl import parse  # noqa: E402
from stepflow.aws.dynamodb_log import COMPRESS_ABOVE as DYNAMODB_COMPRESS_ABOVE  # noqa: E402
from stepflow.limits import DEFAULT_LIMITS  # noqa: E402
from stepflow.local.moto_patches import item_snapshots  # noqa: E402
from stepflow.runtime import InMemoryLog, Message, Stepper  # noqa: E402
from stepflow.runtime.map_io import WriterSpec  # noqa: E402
from stepflow.runtime.object_store import MemoryObjectStore, Upload  # noqa: E402
from stepflow.runtime.ports import CoordinationLog, UnstorableDataError  # noqa: E402
from stepflow.runtime.result_writing import StoreResultSink  # noqa: E402
from stepflow.testing import WorkflowEnvironment  # noqa: E402
from stepflow.testing.delivery import handle_batch  # noqa: E402

from bench.cost import LAMBDA_MEMORY_GB, PRICES, CountingBus  # noqa: E402
from bench.map_meter import KeyMeter, MeteredLog  # noqa: E402

FN = "arn:aws:lambda:us-east-1:123456789012:function:"
COMPRESS_ABOVE = DYNAMODB_COMPRESS_ABOVE
"""As deployed: the DynamoDB log's default."""
MODES = ("inline", "standard", "express")
PROCESSOR_STATES = 2
S3_PRICES = {"PutObject": 0.005 / 1000, "GetObject": 0.0004 / 1000}
"""S3 Standard request prices (us-east-1): the payload store's offloaded documents."""
PAYLOAD_LIMIT = 32 * 1024 * 1024
"""The bench's payload limit (AWS: 256 KB): 100,000 items fit in the input and the results."""


class NotSupportedError(Exception):
    """The Map mode asked for does not run on this build (yet)."""


ITEMS_BUCKET, ITEMS_KEY, RESULTS_PREFIX = "map-scale-items", "items.csv", "out"


def definition(mode: str, source: str = "input") -> dict[str, Any]:
    """A Map over ``$.items``: each item a Lambda task and a Pass.

    ``source="s3"`` (a distributed Map): the items are read from a CSV object
    (ItemReader) and the results written to S3 (ResultWriter), so that neither the
    input nor the output holds N items (the environment's in-memory object store).
    """
    processor: dict[str, Any] = {
        "StartAt": "Work",
        "States": {
            "Work": {"Type": "Task", "Resource": FN + "work", "Next": "Shape"},
            "Shape": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": True},
        },
    }
    if mode != "inline":
        processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": mode.upper()}
    if source == "s3":
        reader = {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
            "Parameters": {"Bucket": ITEMS_BUCKET, "Key": ITEMS_KEY},
        }
        writer = {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": ITEMS_BUCKET, "Prefix": RESULTS_PREFIX},
        }
        each = {
            "Type": "Map",
            "ItemReader": reader,
            "ItemSelector": {"id.$": "$$.Map.Item.Value.id"},
            "ItemProcessor": processor,
            "ResultWriter": writer,
            "End": True,
        }
        return {"StartAt": "Each", "States": {"Each": each}}
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"id.$": "$$.Map.Item.Value.id"},
                "ItemProcessor": processor,
                "ResultPath": "$.results",
                "OutputPath": "$.results[0]",
                "End": True,
            }
        },
    }


def items(count: int, input_kb: float) -> list[dict[str, Any]]:
    """``count`` items; with ``input_kb``, padded with incompressible text to that total."""
    pad = max(0, int(input_kb * 1024 / count) - 20) if input_kb else 0
    rng = random.Random(7)
    return [
        {
            "id": i,
            **({"pad": base64.b64encode(rng.randbytes(pad * 3 // 4)).decode()} if pad else {}),
        }
        for i in range(count)
    ]


@dataclass
class Figures:
    """What one run measured."""

    items: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    status: str = ""
    wru: float = 0.0
    rru: float = 0.0
    parent_head_wru: float = 0.0
    top_key: str = ""
    top_key_wru: float = 0.0
    max_writes_one_key: int = 0
    max_writes_key: str = ""
    peak_rate: int = 0
    peak_rate_key: str = ""
    dollars: dict[str, float] = field(default_factory=dict)
    transitions: int = 0
    entered_events: int = 0
    batches: int = 0
    peak_batch_bytes: int = 0
    peak_working_bytes: int = 0
    """The most one batch allocated above what it left allocated (the in-memory log's and
    object store's new data, which DynamoDB and S3 hold when deployed, excluded)."""
    max_rss_kb: int = 0
    s3_requests: dict[str, int] = field(default_factory=dict)
    unmetered: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, float] = field(default_factory=dict)

    @property
    def per_million(self) -> float:
        return sum(self.dollars.values()) / max(1, self.transitions) * 1e6


@contextmanager
def _log(
    kind: str, meter: KeyMeter, snapshots: str, payloads: bool, s3_calls: Counter[str]
) -> Iterator[Any]:
    if kind == "memory":
        calls = s3_calls if payloads else None
        yield MeteredLog(InMemoryLog(), meter, compress_above=COMPRESS_ABOVE, s3_calls=calls)
        return
    import boto3
    from moto import mock_aws
    from stepflow.aws import DynamoDBLog, create_table
    from stepflow.aws.s3_payloads import S3PayloadStore

    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        if snapshots == "items":
            stack.enter_context(item_snapshots())
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "stepflow-bench")
        meter.attach(client)
        store = None
        if payloads:
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="stepflow-bench-payloads")
            s3.meta.events.register(
                "before-call.s3.*", lambda model, **_: s3_calls.update([model.name])
            )
            store = S3PayloadStore("stepflow-bench-payloads", client=s3)
        yield DynamoDBLog(
            "stepflow-bench", client=client, compress_above=COMPRESS_ABOVE, payloads=store
        )


class PacedBus(CountingBus):
    """The counting bus whose clock also runs with real time (``--clock real``).

    The stepper's clock is the bus's: on a virtual clock alone, time stands still while
    deliveries are handled, so what depends on time passing between two writes (the map
    run head's report coalescing, ``stepflow.runtime.map_coalesce``) behaves as it
    would deployed only if the clock runs. Jumps to the next timer still happen.
    """

    def __init__(self, now: float) -> None:
        self._offset = now - time.perf_counter()
        super().__init__(now)

    @property
    def now(self) -> float:
        """Virtual time, running at real pace."""
        return time.perf_counter() + self._offset

    @now.setter
    def now(self, value: float) -> None:
        self._offset = value - time.perf_counter()


def run(
    count: int,
    *,
    mode: str = "inline",
    log: str = "memory",
    input_kb: float = 0.0,
    trace: bool = True,
    snapshots: str = "items",
    payloads: bool = False,
    clock: str = "real",
    source: str = "input",
) -> Figures:
    """Run the Map over ``count`` items once and measure it."""
    figures = Figures(items=count, transitions=1 + PROCESSOR_STATES * count)
    meter = KeyMeter()
    entered = 0
    busy = 0.0

    def seen(event: dict[str, Any]) -> None:
        nonlocal entered
        entered += event["type"].endswith("StateEntered")

    def deliver(stepper: Stepper, batch: list[Message]) -> list[tuple[Message, Exception | None]]:
        nonlocal busy
        meter.fold()
        base = 0
        spent = sizing()
        if trace:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        failures = handle_batch(stepper, batch)
        busy += time.perf_counter() - started - (sizing() - spent)
        if trace:
            peak = tracemalloc.get_traced_memory()[1] - base
            figures.peak_batch_bytes = max(figures.peak_batch_bytes, peak)
            current, highest = tracemalloc.get_traced_memory()
            figures.peak_working_bytes = max(figures.peak_working_bytes, highest - current)
        figures.batches += 1
        meter.fold()
        return failures

    def sizing() -> float:
        return store.spent if isinstance(store, MeteredLog) else 0.0

    _supported(mode)
    machine = parse(definition(mode, source))
    value: dict[str, Any] = {} if source == "s3" else {"items": items(count, input_kb)}
    s3_calls: Counter[str] = Counter()
    with _log(log, meter, snapshots, payloads, s3_calls) as store:
        bus = (PacedBus if clock == "real" else CountingBus)(1_700_000_000.0)
        env = WorkflowEnvironment(
            log=cast(CoordinationLog, store),
            bus=bus,
            deliver=deliver,
            handlers={"work": lambda item: {"id": item["id"], "ok": True}},
            on_event=seen,
            limits=replace(DEFAULT_LIMITS, max_payload_bytes=PAYLOAD_LIMIT),
        )
        sink = CountingSink()
        if source == "s3":
            rows = "id\n" + "".join(f"{i}\n" for i in range(count))
            env.objects[(ITEMS_BUCKET, ITEMS_KEY)] = rows.encode()
            env.stepper.result_sink = sink
        if trace:
            tracemalloc.start()
        started, cpu = time.perf_counter(), time.process_time()
        try:
            arn = env.start(machine, value, name="map-scale", seed=1)
            env.run(arn)
        except UnstorableDataError as exc:
            figures.status = f"UNSTORABLE {str(exc).split(': ', 2)[-1]}"
            arn = ""
        finally:
            figures.seconds = time.perf_counter() - started - sizing()
            figures.cpu_seconds = (
                time.process_time()
                - cpu
                - (store.spent_cpu if isinstance(store, MeteredLog) else 0.0)
            )
            if trace:
                tracemalloc.stop()
        meter.enabled = False
        meter.fold()
        if arn:
            final = env.log.get(arn)
            assert final is not None
            figures.status = final.status
            if final.status != "SUCCEEDED":
                described = env.describe(arn)
                figures.status += f" {described.get('error', '')}: {described.get('cause', '')}"
            elif mode != "inline":
                meter.fold()
                _check_distributed(meter, arn, mode)
                if source == "s3":
                    written = sink.results
                    if written != count:
                        figures.status = f"WRONG: {written:,} results written for {count:,}"
    parent = (f"EX#{arn}", "HEAD")
    figures.wru, figures.rru = meter.wru, meter.rru
    figures.entered_events = entered
    figures.parent_head_wru = meter.wru_per_key[parent]
    if meter.wru_per_key:
        key, units = meter.wru_per_key.most_common(1)[0]
        figures.top_key, figures.top_key_wru = _name(key, arn), units
        key, writes = meter.per_key.most_common(1)[0]
        figures.max_writes_key, figures.max_writes_one_key = _name(key, arn), writes
    figures.by_kind = meter.by_kind(arn)
    figures.peak_rate = meter.peak_rate
    figures.peak_rate_key = _name(meter.peak_rate_key, arn) if meter.peak_rate_key else ""
    figures.max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sqs_requests = bus.requests + 2 * figures.batches
    figures.dollars = {
        "dynamodb_writes": meter.wru * PRICES["dynamodb_wru"],
        "dynamodb_reads": meter.rru * PRICES["dynamodb_rru"],
        "sqs": sqs_requests * PRICES["sqs_request"],
        "lambda_requests": figures.batches * PRICES["lambda_request"],
        "lambda_duration": busy * LAMBDA_MEMORY_GB * PRICES["lambda_gb_second"],
        "s3_payloads": sum(S3_PRICES.get(op, 0.0) * n for op, n in s3_calls.items()),
    }
    figures.s3_requests = dict(s3_calls)
    if isinstance(store, MeteredLog):
        figures.unmetered = dict(store.unmetered)
    return figures


def _supported(mode: str) -> None:
    """Refuse a distributed mode whose runtime is not on this build (it would run inline)."""
    needed = {"standard": ["stepflow.runtime.map_runs"]}
    needed["express"] = [*needed["standard"], "stepflow.runtime.express"]
    for module in needed.get(mode, []):
        if importlib.util.find_spec(module) is None:
            raise NotSupportedError(
                f"the {mode.upper()} distributed Map needs {module}, which this build lacks "
                "(a DISTRIBUTED Map still runs as an inline Map here)"
            )


def _check_distributed(meter: KeyMeter, arn: str, mode: str) -> None:
    """Refuse figures of a DISTRIBUTED Map that ran as an inline one (the engine's fallback).

    An inline Map runs its iterations in the parent (up to 40) or as child executions
    ``<parent>#c<n>``; a distributed one writes a map run outside the parent's partition.
    """
    parent = f"EX#{arn}"
    others = {pk for pk, _ in meter.wru_per_key if pk != parent}
    inline = any(re.fullmatch(re.escape(parent) + r"#c\d+", pk) for pk in others)
    if inline or not others:
        raise NotSupportedError(
            f"the {mode.upper()} distributed Map ran as an inline Map on this build "
            "(no map run was written): not supported yet"
        )


class _Uploaded:
    """An upload that counts its bytes and keeps none (S3 holds them when deployed)."""

    def __init__(self, sink: CountingSink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.bytes += len(data)

    def close(self) -> None:
        self.sink.files += 1

    def abort(self) -> None:
        pass


class _Discarding(MemoryObjectStore):
    def __init__(self, sink: CountingSink) -> None:
        super().__init__()
        self.sink = sink

    def upload(self, bucket: str, key: str) -> Upload:
        return _Uploaded(self.sink)


class CountingSink(StoreResultSink):
    """The ResultWriter's files written through the real writer, counted, then dropped.

    The in-memory object store would keep every result in this process (and copy each
    file when it closes); deployed, S3 keeps them and the process holds one upload part.
    """

    def __init__(self) -> None:
        super().__init__(_Discarding(self))
        self.results = self.bytes = self.files = 0

    def write(
        self, spec: WriterSpec, map_run_id: str, results: Iterable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Write through the real writer, counting the results."""

        def counted() -> Iterator[dict[str, Any]]:
            for entry in results:
                self.results += 1
                yield entry

        return super().write(spec, map_run_id, counted())


def _name(key: tuple[str, str], parent: str) -> str:
    pk, sk = key
    arn = pk.removeprefix("EX#")
    if arn == parent:
        return f"parent {sk}"
    suffix = arn[len(parent) :] if parent and arn.startswith(parent) else arn.rsplit(":", 1)[-1]
    return f"{suffix} {sk}"


def exponent(a: Figures, b: Figures, value: str) -> str:
    """How ``value`` grows from ``a`` to ``b``: log(ratio) / log(N ratio)."""
    x, y = getattr(a, value), getattr(b, value)
    if x <= 0 or y <= 0 or a.items == b.items:
        return "-"
    return f"N^{math.log(y / x) / math.log(b.items / a.items):.2f}"


def table(rows: list[Figures]) -> str:
    """The figures of each N side by side."""
    lines: list[tuple[str, list[str]]] = [
        ("items", [f"{r.items:,}" for r in rows]),
        ("status", [r.status.split(" ", 1)[0].rstrip(":") for r in rows]),
        ("wall time (s, no metering)", [f"{r.seconds:.1f}" for r in rows]),
        ("CPU time (s, no metering)", [f"{r.cpu_seconds:.1f}" for r in rows]),
        ("write units per item", [f"{r.wru / r.items:.1f}" for r in rows]),
        ("read units per item", [f"{r.rru / r.items:.1f}" for r in rows]),
        ("parent HEAD share of WRU", [f"{r.parent_head_wru / max(1, r.wru):.0%}" for r in rows]),
        ("key with most WRU", [f"{r.top_key} {r.top_key_wru / max(1, r.wru):.0%}" for r in rows]),
        ("max writes on one key", [f"{r.max_writes_one_key:,}" for r in rows]),
        ("max writes/s on one key", [f"{r.peak_rate:,}" for r in rows]),
        ("$ per million transitions", [f"{r.per_million:.2f}" for r in rows]),
        ("  of which DynamoDB writes", [_share(r, "dynamodb_writes") for r in rows]),
        *(
            (
                f"  WRU share: {kind}",
                [f"{r.by_kind.get(kind, 0) / max(1, r.wru):.0%}" for r in rows],
            )
            for kind in sorted({k for r in rows for k in r.by_kind})
        ),
        ("S3 payload requests", [str(sum(r.s3_requests.values())) for r in rows]),
        ("stepper batches", [f"{r.batches:,}" for r in rows]),
        ("peak memory per batch (MB)", [f"{r.peak_batch_bytes / 1e6:.1f}" for r in rows]),
        (
            "  of which working (MB)",
            [f"{r.peak_working_bytes / 1e6:.1f}" for r in rows],
        ),
        ("max RSS (MB, whole process)", [f"{r.max_rss_kb / 1e3:.0f}" for r in rows]),
    ]
    if len(rows) > 1:
        lines.append(("time growth", ["-", *(exponent(a, b, "seconds") for a, b in _pairs(rows))]))
        lines.append(
            ("CPU time growth", ["-", *(exponent(a, b, "cpu_seconds") for a, b in _pairs(rows))])
        )
        lines.append(("WRU growth", ["-", *(exponent(a, b, "wru") for a, b in _pairs(rows))]))
    width = max(14, *(len(c) for _, cells in lines for c in cells))
    return "\n".join(
        f"{label:<29}" + "".join(f"{c:>{width + 2}}" for c in cells) for label, cells in lines
    )


def _share(r: Figures, part: str) -> str:
    total = sum(r.dollars.values())
    return f"{r.dollars.get(part, 0) / total:.0%}" if total else "-"


def _pairs(rows: list[Figures]) -> list[tuple[Figures, Figures]]:
    return list(itertools.pairwise(rows))


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log", choices=("memory", "moto"), default="memory")
    parser.add_argument("--items", default="100,1000", help="comma-separated item counts")
    parser.add_argument("--map", default="inline", help=f"comma-separated of {', '.join(MODES)}")
    parser.add_argument("--input-kb", type=float, default=0.0, help="pad the input to this size")
    parser.add_argument(
        "--payloads", action="store_true", help="offload large documents to S3 (as deployed)"
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="faster; no batch memory")
    parser.add_argument(
        "--source",
        choices=("input", "s3"),
        default="input",
        help="s3: a distributed Map reads a CSV (ItemReader) and writes results (ResultWriter)",
    )
    parser.add_argument(
        "--moto-snapshots",
        choices=("items", "table"),
        default=None,
        help="moto's transaction rollback snapshot (stepflow.local.moto_patches): items "
        "(the default, as stepflow local ships) or table (moto's own deep copy of the table)",
    )
    parser.add_argument(
        "--clock",
        choices=("real", "virtual"),
        default="real",
        help="the stepper's clock: virtual time running at real pace (as deployed: the "
        "run head's report coalescing needs time to pass), or frozen between timers",
    )
    parser.add_argument("--local", action="store_true", help="boto3 against stepflow local")
    parser.add_argument("--timeout", type=float, default=900.0, help="--local: give up after")
    args = parser.parse_args(argv)
    counts = [int(n.replace("_", "")) for n in args.items.split(",")]
    modes = [m.strip() for m in args.map.split(",")]
    if args.source == "s3" and "inline" in modes:
        parser.error("--source s3 is for a distributed Map (--map standard,express)")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--map {mode}: choose from {', '.join(MODES)}")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python={sys.version.split()[0]} "
        f"commit={commit()} date={time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if args.local:
        from bench.map_local import main as local_main

        return local_main(
            counts, modes, timeout=args.timeout, snapshots=args.moto_snapshots or "items"
        )
    args.moto_snapshots = args.moto_snapshots or "items"
    code = 0
    for mode in modes:
        print(
            f"\n== Map {mode}, {args.log} log"
            + (f", input {args.input_kb:g} KB" if args.input_kb else "")
        )
        rows: list[Figures] = []
        try:
            for count in counts:
                rows.append(
                    run(
                        count,
                        mode=mode,
                        log=args.log,
                        input_kb=args.input_kb,
                        trace=not args.no_tracemalloc,
                        snapshots=args.moto_snapshots,
                        payloads=args.payloads,
                        clock=args.clock,
                        source=args.source,
                    )
                )
                done = rows[-1]
                outcome = done.status.split(" ", 1)[0]
                print(f"   {count:,} items: {outcome} in {done.seconds:.1f} s", flush=True)
        except NotSupportedError as exc:
            print(f"   NOT SUPPORTED: {exc}")
            code = 2
            continue
        except Exception as exc:  # a mode the engine/runtime cannot run yet: say so, no traceback
            print(f"   NOT SUPPORTED (or broken) on this build: {type(exc).__name__}: {exc}")
            code = 2
            continue
        print(table(rows))
        for r in rows:
            if r.status != "SUCCEEDED":
                print(f"   {r.items:,} items: {r.status[:300]}")
                code = code or 1
            if r.unmetered:
                print(f"   warning: log calls not metered: {r.unmetered}")
    reproduce = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\nreproduce: .venv/bin/python bench/map_scale.py {reproduce}".rstrip())
    return code


if __name__ == "__main__":
    raise SystemExit(main())
