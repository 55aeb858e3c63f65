"""S3ItemSource and S3ResultSink against moto: every reader, the writer's exact layout, S3 calls."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from stepflow.integrations.item_reader import S3ItemSource
from stepflow.integrations.result_writer import S3ResultSink
from stepflow.runtime.clients import FixedClients, TaskCallRefused
from stepflow.runtime.map_io import ItemReaderError, ReaderSpec, ResultWriterError, WriterSpec
from stepflow.runtime.targets import OwnResources

from tests.moto_env import REGION, offline_aws

GET = "arn:aws:states:::s3:getObject"
LIST = "arn:aws:states:::s3:listObjectsV2"
PUT = "arn:aws:states:::s3:putObject"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with offline_aws(monkeypatch):
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="data")
        client.create_bucket(Bucket="results")
        yield client


def counted(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    return calls


def read(client: Any, spec: ReaderSpec, own: OwnResources | None = None) -> list[Any]:
    return list(S3ItemSource(FixedClients(s3=client), own).read(spec))


def test_json_jsonl_csv_through_s3(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="a.json", Body=b'[{"a":1},2]')
    s3.put_object(Bucket="data", Key="a.jsonl", Body=b'{"a":1}\r\n2\n')
    s3.put_object(Bucket="data", Key="a.csv", Body=b"x;y\n1;2\n")
    calls = counted(s3)
    assert read(s3, ReaderSpec(GET, {"Bucket": "data", "Key": "a.json"})) == [{"a": 1}, 2]
    jsonl = ReaderSpec(GET, {"Bucket": "data", "Key": "a.jsonl"}, {"InputType": "JSONL"})
    assert read(s3, jsonl) == [{"a": 1}, 2]
    config = {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "CSVDelimiter": "SEMICOLON"}
    assert read(s3, ReaderSpec(GET, {"Bucket": "data", "Key": "a.csv"}, config)) == [
        {"x": "1", "y": "2"}
    ]
    assert calls == ["GetObject"] * 3


def test_large_csv_streams_in_many_chunks(s3: Any) -> None:
    body = b"id,v\n" + b"".join(b"%d,%s\n" % (i, b"x" * 50) for i in range(10_000))
    s3.put_object(Bucket="data", Key="big.csv", Body=body)
    items = read(s3, ReaderSpec(GET, {"Bucket": "data", "Key": "big.csv"}, {"InputType": "CSV"}))
    assert len(items) == 10_000
    assert items[-1] == {"id": "9999", "v": "x" * 50}


def test_missing_key_and_bucket_fail_with_s3s_cause(s3: Any) -> None:
    with pytest.raises(ItemReaderError) as caught:
        read(s3, ReaderSpec(GET, {"Bucket": "data", "Key": "nope.json"}))
    assert caught.value.cause.startswith(
        "The specified key does not exist. (Service: S3, Status Code: 404, Request ID: "
    )
    with pytest.raises(ItemReaderError, match="The specified bucket does not exist"):
        read(s3, ReaderSpec(LIST, {"Bucket": "no-such-bucket"}))


def test_missing_key_parameter_fails_as_a_reader_error(s3: Any) -> None:
    with pytest.raises(ItemReaderError):
        read(s3, ReaderSpec(GET, {"Bucket": "data"}))


def test_list_objects_items_and_pages_read_once(s3: Any) -> None:
    for i in range(2300):
        s3.put_object(Bucket="data", Key=f"in/{i:05d}", Body=b"x" * (i % 7))
    s3.put_object(Bucket="data", Key="out/ignored", Body=b"")
    calls = counted(s3)
    items = read(s3, ReaderSpec(LIST, {"Bucket": "data", "Prefix": "in/"}))
    assert calls == ["ListObjectsV2"] * 3
    assert [i["Key"] for i in items] == [f"in/{i:05d}" for i in range(2300)]
    first = items[1]
    assert sorted(first) == ["Etag", "Key", "LastModified", "Size", "StorageClass"]
    assert first["Size"] == 1 and first["StorageClass"] == "STANDARD"
    assert isinstance(first["LastModified"], int)
    assert first["Etag"].startswith('"')
    calls.clear()
    limited = read(s3, ReaderSpec(LIST, {"Bucket": "data", "Prefix": "in/"}, max_items=1000))
    assert len(limited) == 1000
    assert calls == ["ListObjectsV2"]


def test_manifest_through_s3(s3: Any) -> None:
    rows = (
        '"data","k1","3","2022-11-16T00:29:32.000Z"\n"data","k2","4","2022-11-16T00:29:33.000Z"\n'
    )
    s3.put_object(Bucket="results", Key="inv/data/f.csv.gz", Body=gzip.compress(rows.encode()))
    manifest = {
        "sourceBucket": "data",
        "destinationBucket": "arn:aws:s3:::results",
        "version": "2016-11-30",
        "creationTimestamp": "1668560400000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": "inv/data/f.csv.gz", "size": 1, "MD5checksum": "x"}],
    }
    s3.put_object(Bucket="results", Key="inv/manifest.json", Body=json.dumps(manifest).encode())
    spec = ReaderSpec(
        GET, {"Bucket": "results", "Key": "inv/manifest.json"}, {"InputType": "MANIFEST"}
    )
    assert read(s3, spec) == [
        {
            "Bucket": "data",
            "Key": "k1",
            "Size": "3",
            "LastModifiedDate": "2022-11-16T00:29:32.000Z",
        },
        {
            "Bucket": "data",
            "Key": "k2",
            "Size": "4",
            "LastModifiedDate": "2022-11-16T00:29:33.000Z",
        },
    ]


def test_own_bucket_refused_without_an_s3_call(s3: Any) -> None:
    s3.put_object(Bucket="data", Key="a.json", Body=b"[1]")
    calls = counted(s3)
    own = OwnResources.of(buckets=["data"])
    with pytest.raises(ItemReaderError, match="target is a StepFlow resource: bucket 'data'"):
        read(s3, ReaderSpec(GET, {"Bucket": "data", "Key": "a.json"}), own)
    with pytest.raises(ResultWriterError, match="target is a StepFlow resource"):
        S3ResultSink(FixedClients(s3=s3), own).write(WriterSpec(PUT, {"Bucket": "data"}), "r", [])
    assert calls == []


class RefusingClients:
    def for_task(self, service: str, role_arn: str, region: str | None = None, **_: Any) -> Any:
        raise TaskCallRefused("States.TaskFailed", f"role {role_arn} refused")


def test_the_readers_role_is_used_and_a_refusal_fails_the_read() -> None:
    spec = ReaderSpec(GET, {"Bucket": "b", "Key": "k"}, role_arn="arn:aws:iam::123456789012:role/r")
    with pytest.raises(ItemReaderError, match="role arn:aws:iam::123456789012:role/r refused"):
        list(S3ItemSource(RefusingClients()).read(spec))
    with pytest.raises(ResultWriterError, match="refused"):
        S3ResultSink(RefusingClients()).write(WriterSpec(PUT, {"Bucket": "b"}), "r", [])


def result(i: int, status: str = "SUCCEEDED") -> dict[str, Any]:
    return {
        "ExecutionArn": f"arn:aws:states:us-east-1:123456789012:execution:m/Map:{i}",
        "Input": json.dumps(i),
        "InputDetails": {"Included": True},
        "Name": str(i),
        "Output": json.dumps({"out": i}),
        "OutputDetails": {"Included": True},
        "StartDate": "2026-01-01T00:00:00.000Z",
        "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:m/Map",
        "Status": status,
        "StopDate": "2026-01-01T00:00:01.000Z",
    }


def test_writer_layout_and_manifest_exact_on_s3(s3: Any) -> None:
    calls = counted(s3)
    arn = "arn:aws:states:us-east-1:123456789012:mapRun:m/TestMap:run-1"
    spec = WriterSpec(PUT, {"Bucket": "results", "Prefix": "mapJobs"}, map_run_arn=arn)
    details = S3ResultSink(FixedClients(s3=s3)).write(
        spec, "run-1", [result(0), result(1, "FAILED"), result(2)]
    )
    assert details == {"Bucket": "results", "Key": "mapJobs/run-1/manifest.json"}
    assert calls == ["PutObject"] * 3
    listed = s3.list_objects_v2(Bucket="results", Prefix="mapJobs/")["Contents"]
    sizes = {o["Key"]: o["Size"] for o in listed}
    assert sorted(sizes) == [
        "mapJobs/run-1/FAILED_0.json",
        "mapJobs/run-1/SUCCEEDED_0.json",
        "mapJobs/run-1/manifest.json",
    ]
    body = s3.get_object(Bucket="results", Key="mapJobs/run-1/manifest.json")["Body"].read()
    assert json.loads(body) == {
        "DestinationBucket": "results",
        "MapRunArn": arn,
        "ResultFiles": {
            "FAILED": [
                {"Key": "mapJobs/run-1/FAILED_0.json", "Size": sizes["mapJobs/run-1/FAILED_0.json"]}
            ],
            "PENDING": [],
            "SUCCEEDED": [
                {
                    "Key": "mapJobs/run-1/SUCCEEDED_0.json",
                    "Size": sizes["mapJobs/run-1/SUCCEEDED_0.json"],
                }
            ],
        },
    }
    ok = s3.get_object(Bucket="results", Key="mapJobs/run-1/SUCCEEDED_0.json")["Body"].read()
    assert json.loads(ok) == [result(0), result(2)]


def test_writer_streams_large_files_as_multipart_uploads(s3: Any) -> None:
    calls = counted(s3)
    sink = S3ResultSink(FixedClients(s3=s3), part_bytes=5 * 1024 * 1024)
    spec = WriterSpec(PUT, {"Bucket": "results", "Prefix": "big"}, map_run_arn="a")
    sink.write(spec, "r", (result(i) for i in range(40_000)))
    body = s3.get_object(Bucket="results", Key="big/r/SUCCEEDED_0.json")["Body"].read()
    entries = json.loads(body)
    assert len(entries) == 40_000 and entries[-1] == result(39_999)
    parts = calls.count("UploadPart")
    assert parts == -(-len(body) // (5 * 1024 * 1024))
    assert calls.count("CreateMultipartUpload") == 1
    assert calls.count("CompleteMultipartUpload") == 1
    assert calls.count("PutObject") == 1  # the manifest


def test_writer_to_a_missing_bucket_fails_with_s3s_cause(s3: Any) -> None:
    spec = WriterSpec(PUT, {"Bucket": "no-such-bucket", "Prefix": "p"})
    with pytest.raises(ResultWriterError, match="The specified bucket does not exist"):
        S3ResultSink(FixedClients(s3=s3)).write(spec, "r", [result(0)])


def test_results_failing_midway_leave_no_multipart_upload_open(s3: Any) -> None:
    def results() -> Iterator[dict[str, Any]]:
        for i in range(20_000):
            yield result(i)
        raise RuntimeError("the run's results could not be read")

    sink = S3ResultSink(FixedClients(s3=s3), part_bytes=5 * 1024 * 1024)
    with pytest.raises(RuntimeError):
        sink.write(WriterSpec(PUT, {"Bucket": "results", "Prefix": "p"}), "r", results())
    assert s3.list_multipart_uploads(Bucket="results").get("Uploads", []) == []
    assert "Contents" not in s3.list_objects_v2(Bucket="results", Prefix="p/")
