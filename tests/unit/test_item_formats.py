"""The ItemReader formats (pure): JSON, JSONL, CSV, S3 inventory, listObjectsV2 items, MaxItems."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice

import pytest
from stepflow.runtime import item_formats as f
from stepflow.runtime.map_io import ItemReaderError


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def csv(text: str, **config: object) -> list[dict[str, str]]:
    return list(f.csv_items(chunks(text.encode()), **config))  # type: ignore[arg-type]


# -- MaxItems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 100_000_000), (0, 100_000_000), (2, 2), (100_000_001, 100_000_000), (3.0, 3)],
)
def test_max_items_follows_aws(value: object, expected: int) -> None:
    assert f.max_items(value) == expected


def test_negative_max_items_fails_as_aws() -> None:
    with pytest.raises(ItemReaderError) as caught:
        f.max_items(-1)
    assert caught.value.cause == "field MaxItems must be positive"


@pytest.mark.parametrize("value", ["2", True, 1.5])
def test_max_items_not_an_integer_fails(value: object) -> None:
    with pytest.raises(ItemReaderError):
        f.max_items(value)


# -- JSON ------------------------------------------------------------------------


def test_json_array_items() -> None:
    data = json.dumps([{"a": 1}, "x", [2]]).encode()
    assert list(f.json_items(chunks(data))) == [{"a": 1}, "x", [2]]


@pytest.mark.parametrize("body", [b'{"a": [1]}', b'"text"', b"3", b"null"])
def test_json_that_is_no_array_fails_as_aws(body: bytes) -> None:
    with pytest.raises(ItemReaderError) as caught:
        list(f.json_items(chunks(body)))
    assert caught.value.cause == "Attempting to map over non-iterable node."


def test_json_with_bom_and_bad_json_and_bad_utf8() -> None:
    assert list(f.json_items([b"\xef\xbb\xbf[1]"])) == [1]
    with pytest.raises(ItemReaderError, match="not valid JSON"):
        list(f.json_items([b"[1,"]))
    with pytest.raises(ItemReaderError, match="UTF-8"):
        list(f.json_items([b'["\xff"]']))


def test_deep_json_is_refused_without_recursion_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ItemReaderError, match="not valid JSON"):
        list(f.json_items([deep]))


def test_json_object_over_the_bound_is_refused_before_reading_on() -> None:
    read: list[int] = []

    def body() -> Iterator[bytes]:
        for i in range(100):
            read.append(i)
            yield b" " * 1000

    with pytest.raises(ItemReaderError, match="larger than 5000 bytes"):
        list(f.json_items(body(), limit=5000))
    assert len(read) == 6


# -- JSONL ----------------------------------------------------------------------


def test_jsonl_items_skip_blank_lines_and_accept_crlf() -> None:
    data = b'\xef\xbb\xbf{"a":1}\r\n\n  \n[2]\n"s"'
    assert list(f.jsonl_items(chunks(data, 3))) == [{"a": 1}, [2], "s"]


def test_jsonl_bad_line_names_it() -> None:
    with pytest.raises(ItemReaderError, match="Line 2"):
        list(f.jsonl_items([b'{"a":1}\n{bad\n']))


def test_jsonl_huge_line_is_refused() -> None:
    with pytest.raises(ItemReaderError, match="longer than 1000"):
        list(f.text_lines(chunks(b"x" * 5000, 100), limit=1000))


def test_split_utf8_character_across_chunks() -> None:
    data = '["é€😀"]\n'.encode()
    assert list(f.jsonl_items(chunks(data, 1))) == [["é€😀"]]


def test_jsonl_is_lazy_over_a_million_rows() -> None:
    produced = 0

    def body() -> Iterator[bytes]:
        nonlocal produced
        for i in range(1_000_000):
            produced += 1
            yield b'{"i":%d}\n' % i

    first = list(islice(f.jsonl_items(body()), 3))
    assert first == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert produced < 10


# -- CSV ------------------------------------------------------------------------


def test_csv_first_row_headers() -> None:
    text = "Col1,Col2\nValue1,Value2\nValue3,Value4\n"
    assert csv(text) == [{"Col1": "Value1", "Col2": "Value2"}, {"Col1": "Value3", "Col2": "Value4"}]


def test_csv_given_headers_read_the_first_row_as_an_item() -> None:
    items = csv("a,b\nc,d", header_location="GIVEN", headers=["x", "y"])
    assert items == [{"x": "a", "y": "b"}, {"x": "c", "y": "d"}]


def test_csv_too_few_fields_are_empty_and_extra_fields_skipped() -> None:
    assert csv("a,b,c\n1\n1,2,3,4,5\n,,\n") == [
        {"a": "1", "b": "", "c": ""},
        {"a": "1", "b": "2", "c": "3"},
        {"a": "", "b": "", "c": ""},
    ]


def test_csv_the_aws_documented_example() -> None:
    text = (
        'abc,123,"This string contains commas, a double quotation marks (""), and a newline (\n'
        ')",{""MyKey"":""MyValue""},"[1,2,3]"\n'
    )
    items = csv(text, header_location="GIVEN", headers=["a", "b", "c", "d", "e"])
    assert items == [
        {
            "a": "abc",
            "b": "123",
            "c": 'This string contains commas, a double quotation marks ("), and a newline (\n)',
            "d": '{"MyKey":"MyValue"}',
            "e": "[1,2,3]",
        }
    ]


def test_csv_backslashes() -> None:
    text = 'path,size\nC:\\\\Program Files\\\\MyApp.exe,6534512\na\\,b,\\x\\"q\\"\n'
    assert csv(text) == [
        {"path": "C:\\Program Files\\MyApp.exe", "size": "6534512"},
        {"path": "a,b", "size": 'x"q"'},
    ]


def test_csv_empty_quoted_fields_crlf_and_bom() -> None:
    text = '\ufeffa,b\r\n"",x\r\n\r\n"1",""""\r\n'
    assert csv(text) == [{"a": "", "b": "x"}, {"a": "1", "b": '"'}]


