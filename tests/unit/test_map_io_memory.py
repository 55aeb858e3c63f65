"""The ItemReader/ResultWriter logic over the in-memory object store (no moto)."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import weakref
from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest
from stepflow.runtime.item_reading import MemoryItemSource, StoreItemSource
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec, ResultWriterError, WriterSpec
from stepflow.runtime.object_store import MemoryObjectStore
from stepflow.runtime.result_writing import MemoryResultSink, StoreResultSink
from stepflow.runtime.targets import OwnResources

GET = "arn:aws:states:::s3:getObject"
LIST = "arn:aws:states:::s3:listObjectsV2"
PUT = "arn:aws:states:::s3:putObject"
OWN = OwnResources.of(buckets=["stepflow-payloads"])


def spec(resource: str = GET, max_items: Any = None, **parameters: Any) -> ReaderSpec:
    config = parameters.pop("config", {})
    return ReaderSpec(resource, parameters, config, max_items)


def source(objects: dict[tuple[str, str], bytes]) -> tuple[StoreItemSource, MemoryObjectStore]:
    store = MemoryObjectStore(objects)
    return StoreItemSource(store, OWN), store


# -- reading ----------------------------------------------------------------------


def test_json_default_input_type() -> None:
    reader, store = source({("b", "f.json"): b'[{"a":1},{"a":2}]'})
    assert list(reader.read(spec(Bucket="b", Key="f.json"))) == [{"a": 1}, {"a": 2}]
    assert store.calls == ["GetObject"]


def test_dev_case_json_no_list_object() -> None:
    reader, _ = source({("b", "f.json"): b'{"a": [1, 2]}'})
    with pytest.raises(ItemReaderError) as caught:
        list(reader.read(spec(Bucket="b", Key="f.json", config={"InputType": "JSON"})))
    assert caught.value.cause == "Attempting to map over non-iterable node."


CSV = b"Col1,Col2\nValue1,Value2\nValue3,Value4\nValue5,Value6\nValue7,Value8\n"


@pytest.mark.parametrize(("max_items", "count"), [(0, 4), (2, 2), (100_000_001, 4), (None, 4)])
def test_dev_cases_csv_max_items(max_items: int | None, count: int) -> None:
    reader, _ = source({("b", "f.csv"): CSV})
    config = {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}
    items = list(reader.read(spec(Bucket="b", Key="f.csv", max_items=max_items, config=config)))
    expected = [{"Col1": f"Value{2 * i + 1}", "Col2": f"Value{2 * i + 2}"} for i in range(4)]
    assert items == expected[:count]


def test_dev_case_csv_negative_max_items() -> None:
    reader, store = source({("b", "f.csv"): CSV})
    with pytest.raises(ItemReaderError) as caught:
        reader.read(spec(Bucket="b", Key="f.csv", max_items=-1, config={"InputType": "CSV"}))
    assert caught.value.cause == "field MaxItems must be positive"
    assert store.calls == []


def test_jsonl_and_csv_given_headers() -> None:
    reader, _ = source({("b", "l"): b'{"x":1}\n{"x":2}\n', ("b", "c"): b"1|2\n"})
    assert list(reader.read(spec(Bucket="b", Key="l", config={"InputType": "JSONL"}))) == [
        {"x": 1},
        {"x": 2},
    ]
    config = {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["a", "b"],
        "CSVDelimiter": "PIPE",
    }
    assert list(reader.read(spec(Bucket="b", Key="c", config=config))) == [{"a": "1", "b": "2"}]


def test_missing_object_fails_with_s3s_cause() -> None:
    reader, _ = source({})
    with pytest.raises(ItemReaderError, match="The specified key does not exist"):
        list(reader.read(spec(Bucket="b", Key="nope.json")))


def test_unknown_input_type_and_resource_fail() -> None:
    reader, _ = source({("b", "k"): b"[]"})
    with pytest.raises(ItemReaderError, match="InputType"):
        list(reader.read(spec(Bucket="b", Key="k", config={"InputType": "PARQUET"})))
    with pytest.raises(ItemReaderError, match="resource"):
        reader.read(spec("arn:aws:states:::s3:putObject", Bucket="b", Key="k"))


def inventory(objects: dict[tuple[str, str], bytes], files: int, rows: int) -> None:
    keys = []
    for n in range(files):
        key = f"inv/data/{n}.csv.gz"
        lines = "".join(f'"src","obj-{n}-{i}","{i}"\n' for i in range(rows))
        objects[("dest", key)] = gzip.compress(lines.encode())
        keys.append({"key": key, "size": 1, "MD5checksum": "x"})
    manifest = {
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::dest",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size",
        "files": keys,
    }
    objects[("dest", "inv/manifest.json")] = json.dumps(manifest).encode()


def test_manifest_reads_every_inventory_file_in_order_lazily() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    inventory(objects, files=3, rows=2)
    reader, store = source(objects)
    items = reader.read(
        spec(Bucket="dest", Key="inv/manifest.json", config={"InputType": "MANIFEST"})
    )
    assert next(items) == {"Bucket": "src", "Key": "obj-0-0", "Size": "0"}
    assert store.calls == ["GetObject", "GetObject"]
    rest = list(items)
    assert [i["Key"] for i in rest] == ["obj-0-1", "obj-1-0", "obj-1-1", "obj-2-0", "obj-2-1"]
    assert store.calls == ["GetObject"] * 4


def test_manifest_naming_an_own_bucket_is_refused() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    inventory(objects, files=1, rows=1)
    manifest = json.loads(objects[("dest", "inv/manifest.json")])
    manifest["destinationBucket"] = "arn:aws:s3:::stepflow-payloads"
    objects[("dest", "inv/manifest.json")] = json.dumps(manifest).encode()
    reader, store = source(objects)
    with pytest.raises(ItemReaderError, match="target is a StepFlow resource: bucket"):
        list(
            reader.read(
                spec(Bucket="dest", Key="inv/manifest.json", config={"InputType": "MANIFEST"})
            )
        )
    assert store.calls == ["GetObject"]


@pytest.mark.parametrize(
    "parameters",
    [
        {"Bucket": "stepflow-payloads", "Key": "k"},
        {"Bucket": "arn:aws:s3:::stepflow-payloads", "Key": "k"},
        {"Bucket": "other", "Key": "k", "ExpectedBucketOwner": "stepflow-payloads"},
    ],
)
def test_reader_aimed_at_an_own_bucket_is_refused_without_a_call(
    parameters: dict[str, Any],
) -> None:
    reader, store = source({("stepflow-payloads", "k"): b"[1]"})
    with pytest.raises(ItemReaderError, match="target is a StepFlow resource"):
        list(reader.read(ReaderSpec(GET, parameters)))
    assert store.calls == []


def listing(count: int) -> dict[tuple[str, str], bytes]:
    objects = {("b", f"data/{i:05d}.txt"): b"x" * i for i in range(count)}
    objects[("b", "other/skip.txt")] = b""
    objects[("b", "data/sub/nested.txt")] = b"n"
    return objects


def test_list_objects_pages_once_each_in_key_order() -> None:
    reader, store = source(listing(2500))
    items = list(reader.read(spec(LIST, Bucket="b", Prefix="data/")))
    assert len(items) == 2501
    assert store.calls == ["ListObjectsV2"] * 3
    assert items[1] == {
        "Etag": '"9dd4e461268c8034f5c8564e155c67a6"',
        "Key": "data/00001.txt",
        "LastModified": 1767225600,
        "Size": 1,
        "StorageClass": "STANDARD",
    }


def test_list_objects_max_items_stops_paging() -> None:
    reader, store = source(listing(2500))
    items = list(reader.read(spec(LIST, max_items=1000, Bucket="b", Prefix="data/")))
    assert len(items) == 1000
    assert store.calls == ["ListObjectsV2"]
    items = list(reader.read(spec(LIST, max_items=1001, Bucket="b", Prefix="data/")))
    assert len(items) == 1001
    assert store.calls == ["ListObjectsV2"] * 3


def test_list_objects_delimiter_leaves_out_grouped_keys() -> None:
    reader, _ = source(listing(3))
    keys = [i["Key"] for i in reader.read(spec(LIST, Bucket="b", Prefix="data/", Delimiter="/"))]
    assert keys == ["data/00000.txt", "data/00001.txt", "data/00002.txt"]


# -- writing ------------------------------------------------------------------------


def entry(i: int, status: str = "SUCCEEDED") -> dict[str, Any]:
    value: dict[str, Any] = {
        "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:m/run:{i}",
        "Input": json.dumps({"i": i}),
        "InputDetails": {"Included": True},
        "Name": str(i),
        "StartDate": "2026-01-01T00:00:00.000Z",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:m/run",
        "Status": status,
        "StopDate": "2026-01-01T00:00:01.000Z",
    }
    if status == "SUCCEEDED":
        value |= {"Output": json.dumps([i, i]), "OutputDetails": {"Included": True}}
    else:
        value |= {"Error": "Boom", "Cause": "it broke"}
    return value


WRITER = WriterSpec(PUT, {"Bucket": "results", "Prefix": "jobs"}, map_run_arn="arn:run")


def test_layout_and_manifest_exact() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    results = [entry(0), entry(1, "FAILED"), entry(2), entry(3, "TIMED_OUT"), entry(4, "PENDING")]
    details = MemoryResultSink(objects).write(WRITER, "run-1", results)
    assert details == {"Bucket": "results", "Key": "jobs/run-1/manifest.json"}
    manifest = json.loads(objects[("results", "jobs/run-1/manifest.json")])
    sizes = {k: len(v) for (_, k), v in objects.items()}
    assert manifest == {
        "DestinationBucket": "results",
        "MapRunArn": "arn:run",
        "ResultFiles": {
            "FAILED": [
                {"Key": "jobs/run-1/FAILED_0.json", "Size": sizes["jobs/run-1/FAILED_0.json"]}
            ],
            "PENDING": [
                {"Key": "jobs/run-1/PENDING_0.json", "Size": sizes["jobs/run-1/PENDING_0.json"]}
            ],
            "SUCCEEDED": [
                {"Key": "jobs/run-1/SUCCEEDED_0.json", "Size": sizes["jobs/run-1/SUCCEEDED_0.json"]}
            ],
        },
    }
    assert list(manifest) == ["DestinationBucket", "MapRunArn", "ResultFiles"]
    assert json.loads(objects[("results", "jobs/run-1/SUCCEEDED_0.json")]) == [entry(0), entry(2)]
    assert json.loads(objects[("results", "jobs/run-1/FAILED_0.json")]) == [
        entry(1, "FAILED"),
        entry(3, "TIMED_OUT"),
    ]
    assert json.loads(objects[("results", "jobs/run-1/PENDING_0.json")]) == [entry(4, "PENDING")]


def test_no_results_of_a_status_means_no_file_and_no_prefix_means_run_id_at_the_root() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    spec_ = WriterSpec(PUT, {"Bucket": "results"}, map_run_arn="arn:run")
    details = MemoryResultSink(objects).write(spec_, "r", [entry(0)])
    assert details["Key"] == "r/manifest.json"
    assert sorted(k for _, k in objects) == ["r/SUCCEEDED_0.json", "r/manifest.json"]
    manifest = json.loads(objects[("results", "r/manifest.json")])
    assert manifest["ResultFiles"]["FAILED"] == [] and manifest["ResultFiles"]["PENDING"] == []


def test_files_split_at_the_size_bound_in_order() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    one = len(json.dumps(entry(0), separators=(",", ":")))
    sink = MemoryResultSink(objects, max_file_bytes=2 * one + 3)
    sink.write(WRITER, "r", [entry(i) for i in range(5)])
    manifest = json.loads(objects[("results", "jobs/r/manifest.json")])
    keys = [f["Key"] for f in manifest["ResultFiles"]["SUCCEEDED"]]
    assert keys == [f"jobs/r/SUCCEEDED_{n}.json" for n in range(3)]
    read = [e for k in keys for e in json.loads(objects[("results", k)])]
    assert read == [entry(i) for i in range(5)]
    for f in manifest["ResultFiles"]["SUCCEEDED"]:
        assert f["Size"] == len(objects[("results", f["Key"])]) <= 2 * one + 3


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"Transformation": "COMPACT"}, [[0, 0], [2, 2]]),
        ({"Transformation": "FLATTEN"}, [0, 0, 2, 2]),
    ],
)
def test_transformations(config: dict[str, str], expected: list[Any]) -> None:
    objects: dict[tuple[str, str], bytes] = {}
    spec_ = WriterSpec(PUT, {"Bucket": "results", "Prefix": "p"}, config, map_run_arn="a")
    MemoryResultSink(objects).write(spec_, "r", [entry(0), entry(1, "FAILED"), entry(2)])
    assert json.loads(objects[("results", "p/r/SUCCEEDED_0.json")]) == expected
    assert json.loads(objects[("results", "p/r/FAILED_0.json")]) == [
        {"Error": "Boom", "Cause": "it broke"}
    ]


def test_jsonl_output_type() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    config = {"OutputType": "JSONL", "Transformation": "FLATTEN"}
    spec_ = WriterSpec(PUT, {"Bucket": "results", "Prefix": "p"}, config, map_run_arn="a")
    MemoryResultSink(objects).write(spec_, "r", [entry(0), entry(1)])
    assert objects[("results", "p/r/SUCCEEDED_0.json")] == b"0\n0\n1\n1\n"


def test_bad_writer_config_and_own_bucket_are_refused_without_writing() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    for bad in ({"OutputType": "CSV"}, {"Transformation": "ZIP"}):
        with pytest.raises(ResultWriterError):
            MemoryResultSink(objects).write(WriterSpec(PUT, {"Bucket": "b"}, bad), "r", [entry(0)])
    own = WriterSpec(PUT, {"Bucket": "stepflow-payloads", "Prefix": "p"})
    with pytest.raises(ResultWriterError, match="target is a StepFlow resource"):
        MemoryResultSink(objects, own=OWN).write(own, "r", [entry(0)])
    assert objects == {}


class _CountingStore(MemoryObjectStore):
    """Keeps only the sizes of what is written."""

    def upload(self, bucket: str, key: str) -> Any:
        store = self

        class Upload:
            size = 0

            def write(self, data: bytes) -> None:
                self.size += len(data)

            def close(self) -> None:
                store.calls.append(f"PutObject {key} {self.size}")

            def abort(self) -> None:
                pass

        return Upload()


def _peak_writing(count: int) -> tuple[int, int, list[str]]:
    ok, failed = entry(1), entry(0, "FAILED")

    def results() -> Iterator[dict[str, Any]]:
        for i in range(count):
            yield failed if i % 10 == 0 else ok

    store = _CountingStore()
    tracemalloc.start()
    try:
        StoreResultSink(store).write(WRITER, "r", results())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    written = sum(int(c.rsplit(" ", 1)[1]) for c in store.calls)
    return peak, written, store.calls


def test_writer_memory_stays_flat_as_results_grow() -> None:
    small, _, _ = _peak_writing(2_000)
    large, written, calls = _peak_writing(20_000)
    assert written > 7_000_000
    assert len(calls) == 3
    assert large < 100_000
    assert large < 2 * small


class _Entry(dict[str, Any]):
    """A result entry that can be watched for being freed."""


def test_writing_100000_results_holds_no_entry() -> None:
    alive = 0
    most = 0

    def freed() -> None:
        nonlocal alive
        alive -= 1

    def results() -> Iterator[dict[str, Any]]:
        nonlocal alive, most
        for i in range(100_000):
            value = _Entry(entry(i, "FAILED" if i % 10 == 0 else "SUCCEEDED"))
            weakref.finalize(value, freed)
            alive += 1
            most = max(most, alive)
            yield value
            del value

    store = _CountingStore()
    StoreResultSink(store).write(WRITER, "r", results())
    assert most <= 2
    assert [c.split(" ")[1] for c in store.calls] == [
        "jobs/r/FAILED_0.json",
        "jobs/r/SUCCEEDED_0.json",
        "jobs/r/manifest.json",
    ]


def test_memory_source_round_trip_with_memory_sink() -> None:
    objects: dict[tuple[str, str], bytes] = {}
    MemoryResultSink(objects).write(WRITER, "r", [entry(0), entry(1)])
    items = MemoryItemSource(objects).read(spec(Bucket="results", Key="jobs/r/SUCCEEDED_0.json"))
    assert [i["Name"] for i in islice(items, 5)] == ["0", "1"]
