r"""The formats a distributed Map's ``ItemReader`` reads, as Step Functions parses them.

Pure: every reader takes the object's bytes as an iterable of chunks (the S3 body
stream) and yields items lazily, so a JSONL or CSV object of any size is read in
flat memory. Only a JSON array must be parsed whole: it is bounded by
:data:`MAX_JSON_OBJECT_BYTES` (StepFlow's bound, not AWS's), read up to that
many bytes and refused past them without reading further.

- JSON: a top-level array, else ``Attempting to map over non-iterable node.``;
- JSONL: one JSON value per line, blank lines skipped;
- CSV (``CSVDelimiter`` COMMA, PIPE, SEMICOLON, SPACE or TAB): the rules of
  AWS's "How Step Functions parses input CSV files": fields are strings;
  a field enclosed in double quotes may hold delimiters and newlines; ``""``
  keeps a double quote; a backslash keeps a following backslash, double quote
  or delimiter and is dropped before any other character; a row with fewer
  fields than the header gets empty strings, extra fields are skipped.
  Headers come from the first row (``FIRST_ROW``, not counted as an item) or
  ``CSVHeaders`` (``GIVEN``); duplicates fail with ``CSV headers cannot contain
  duplicates.``. Records end at ``\n`` or ``\r\n``; an empty line is no record;
  a UTF-8 byte order mark at the start is dropped.
- S3 inventory: :func:`manifest_files` reads ``manifest.json``;
  :func:`inventory_items` reads one (gzip) CSV file of it, each row an item
  keyed by the manifest's ``fileSchema``.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any

from stepflow.data import safe_json
from stepflow.runtime.map_io import ItemReaderError

MAX_ITEMS_LIMIT = 100_000_000
"""AWS's largest ``MaxItems``: a larger value reads this many; 0 (or none) means all."""

MAX_JSON_OBJECT_BYTES = 64 * 1024 * 1024
"""StepFlow's bound on a JSON ``ItemReader`` object (a JSON array is parsed whole)."""

MAX_RECORD_BYTES = 8 * 1024 * 1024
"""StepFlow's bound, in characters, on one line or CSV record (each is held whole while parsed)."""

MAX_CSV_HEADER_BYTES = 10 * 1024
"""AWS's bound on the CSV header row: 10 KB."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""StepFlow's bound on an S3 inventory ``manifest.json``."""

MAX_JSON_DEPTH = 512
"""The deepest nesting of a JSON item (as every JSON StepFlow accepts from outside)."""

NON_ITERABLE_CAUSE = "Attempting to map over non-iterable node."
"""AWS's cause when a JSON object's top-level value is no array."""

DUPLICATE_HEADERS_CAUSE = "CSV headers cannot contain duplicates."
"""AWS's cause when two CSV headers are the same."""

DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}
"""``CSVDelimiter`` values and their characters."""

_LINE = re.compile(r"[^\n]*\n|[^\n]+$")


def max_items(value: Any) -> int:
    """The number of items to read for the evaluated ``MaxItems`` ``value`` (None: all).

    0 means all; above :data:`MAX_ITEMS_LIMIT` is capped to it; a negative value
    fails with AWS's ``field MaxItems must be positive``.
    """
    if value is None:
        return MAX_ITEMS_LIMIT
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ItemReaderError(f"field MaxItems must be an integer, got {value!r}")
    if value < 0:
        raise ItemReaderError("field MaxItems must be positive")
    return MAX_ITEMS_LIMIT if value == 0 else min(value, MAX_ITEMS_LIMIT)


def json_items(
    chunks: Iterable[bytes], limit: int = MAX_JSON_OBJECT_BYTES, pointer: Any = None
) -> Iterator[Any]:
    """The items of a JSON object: the elements of its top-level array.

    ``pointer`` (``ReaderConfig.ItemsPointer``, a JSON Pointer such as
    ``/data/items``) selects a nested array instead.
    """
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise ItemReaderError(
                f"The JSON object is larger than {limit} bytes, StepFlow's limit for a JSON "
                "ItemReader (it is parsed whole): use JSONL or CSV to stream larger item sets."
            )
    value = _parse_json(_text(bytes(body)).lstrip("\ufeff"))
    if pointer is not None:
        value = _pointed(value, pointer)
    if not isinstance(value, list):
        raise ItemReaderError(NON_ITERABLE_CAUSE)
    yield from value


def _pointed(value: Any, pointer: Any) -> Any:
    """The value JSON Pointer ``pointer`` (RFC 6901) names in ``value``."""
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise ItemReaderError(f"ItemsPointer must be a JSON Pointer, got {pointer!r}")
    for token in pointer.split("/")[1:] if pointer else ():
        name = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and name in value:
            value = value[name]
        elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
            value = value[int(name)]
        else:
            raise ItemReaderError(f"ItemsPointer {pointer} names no value of the JSON object.")
    return value