@pytest.mark.parametrize(
    ("name", "char"), [("PIPE", "|"), ("SEMICOLON", ";"), ("SPACE", " "), ("TAB", "\t")]
)
def test_csv_delimiters(name: str, char: str) -> None:
    text = f"a{char}b\n1{char}2,3\n"
    assert csv(text, delimiter=name) == [{"a": "1", "b": "2,3"}]


def test_csv_unknown_delimiter_and_location_fail() -> None:
    with pytest.raises(ItemReaderError, match="CSVDelimiter"):
        csv("a\n1", delimiter="COLON")
    with pytest.raises(ItemReaderError, match="CSVHeaderLocation"):
        csv("a\n1", header_location="LAST_ROW")


def test_csv_duplicate_headers_fail_as_aws() -> None:
    with pytest.raises(ItemReaderError) as caught:
        csv("a,a\n1,2\n")
    assert caught.value.cause == "CSV headers cannot contain duplicates."
    with pytest.raises(ItemReaderError):
        csv("1,2\n", header_location="GIVEN", headers=["x", "x"])


def test_csv_header_over_10_kb_fails() -> None:
    header = ",".join(f"column{i}" for i in range(2000))
    with pytest.raises(ItemReaderError, match="10240"):
        csv(header + "\n")


def test_csv_unterminated_quote_fails() -> None:
    with pytest.raises(ItemReaderError, match="quoted field"):
        csv('a\n"open\nmore\n')


def test_csv_empty_object_has_no_items() -> None:
    assert csv("") == []
    assert csv("a,b\n") == []


def test_csv_bad_utf8_fails() -> None:
    with pytest.raises(ItemReaderError, match="UTF-8"):
        list(f.csv_items([b"a\n\xc3\x28\n"]))


def test_csv_is_lazy_over_a_million_rows() -> None:
    produced = 0

    def body() -> Iterator[bytes]:
        nonlocal produced
        yield b"id,name\n"
        for i in range(1_000_000):
            produced += 1
            yield b"%d,row\n" % i

    items = f.csv_items(body())
    assert list(islice(items, 2)) == [{"id": "0", "name": "row"}, {"id": "1", "name": "row"}]
    assert produced < 10


