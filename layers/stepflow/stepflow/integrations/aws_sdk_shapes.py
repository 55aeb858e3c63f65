"""Values between Step Functions' JSON and botocore, shaped by the operation's model.

The one name and shape translation of every integration that is an AWS API call
(:mod:`.api_call`). Member names are PascalCase both ways, matched regardless of
case, whatever the API's own case (Step Functions' ``TaskToken`` is the Step
Functions API's ``taskToken``, ``Cluster`` is ECS's ``cluster``); a map's keys
are data and never touched. A request:
JSON ``null`` members are left out (the SDK for Java sends no value), a blob
given as a string is its UTF-8 text and any other JSON value its compact JSON
text (S3 PutObject's ``Body``), and ``EqualsValue`` is the member ``Equals``
(Step Functions' spelling). A response: ``ResponseMetadata`` is dropped, a blob
or a streaming body (S3 GetObject's ``Body``) becomes its text and a timestamp
its ISO-8601 instant (``2024-05-01T12:00:00Z``, with milliseconds when it has
them), as the SDK for Java v2 writes them (``aws-sdk``). The optimized integrations
(SDK for Java v1) return a timestamp as epoch milliseconds and a blob as base64
text: :class:`Output` says which.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

RENAMED_MEMBERS = {"EqualsValue": "Equals"}
"""Members Step Functions spells differently from the API (its docs: ``EqualsValue``)."""


def to_request(shape: Any, value: Any) -> Any:
    """The botocore parameters of the JSON ``value`` for the input ``shape`` (None: no shape)."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        folded = {name.lower(): name for name in members}
        result: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            given = RENAMED_MEMBERS.get(str(key), str(key))
            name = given if given in members else folded.get(given.lower(), given)
            result[name] = to_request(members.get(name), item)
        return result
    if kind == "list" and isinstance(value, list):
        return [to_request(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: to_request(shape.value, item) for key, item in value.items()}
    if kind == "blob" and value is not None and not isinstance(value, bytes | bytearray):
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        return text.encode("utf-8")
    return value


@dataclass(frozen=True, slots=True)
class Output:
    """How a response's timestamps and blobs are written (what the SDK for Java shows).

    ``timestamps``: ``iso`` (``2024-05-01T12:00:00Z``, SDK v2) or ``epoch-millis``
    (SDK v1); ``blobs``: ``text`` (UTF-8, SDK v2; base64 when the bytes are not UTF-8)
    or ``base64`` (SDK v1).
    """

    timestamps: Literal["iso", "epoch-millis"]
    blobs: Literal["text", "base64"]


SDK_V2 = Output(timestamps="iso", blobs="text")
"""The ``aws-sdk`` integrations' responses."""

SDK_V1 = Output(timestamps="epoch-millis", blobs="base64")
"""The optimized integrations' responses."""


def to_output(shape: Any, value: Any, output: Output = SDK_V2) -> Any:
    """The JSON value Step Functions returns for botocore's ``value`` of the output ``shape``."""
    if isinstance(value, dict):
        members = shape.members if shape is not None and shape.type_name == "structure" else {}
        item_shape = shape.value if shape is not None and shape.type_name == "map" else None
        return {
            _pascal(key) if members else key: to_output(
                members.get(key) if members else item_shape, item, output
            )
            for key, item in value.items()
            if key != "ResponseMetadata"
        }
    if isinstance(value, list | tuple):
        member = shape.member if shape is not None and shape.type_name == "list" else None
        return [to_output(member, item, output) for item in value]
    if isinstance(value, datetime):
        if output.timestamps == "epoch-millis":
            return int(value.timestamp() * 1000)
        return instant(value)
    if isinstance(value, bytes | bytearray):
        if output.blobs == "base64":
            return base64.b64encode(bytes(value)).decode("ascii")
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:  # binary (a KMS ciphertext): base64, never a lossy text
            return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "read"):  # a streaming body
        return to_output(shape, value.read(), output)
    return value


def _pascal(name: str) -> str:
    """A member name as Step Functions writes it: ``executionArn`` -> ``ExecutionArn``."""
    return name[:1].upper() + name[1:]


def instant(moment: datetime) -> str:
    """``moment`` as Java's ``Instant.toString()``: UTC, ``Z``, fraction only when non-zero."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    micros = utc.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    return text + "Z"