def jsonl_items(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The items of a JSON Lines object: one JSON value per non-blank line."""
    for number, line in enumerate(text_lines(chunks), start=1):
        if number == 1:
            line = line.lstrip("\ufeff")
        if line.strip():
            try:
                yield _parse_json(line)
            except ItemReaderError as exc:
                raise ItemReaderError(f"Line {number} of the JSONL object: {exc.cause}") from None


def csv_items(
    chunks: Iterable[bytes],
    header_location: str = "FIRST_ROW",
    headers: Any = None,
    delimiter: str = "COMMA",
) -> Iterator[dict[str, str]]:
    """The items of a CSV object: one object per record, keyed by the headers."""
    separator = _delimiter(delimiter)
    records = csv_records(text_lines(chunks), separator)
    if header_location == "GIVEN":
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise ItemReaderError(
                "CSVHeaders must be an array of strings when CSVHeaderLocation is GIVEN"
            )
        names: list[str] = headers
    elif header_location in ("FIRST_ROW", None):
        first = next(records, None)
        if first is None:
            return
        names = first
    else:
        raise ItemReaderError(f"Unknown CSVHeaderLocation value '{header_location}'.")
    if len(separator.join(names).encode()) > MAX_CSV_HEADER_BYTES:
        raise ItemReaderError(f"CSV headers exceed the limit of {MAX_CSV_HEADER_BYTES} bytes.")
    if len(set(names)) < len(names):
        raise ItemReaderError(DUPLICATE_HEADERS_CAUSE)
    width = len(names)
    for fields in records:
        if len(fields) < width:
            fields = fields + [""] * (width - len(fields))
        yield dict(zip(names, fields, strict=False))


def text_lines(chunks: Iterable[bytes], limit: int = MAX_RECORD_BYTES) -> Iterator[str]:
    """The UTF-8 text of ``chunks`` line by line, each with its newline (the last may lack it).

    Invalid UTF-8 fails the read; a line longer than ``limit`` bytes fails it
    without holding more of it.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    try:
        for chunk in chunks:
            pending += decoder.decode(chunk)
            if "\n" not in pending:
                _check_line(pending, limit)
                continue
            end = pending.rindex("\n") + 1
            for line in _LINE.findall(pending[:end]):
                _check_line(line, limit)
                yield line
            pending = pending[end:]
            _check_line(pending, limit)
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ItemReaderError(f"The object is not valid UTF-8 text: {exc.reason}") from None
    if pending:
        _check_line(pending, limit)
        yield pending


def csv_records(lines: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    """The records of CSV ``lines`` (see the module docstring for the rules).

    A record spanning lines (a quoted newline) is parsed line by line, each
    line once, and bounded by :data:`MAX_RECORD_BYTES` characters.
    """
    first = True
    record: _Record | None = None
    for raw in lines:
        line = raw.lstrip("\ufeff") if first else raw
        first = False
        if record is None:
            if '"' not in line and "\\" not in line:
                body = _strip_newline(line)
                if body:
                    yield body.split(delimiter)
                continue
            record = _Record(delimiter)
        if record.feed(line):
            yield record.fields
            record = None
    if record is not None:
        raise ItemReaderError("The CSV object ends inside a quoted field.")


class _Record:
    """One CSV record being parsed, a line at a time."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.fields: list[str] = []
        self.field: list[str] = []
        self.quoted = False
        self.started = False
        self.size = 0

    def feed(self, text: str) -> bool:
        """Parse one more line of the record; True when the record is complete."""
        self.size += len(text)
        if self.size > MAX_RECORD_BYTES:
            raise ItemReaderError(f"A CSV record is longer than {MAX_RECORD_BYTES} characters.")
        delimiter, field = self.delimiter, self.field
        plain, quoted_run = _runs(delimiter)
        i, end = 0, len(text)
        while i < end:
            run = (quoted_run if self.quoted else plain).match(text, i)
            if run is not None:  # a stretch of ordinary characters, taken at once
                field.append(run.group())
                self.started = True
                i = run.end()
                continue
            char = text[i]
            following = text[i + 1] if i + 1 < end else ""
            if char == "\\":
                if following in ("\\", '"', delimiter):
                    field.append(following)
                    i += 1
                self.started = True
            elif char == '"':
                if not self.started and not self.quoted:
                    self.quoted = True
                elif following == '"':
                    field.append('"')
                    i += 1
                else:
                    self.quoted = not self.quoted
                self.started = True
            elif char == delimiter:
                self.fields.append("".join(field))
                field.clear()
                self.started = False
            elif char == "\n" or (char == "\r" and following == "\n"):
                break
            else:  # a lone "\r"
                field.append(char)
                self.started = True
            i += 1
        if self.quoted:
            return False
        self.fields.append("".join(field))
        return True


@lru_cache(maxsize=8)
def _runs(delimiter: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Runs of ordinary characters outside quotes and inside them."""
    special = re.escape(delimiter)
    return re.compile(f'[^"\\\\\r\n{special}]+'), re.compile('[^"\\\\]+')


def manifest_files(body: Iterable[bytes]) -> tuple[str, list[str], list[str]]:
    """``(bucket, keys, field names)`` of an S3 inventory ``manifest.json``.

    Only CSV inventories can be read (as on AWS); the files are in the
    manifest's ``destinationBucket``, their fields named by ``fileSchema``.
    """
    manifest = next(json_value_of(body, MAX_MANIFEST_BYTES, "manifest"))
    if not isinstance(manifest, dict):
        raise ItemReaderError("The manifest is not a JSON object.")
    file_format = manifest.get("fileFormat")
    if file_format != "CSV":
        raise ItemReaderError(
            f"Unsupported S3 inventory file format {file_format!r}: only CSV is supported."
        )
    schema, bucket, files = (
        manifest.get("fileSchema"),
        manifest.get("destinationBucket"),
        manifest.get("files"),
    )
    if not isinstance(schema, str) or not isinstance(bucket, str) or not isinstance(files, list):
        raise ItemReaderError("The manifest must name its destinationBucket, fileSchema and files.")
    keys = [f.get("key") for f in files if isinstance(f, dict)]
    if len(keys) != len(files) or not all(isinstance(k, str) for k in keys):
        raise ItemReaderError("Every file of the manifest must have a key.")
    bucket_name = bucket.rsplit(":", 1)[-1] if bucket.startswith("arn:") else bucket
    return bucket_name, [str(k) for k in keys], [n.strip() for n in schema.split(",")]


def inventory_items(
    chunks: Iterable[bytes], fields: list[str], gzipped: bool
) -> Iterator[dict[str, str]]:
    """The items of one inventory CSV file (no header row; ``fields`` name the columns)."""
    body = _gunzip(chunks) if gzipped else chunks
    width = len(fields)
    for record in csv_records(text_lines(body), ","):
        if len(record) < width:
            record = record + [""] * (width - len(record))
        yield dict(zip(fields, record, strict=False))


def listed_item(entry: dict[str, Any]) -> dict[str, Any]:
    """The item of one ``ListObjectsV2`` ``Contents`` entry, in AWS's shape."""
    item: dict[str, Any] = {
        "Etag": entry.get("ETag", ""),
        "Key": entry.get("Key", ""),
        "LastModified": _epoch_seconds(entry.get("LastModified")),
        "Size": entry.get("Size", 0),
        "StorageClass": entry.get("StorageClass", "STANDARD"),
    }
    return item


def json_value_of(chunks: Iterable[bytes], limit: int, what: str) -> Iterator[Any]:
    """The one JSON value of ``chunks`` (at most ``limit`` bytes), as a one-item iterator."""
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise ItemReaderError(f"The {what} is larger than {limit} bytes.")
    yield _parse_json(_text(bytes(body)).lstrip("\ufeff"))


def _parse_json(text: str) -> Any:
    try:
        return safe_json.loads(text, MAX_JSON_DEPTH)
    except safe_json.JsonRejectedError as exc:
        raise ItemReaderError(f"The object is not valid JSON: {exc.reason}") from None
    except ValueError as exc:
        raise ItemReaderError(f"The object is not valid JSON: {exc}") from None


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ItemReaderError(f"The object is not valid UTF-8 text: {exc.reason}") from None


def _check_line(text: str, limit: int) -> None:
    if len(text) > limit:
        raise ItemReaderError(f"A line of the object is longer than {limit} characters.")


def _strip_newline(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith("\n") else line


def _delimiter(name: Any) -> str:
    if name is None:
        return ","
    found = DELIMITERS.get(name) if isinstance(name, str) else None
    if found is None:
        raise ItemReaderError(f"Unknown CSVDelimiter value '{name}'.")
    return found


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    try:
        for chunk in chunks:
            while chunk:
                out = inflater.decompress(chunk, 1024 * 1024)
                chunk = inflater.unconsumed_tail
                if out:
                    yield out
        tail = inflater.flush()
    except zlib.error as exc:
        raise ItemReaderError(f"An inventory file is not valid gzip: {exc}") from None
    if tail:
        yield tail


def _epoch_seconds(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return value
    if isinstance(value, float):
        return int(value)
    return value