def test_csv_reads_a_million_rows_in_order() -> None:
    data = b"id\n" + b"".join(b"%d\n" % i for i in range(1_000_000))
    count = 0
    for count, item in enumerate(f.csv_items(chunks(data, 65536)), start=1):  # noqa: B007
        pass
    assert count == 1_000_000
    assert item == {"id": "999999"}


# -- S3 inventory ---------------------------------------------------------------


def manifest(**changes: object) -> bytes:
    body = {
        "sourceBucket": "source",
        "destinationBucket": "arn:aws:s3:::inventory-bucket",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate",
        "files": [{"key": "inv/data/1.csv.gz", "size": 10, "MD5checksum": "x"}],
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_manifest_files() -> None:
    bucket, keys, fields = f.manifest_files([manifest()])
    assert (bucket, keys, fields) == (
        "inventory-bucket",
        ["inv/data/1.csv.gz"],
        ["Bucket", "Key", "Size", "LastModifiedDate"],
    )


@pytest.mark.parametrize(
    "changes", [{"fileFormat": "ORC"}, {"files": [{"size": 1}]}, {"fileSchema": None}]
)
def test_bad_manifests_fail(changes: dict[str, object]) -> None:
    with pytest.raises(ItemReaderError):
        f.manifest_files([manifest(**changes)])


def test_inventory_items_from_gzip() -> None:
    rows = '"source","a.csv","12","2022-11-16T00:29:32.000Z"\n"source","b/c d","0",""\n'
    data = gzip.compress(rows.encode())
    items = list(
        f.inventory_items(chunks(data, 5), ["Bucket", "Key", "Size", "LastModifiedDate"], True)
    )
    assert items == [
        {
            "Bucket": "source",
            "Key": "a.csv",
            "Size": "12",
            "LastModifiedDate": "2022-11-16T00:29:32.000Z",
        },
        {"Bucket": "source", "Key": "b/c d", "Size": "0", "LastModifiedDate": ""},
    ]


def test_inventory_not_gzip_fails() -> None:
    with pytest.raises(ItemReaderError, match="gzip"):
        list(f.inventory_items([b"not gzip at all"], ["Bucket"], True))


# -- listObjectsV2 ----------------------------------------------------------------


def test_listed_item_shape() -> None:
    entry = {
        "Key": "k",
        "LastModified": datetime(2022, 11, 17, 15, 44, 41, tzinfo=UTC),
        "ETag": '"05704fbdccb224cb01c59005bebbad28"',
        "Size": 34910,
        "StorageClass": "STANDARD",
        "ChecksumAlgorithm": ["CRC32"],
    }
    assert f.listed_item(entry) == {
        "Etag": '"05704fbdccb224cb01c59005bebbad28"',
        "Key": "k",
        "LastModified": 1668699881,
        "Size": 34910,
        "StorageClass": "STANDARD",
    }


def test_json_items_pointer_selects_a_nested_array() -> None:
    data = b'{"data": {"a/b": [{"x": [1, 2]}]}}'
    assert list(f.json_items([data], pointer="/data/a~1b/0/x")) == [1, 2]
    with pytest.raises(ItemReaderError, match="names no value"):
        list(f.json_items([data], pointer="/data/missing"))
    with pytest.raises(ItemReaderError) as caught:
        list(f.json_items([data], pointer="/data"))
    assert caught.value.cause == "Attempting to map over non-iterable node."


def test_csv_quoted_field_over_many_lines_is_parsed_once_per_line_and_bounded() -> None:
    lines = 20_000
    text = 'a,b\n"' + "x\n" * lines + '",2\n'
    (item,) = csv(text)
    assert item == {"a": "x\n" * lines, "b": "2"}
    endless = 'a\n"' + ("y" * 999 + "\n") * 10_000
    with pytest.raises(ItemReaderError, match="CSV record is longer"):
        csv(endless)
